//! Domain names in the configuration: checked for syntax, and — where a key
//! takes a pattern (`[[destination]] domain`, `[[route]] domain`, the
//! destination of `laneway queue suspend`) — matched the one way
//! everywhere: an exact name wins over the longest `.suffix`, which wins
//! over `*`.
//!
//! `.example.com` matches every subdomain of example.com but not
//! example.com itself, as in Postfix's transport maps; list both to cover
//! both.

use std::fmt;

/// A domain or a pattern of domains.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    /// One domain (lower case, no trailing dot).
    Exact(String),
    /// Every subdomain of this domain (stored with its leading dot).
    Suffix(String),
    /// Every domain.
    Any,
}

/// Checks the syntax of a domain name (RFC 1035 §2.3.1 labels, with
/// U-labels allowed): lower-cases it and drops a trailing dot.
pub fn normalize(name: &str) -> Result<String, String> {
    let d = name.trim().trim_end_matches('.').to_lowercase();
    if d.is_empty() {
        return Err("empty domain".into());
    }
    if d.len() > 253 {
        return Err(format!("{d:?} is longer than 253 characters"));
    }
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "{name:?} is not a domain name (empty or overlong label)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "{name:?} is not a domain name (label starts or ends with -)"
            ));
        }
        if !label
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("{name:?} is not a domain name"));
        }
    }
    Ok(d)
}

impl DomainPattern {
    /// Parses `example.com`, `.example.com` or `*`.
    pub fn parse(s: &str) -> Result<DomainPattern, String> {
        let t = s.trim();
        if t == "*" {
            return Ok(DomainPattern::Any);
        }
        if let Some(rest) = t.strip_prefix('.') {
            return Ok(DomainPattern::Suffix(format!(".{}", normalize(rest)?)));
        }
        if t.contains('*') {
            return Err(format!(
                "{s:?}: a wildcard is written \"*\" (every domain) or \".example.com\" (its subdomains)"
            ));
        }
        normalize(t).map(DomainPattern::Exact)
    }

    /// Whether `domain` (lower case) is matched.
    pub fn matches(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        match self {
            DomainPattern::Exact(d) => d.eq_ignore_ascii_case(domain),
            DomainPattern::Suffix(s) => {
                domain.len() > s.len() && domain[domain.len() - s.len()..].eq_ignore_ascii_case(s)
            }
            DomainPattern::Any => true,
        }
    }

    /// How specific the pattern is: exact names first, then longer
    /// suffixes, `*` last.
    fn rank(&self) -> usize {
        match self {
            DomainPattern::Exact(_) => usize::MAX,
            DomainPattern::Suffix(s) => s.len(),
            DomainPattern::Any => 0,
        }
    }

    /// Whether this is one plain domain.
    pub fn is_exact(&self) -> bool {
        matches!(self, DomainPattern::Exact(_))
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(d) | DomainPattern::Suffix(d) => f.write_str(d),
            DomainPattern::Any => f.write_str("*"),
        }
    }
}

/// The item whose pattern matches `domain` best (exact, then the longest
/// suffix, then `*`); `pattern` reads an item's pattern text. Items whose
/// pattern does not parse never match (check-config refuses them).
pub fn best_match<'a, T>(
    items: &'a [T],
    domain: &str,
    pattern: impl Fn(&T) -> &str,
) -> Option<&'a T> {
    items
        .iter()
        .filter_map(|i| {
            let p = DomainPattern::parse(pattern(i)).ok()?;
            p.matches(domain).then(|| (p.rank(), i))
        })
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, i)| i)
}

/// Whether `address` may be used as a sender by an SMTP user or API key
/// whose `allowed_from_domains` is `allowed` (absent: any domain). The one
/// rule for MAIL FROM, the API's `from` and the `From:` header at ingest.
pub fn may_send_as(allowed: Option<&[String]>, address: &str) -> bool {
    let Some(list) = allowed else {
        return true;
    };
    let d = crate::envelope::domain_of(address);
    list.iter()
        .any(|a| a.trim_end_matches('.').eq_ignore_ascii_case(&d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_match() {
        let any = DomainPattern::parse("*").unwrap();
        let sub = DomainPattern::parse(".Example.COM.").unwrap();
        let one = DomainPattern::parse("example.com").unwrap();
        assert!(any.matches("x.test"));
        assert!(sub.matches("mx.example.com") && sub.matches("a.b.example.com"));
        assert!(!sub.matches("example.com") && !sub.matches("badexample.com"));
        assert!(one.matches("EXAMPLE.com.") && !one.matches("mx.example.com"));
        for bad in ["", "*.example.com", "exa mple.com", "-x.com", "a..b", "x*"] {
            assert!(DomainPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn allowed_senders() {
        let list = vec!["Example.com".to_string()];
        assert!(may_send_as(None, "a@any.test"));
        assert!(may_send_as(Some(&list), "a@EXAMPLE.COM"));
        assert!(may_send_as(Some(&list), "a@example.com."));
        assert!(!may_send_as(Some(&list), "a@sub.example.com"));
        assert!(!may_send_as(Some(&list), "a@other.test"));
        assert!(!may_send_as(Some(&[]), "a@example.com"));
    }

    #[test]
    fn the_most_specific_pattern_wins() {
        let items = ["*", ".example.com", "mx.example.com", ".com"];
        let m = |d| best_match(&items, d, |s| s).copied();
        assert_eq!(m("mx.example.com"), Some("mx.example.com"));
        assert_eq!(m("a.example.com"), Some(".example.com"));
        assert_eq!(m("other.com"), Some(".com"));
        assert_eq!(m("x.test"), Some("*"));
        assert_eq!(best_match(&["a.test"], "b.test", |s| s), None);
    }
}
