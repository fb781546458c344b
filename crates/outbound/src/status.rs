//! Reading RFC 3463 status codes back out of reply texts, for DSNs and
//! event logs: `"550 5.1.1 User unknown"` → `5.1.1`; a local reason such as
//! `"4.4.1 connect to …"` → `4.4.1`; a bare `"451 try later"` → `4.0.0`.

/// The status code of a reply or reason text.
pub fn status_of(text: &str) -> String {
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("");
    if is_status(first) {
        return first.to_string();
    }
    if first.len() == 3 && first.bytes().all(|b| b.is_ascii_digit()) {
        if let Some(second) = words.next()
            && is_status(second)
        {
            return second.to_string();
        }
        return format!("{}.0.0", &first[..1]);
    }
    "4.0.0".to_string()
}

/// Whether `s` looks like `x.y.z`.
fn is_status(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a reply or reason text is an SMTP reply from a remote server
/// (it starts with a three-digit code).
pub fn is_remote_reply(text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or("");
    first.len() == 3 && first.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(status_of("550 5.1.1 User unknown"), "5.1.1");
        assert_eq!(status_of("4.4.1 connect to x: refused"), "4.4.1");
        assert_eq!(status_of("451 try later"), "4.0.0");
        assert_eq!(status_of("554 Transaction failed"), "5.0.0");
        assert_eq!(status_of("garbage"), "4.0.0");
        assert_eq!(status_of("5.1.10 null MX"), "5.1.10");
        assert!(is_remote_reply("550 5.1.1 x"));
        assert!(!is_remote_reply("5.1.2 no domain"));
    }
}
