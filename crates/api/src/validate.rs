//! Input checks for submissions: addresses (RFC 5321 §4.1.2 mailbox,
//! §4.5.3.1 lengths), header names and values (RFC 5322 §2.2), and no CR,
//! LF or NUL anywhere a header line could be injected.

use crate::error::ApiError;

/// Refuses CR, LF and NUL in a value that ends up in a header or envelope.
pub fn no_injection(field: &str, v: &str) -> Result<(), ApiError> {
    if v.contains(['\r', '\n', '\0']) {
        return Err(ApiError::field(
            "header_injection",
            field,
            format!("{field} must not contain CR, LF or NUL characters"),
        ));
    }
    Ok(())
}

fn atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// Checks a mailbox `local@domain`; returns whether it needs SMTPUTF8.
pub fn address(field: &str, a: &str) -> Result<bool, ApiError> {
    no_injection(field, a)?;
    let bad = |why: &str| {
        ApiError::field(
            "invalid_address",
            field,
            format!("{field}: {a:?} is not a valid address: {why}"),
        )
    };
    let (local, domain) = a.rsplit_once('@').ok_or_else(|| bad("no @"))?;
    if local.is_empty() || local.len() > 64 {
        return Err(bad("the local part must be 1 to 64 octets"));
    }
    if domain.is_empty() || domain.len() > 255 || a.len() > 254 {
        return Err(bad("too long"));
    }
    if local.starts_with('"') {
        if local.len() < 2
            || !local.ends_with('"')
            || local[1..local.len() - 1].contains(['"', '\\'])
        {
            return Err(bad("bad quoted local part"));
        }
    } else if local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !local.chars().all(|c| atext(c) || c == '.')
    {
        return Err(bad("bad local part"));
    }
    if let Some(lit) = domain.strip_prefix('[') {
        let ip = lit
            .strip_suffix(']')
            .ok_or_else(|| bad("bad address literal"))?;
        let ip = ip.strip_prefix("IPv6:").unwrap_or(ip);
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| bad("bad address literal"))?;
    } else if !domain_name_ok(domain) {
        return Err(bad("bad domain"));
    }
    Ok(!a.is_ascii())
}

/// Whether `d` is a domain name: dot-separated labels of letters, digits
/// and hyphens (or non-ASCII, for IDNs), 1 to 63 octets each, not starting
/// or ending with a hyphen; 255 octets in all.
fn domain_name_ok(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 255
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
        })
}

/// Checks a domain name given on its own (e.g. a sender domain).
/// The paging part of a list query: `limit` and the `cursor` of the
/// previous page (strings, checked so that a bad value gets a 400 naming it).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Page {
    /// Entries per page, 1–1000.
    pub limit: Option<String>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

/// A page size (`limit`): 1–1000, absent is `None`.
pub fn limit(l: Option<&str>) -> Result<Option<usize>, ApiError> {
    l.map(|l| {
        l.parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::field(
                    "invalid_limit",
                    "limit",
                    "limit is an integer from 1 to 1000",
                )
            })
    })
    .transpose()
}

/// A domain name in `field`.
pub fn domain(field: &str, d: &str) -> Result<(), ApiError> {
    no_injection(field, d)?;
    if !domain_name_ok(d) {
        return Err(ApiError::field(
            "invalid_domain",
            field,
            format!("{field}: {d:?} is not a valid domain name"),
        ));
    }
    Ok(())
}

/// Checks a header field name (printable ASCII except ':').
pub fn header_name(n: &str) -> Result<(), ApiError> {
    if n.is_empty() || n.len() > 76 || !n.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(ApiError::field(
            "invalid_header",
            format!("headers.{n}"),
            format!("{n:?} is not a valid header name"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(address("to", "bob@example.net"), Ok(false));
        assert_eq!(address("to", "Bob.O'Neil+tag@sub.example.net"), Ok(false));
        assert_eq!(address("to", "\"quoted local\"@example.net"), Ok(false));
        assert_eq!(address("to", "josé@exämple.net"), Ok(true));
        assert!(address("to", "user@[192.0.2.1]").is_ok());
        for bad in [
            "plain",
            "@example.net",
            "a..b@example.net",
            ".a@example.net",
            "a@-x.net",
            "a@x..net",
            "a b@example.net",
            "a@example.net\r\nBcc: victim@x",
            "a@ex\0ample.net",
        ] {
            let e = address("to[0]", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("to[0]"), "{bad}");
        }
        let long = format!("{}@example.net", "a".repeat(65));
        assert!(address("from", &long).is_err());
    }

    #[test]
    fn domains() {
        assert!(domain("sender_domain", "shop.example").is_ok());
        assert!(domain("sender_domain", "exämple.net").is_ok());
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "x\r\ny",
            &"a".repeat(64),
        ] {
            let e = domain("sender_domain", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("sender_domain"), "{bad:?}");
        }
    }

    #[test]
    fn header_names() {
        assert!(header_name("X-Campaign").is_ok());
        assert!(header_name("Bad:Name").is_err());
        assert!(header_name("Bad Name").is_err());
        assert!(header_name("").is_err());
    }
}
