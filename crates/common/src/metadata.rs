//! The application's metadata of a message: `"metadata": {"key": "value"}`
//! on the API, `X-Laneway-Meta-<key>: value` header fields from trusted
//! SMTP clients (removed before signing and delivery, like
//! `X-Priority-Queue`). Carried in the spool and in every event of the
//! message, and searchable in the history (`?meta.<key>=<value>`).

use std::collections::BTreeMap;

use crate::headers;

/// The header field prefix.
pub const HEADER_PREFIX: &str = "X-Laneway-Meta-";
/// Most keys.
pub const MAX_KEYS: usize = 32;
/// Longest key.
pub const MAX_KEY: usize = 64;
/// Longest value, bytes.
pub const MAX_VALUE: usize = 1024;
/// Most bytes of keys and values together.
pub const MAX_TOTAL: usize = 8192;

/// Checks the bounds: at most [`MAX_KEYS`] keys of 1–[`MAX_KEY`] letters,
/// digits, `_`, `-` or `.`, values of at most [`MAX_VALUE`] bytes without
/// control characters, [`MAX_TOTAL`] bytes in all. The error names the
/// key at fault.
pub fn check(m: &BTreeMap<String, String>) -> Result<(), String> {
    if m.len() > MAX_KEYS {
        return Err(format!("{} metadata keys; at most {MAX_KEYS}", m.len()));
    }
    let mut total = 0;
    for (k, v) in m {
        if k.is_empty()
            || k.len() > MAX_KEY
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(format!(
                "metadata key {k:?}: 1 to {MAX_KEY} letters, digits, '_', '-' or '.'"
            ));
        }
        if v.len() > MAX_VALUE {
            return Err(format!("metadata {k}: longer than {MAX_VALUE} bytes"));
        }
        if v.chars().any(char::is_control) {
            return Err(format!("metadata {k}: control characters"));
        }
        total += k.len() + v.len();
    }
    if total > MAX_TOTAL {
        return Err(format!("metadata: {total} bytes; at most {MAX_TOTAL}"));
    }
    Ok(())
}

/// The `X-Laneway-Meta-*` fields of a message (keys lower-cased; a later
/// field of the same key wins) and the message without them (`None` when
/// it had none).
pub fn from_headers(msg: &[u8]) -> (BTreeMap<String, String>, Option<Vec<u8>>) {
    let mut m = BTreeMap::new();
    let is_meta = |f: &headers::Field<'_>| {
        f.name.len() > HEADER_PREFIX.len()
            && f.name[..HEADER_PREFIX.len()].eq_ignore_ascii_case(HEADER_PREFIX.as_bytes())
    };
    for f in headers::fields(msg).iter().filter(|f| is_meta(f)) {
        let key = String::from_utf8_lossy(&f.name[HEADER_PREFIX.len()..])
            .trim()
            .to_ascii_lowercase();
        m.insert(key, f.text());
    }
    let stripped = headers::remove_where(msg, is_meta);
    (m, stripped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_become_metadata_and_go() {
        let msg = b"Subject: x\r\nX-Laneway-Meta-Order-Id: 42\r\nx-laneway-meta-user: ann\r\n  smith\r\nX-Other: y\r\n\r\nbody\r\n";
        let (m, stripped) = from_headers(msg);
        assert_eq!(m.get("order-id").map(String::as_str), Some("42"));
        assert_eq!(m.get("user").map(String::as_str), Some("ann smith"));
        assert_eq!(
            stripped.unwrap(),
            b"Subject: x\r\nX-Other: y\r\n\r\nbody\r\n".to_vec()
        );
        assert!(check(&m).is_ok());
        assert_eq!(from_headers(b"Subject: x\r\n\r\n").1, None);
    }

    #[test]
    fn bounds_name_the_key() {
        let one = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(check(&one("order_id", "A-1")).is_ok());
        assert!(
            check(&one("bad key", "x"))
                .unwrap_err()
                .contains("\"bad key\"")
        );
        assert!(
            check(&one("k", &"v".repeat(MAX_VALUE + 1)))
                .unwrap_err()
                .contains("metadata k")
        );
        assert!(check(&one("k", "a\nb")).is_err());
        let many: BTreeMap<String, String> = (0..=MAX_KEYS)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert!(check(&many).unwrap_err().contains("at most 32"));
    }
}
