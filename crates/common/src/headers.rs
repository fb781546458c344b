//! Just enough of RFC 5322 header handling for ingest: walking the header
//! fields of a message, removing a field wherever it appears, and the date
//! format of `Received:` and `Date:`.

use std::ops::Range;

/// One header field of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name as written (before the colon).
    pub name: &'a [u8],
    /// The raw value after the colon, folding and final CRLF included.
    pub value: &'a [u8],
    /// The bytes of the whole field, final CRLF included.
    pub range: Range<usize>,
}

impl Field<'_> {
    /// Whether the field has this name (case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name.trim_ascii().eq_ignore_ascii_case(name.as_bytes())
    }

    /// The value unfolded and trimmed, lossily decoded.
    pub fn text(&self) -> String {
        let v = String::from_utf8_lossy(self.value);
        v.split(['\r', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The offset where the body starts: just after the empty line that ends
/// the header section, or the end of the message when there is none.
pub fn body_offset(msg: &[u8]) -> usize {
    if msg.starts_with(b"\r\n") {
        return 2;
    }
    match memchr_crlfcrlf(msg) {
        Some(i) => i + 4,
        None => msg.len(),
    }
}

fn memchr_crlfcrlf(msg: &[u8]) -> Option<usize> {
    msg.windows(4).position(|w| w == b"\r\n\r\n")
}

/// The header fields of a message, in order. A line without a colon in the
/// header section is skipped (it is not a field).
pub fn fields(msg: &[u8]) -> Vec<Field<'_>> {
    let end = body_offset(msg);
    let head = &msg[..end];
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < head.len() {
        // the field runs until a CRLF not followed by WSP
        let mut line_end = pos;
        loop {
            match head[line_end..].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    line_end += i + 1;
                    if line_end < head.len() && matches!(head[line_end], b' ' | b'\t') {
                        continue;
                    }
                }
                None => line_end = head.len(),
            }
            break;
        }
        let field = &head[pos..line_end];
        if field == b"\r\n" {
            break;
        }
        if let Some(colon) = field.iter().position(|&b| b == b':') {
            out.push(Field {
                name: &field[..colon],
                value: &field[colon + 1..],
                range: pos..line_end,
            });
        }
        pos = line_end;
    }
    out
}

/// The message without every field named `name`; `None` when there is none.
pub fn remove_fields(msg: &[u8], name: &str) -> Option<Vec<u8>> {
    remove_where(msg, |f| f.is(name))
}

/// Removes every header field for which `pred` holds; `None` when there
/// was none.
pub fn remove_where(msg: &[u8], pred: impl Fn(&Field<'_>) -> bool) -> Option<Vec<u8>> {
    let drop: Vec<Range<usize>> = fields(msg)
        .into_iter()
        .filter(|f| pred(f))
        .map(|f| f.range)
        .collect();
    if drop.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(msg.len());
    let mut pos = 0;
    for r in drop {
        out.extend_from_slice(&msg[pos..r.start]);
        pos = r.end;
    }
    out.extend_from_slice(&msg[pos..]);
    Some(out)
}

/// The address in the first `From:` field (`Name <a@b>` or `a@b`).
pub fn from_address(msg: &[u8]) -> Option<String> {
    let f = fields(msg).into_iter().find(|f| f.is("From"))?;
    let text = f.text();
    let addr = match text.rsplit_once('<') {
        Some((_, rest)) => rest.split_once('>').map(|(a, _)| a).unwrap_or(rest),
        None => text.split(',').next().unwrap_or(""),
    };
    let addr = addr.trim();
    (!addr.is_empty()).then(|| addr.to_string())
}

/// An RFC 5322 §3.3 date-time in UTC, e.g. `Fri, 27 Nov 2026 20:58:30 +0000`
/// (mail-builder's formatter).
pub fn rfc5322_date(unix_secs: i64) -> String {
    mail_builder::headers::date::Date::new(unix_secs).to_rfc822()
}

/// RFC 3339 (UTC, seconds) of a time in seconds since the Unix epoch,
/// e.g. `2026-11-27T20:58:30Z` (humantime's formatter).
pub fn rfc3339_secs(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"Received: from a\r\n\tby b\r\nX-Priority-Queue: 9\r\nSubject: hi\r\nx-priority-queue:1\r\n\r\nX-Priority-Queue: body\r\n";

    #[test]
    fn walks_fields_with_folding() {
        let f = fields(MSG);
        assert_eq!(f.len(), 4);
        assert!(f[0].is("received"));
        assert_eq!(f[0].text(), "from a by b");
        assert_eq!(f[1].text(), "9");
        assert_eq!(
            body_offset(MSG),
            MSG.len() - b"X-Priority-Queue: body\r\n".len()
        );
    }

    #[test]
    fn removes_every_instance_in_the_header_only() {
        let out = remove_fields(MSG, "X-Priority-Queue").unwrap();
        assert_eq!(
            out,
            b"Received: from a\r\n\tby b\r\nSubject: hi\r\n\r\nX-Priority-Queue: body\r\n"
        );
        assert!(remove_fields(b"Subject: x\r\n\r\n", "X-Priority-Queue").is_none());
        assert!(remove_fields(b"\r\nX-Priority-Queue: 1\r\n", "X-Priority-Queue").is_none());
    }

    #[test]
    fn from_addresses() {
        assert_eq!(
            from_address(b"From: Alice <alice@example.com>\r\n\r\n").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(
            from_address(b"Subject: x\r\nFrom: bob@example.net\r\n\r\n").as_deref(),
            Some("bob@example.net")
        );
        assert_eq!(from_address(b"Subject: x\r\n\r\nFrom: body@x\r\n"), None);
    }

    #[test]
    fn dates() {
        // RFC 5322 §3.3: the day is 1*2DIGIT
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_813_110),
            "Fri, 27 Nov 2026 20:58:30 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc3339_secs(1_795_813_110), "2026-11-27T20:58:30Z");
    }
}
