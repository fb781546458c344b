//! Relay policy and address checks (RFC 5321 §3.6, §4.5.1, §4.5.3.1).
//!
//! A client in `[relay] trusted_networks`, or one that authenticated, may
//! relay to any domain. Anyone else may only send to `[relay]
//! local_domains` (and bounce domains), like Postfix's `relay_domains`.
//! Sender-routing shapes (`%` hack, `!` paths, source routes, an `@` hidden
//! in a quoted local part) never open a relay: for untrusted clients they
//! are refused outright.

use laneway_common::Reply;

/// RFC 5321 §4.5.3.1.1: longest local part.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: longest domain.
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3: longest path (with the angle brackets).
pub const MAX_PATH: usize = 256;

/// An address as it appeared on the command line, beyond what smtp-proto
/// tells us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawPath {
    /// The text between `<` and `>`, as sent.
    pub text: String,
    /// It began with a source route (`<@a,@b:user@c>`).
    pub source_route: bool,
    /// The local part was quoted.
    pub quoted: bool,
}

/// Finds the `<…>` path after `FROM:`/`TO:` in a command line.
pub fn raw_path(line: &[u8]) -> Option<RawPath> {
    let start = line.iter().position(|&b| b == b'<')?;
    let mut in_quote = false;
    let mut escaped = false;
    let mut end = None;
    for (i, &b) in line.iter().enumerate().skip(start + 1) {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            b'>' if !in_quote => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(&line[start + 1..end?]).into_owned();
    Some(RawPath {
        source_route: text.starts_with('@'),
        quoted: text.contains('"'),
        text,
    })
}

/// Checks the lengths of an address, returning the `501` reply on failure.
pub fn check_lengths(address: &str, raw: &RawPath) -> Result<(), Reply> {
    if raw.text.len() + 2 > MAX_PATH {
        return Err(Reply::new(
            501,
            (5, 1, 3),
            "Path too long (RFC 5321 4.5.3.1.3)",
        ));
    }
    if let Some((local, domain)) = address.rsplit_once('@') {
        if local.len() > MAX_LOCAL_PART {
            return Err(Reply::new(
                501,
                (5, 1, 3),
                "Local part too long (RFC 5321 4.5.3.1.1)",
            ));
        }
        if domain.len() > MAX_DOMAIN {
            return Err(Reply::new(
                501,
                (5, 1, 3),
                "Domain too long (RFC 5321 4.5.3.1.2)",
            ));
        }
    }
    Ok(())
}

/// Whether an address needs SMTPUTF8 (non-ASCII anywhere in it).
pub fn needs_smtputf8(address: &str) -> bool {
    !address.is_ascii()
}

/// Whether the address uses a sender-routing shape that an untrusted client
/// may not use: `%` or `!` in the local part, an `@` inside a quoted local
/// part, or a source route.
pub fn is_routing_shape(address: &str, raw: &RawPath) -> bool {
    if raw.source_route {
        return true;
    }
    let local = address.rsplit_once('@').map(|(l, _)| l).unwrap_or(address);
    local.contains('%') || local.contains('!') || local.contains('@')
}

/// Re-quotes a local part that smtp-proto returned unquoted, so that it can
/// be relayed as it was given (RFC 5321 §4.1.2 Quoted-string).
pub fn requote(address: &str, raw: &RawPath) -> String {
    if !raw.quoted {
        return address.to_string();
    }
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let escaped: String = local
                .chars()
                .flat_map(|c| match c {
                    '"' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            format!("\"{escaped}\"@{domain}")
        }
        None => address.to_string(),
    }
}

/// Whether `domain` is one of `local` (case-insensitive, trailing dot ignored).
pub fn is_local_domain(domain: &str, local: &[String]) -> bool {
    let d = domain.trim_end_matches('.');
    local.iter().any(|l| l.eq_ignore_ascii_case(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_paths() {
        let r = raw_path(b"RCPT TO:<@a.test,@b.test:user@c.test>\r\n").unwrap();
        assert!(r.source_route);
        let r = raw_path(b"RCPT TO:<\"a>b@evil\"@c.test> NOTIFY=NEVER\r\n").unwrap();
        assert_eq!(r.text, "\"a>b@evil\"@c.test");
        assert!(r.quoted);
        assert!(raw_path(b"RCPT TO:bob@x\r\n").is_none());
    }

    #[test]
    fn routing_shapes() {
        let plain = RawPath::default();
        assert!(is_routing_shape("user%evil.test@local.test", &plain));
        assert!(is_routing_shape("evil.test!user@local.test", &plain));
        assert!(is_routing_shape("user@evil.test@local.test", &plain));
        assert!(!is_routing_shape("user.name+tag@local.test", &plain));
        let routed = RawPath {
            source_route: true,
            ..Default::default()
        };
        assert!(is_routing_shape("user@local.test", &routed));
    }

    #[test]
    fn lengths() {
        let raw = |s: &str| RawPath {
            text: s.into(),
            ..Default::default()
        };
        let long_local = format!("{}@x.test", "a".repeat(65));
        assert_eq!(
            check_lengths(&long_local, &raw(&long_local))
                .unwrap_err()
                .code,
            501
        );
        let ok = format!("{}@x.test", "a".repeat(64));
        assert!(check_lengths(&ok, &raw(&ok)).is_ok());
        let long_path = format!("a@{}", "b".repeat(254));
        assert!(check_lengths(&long_path, &raw(&long_path)).is_err());
    }

    #[test]
    fn requoting() {
        let raw = RawPath {
            quoted: true,
            ..Default::default()
        };
        assert_eq!(requote("quoted local@x", &raw), "\"quoted local\"@x");
        assert_eq!(requote("plain@x", &RawPath::default()), "plain@x");
    }
}
