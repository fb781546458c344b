//! Removing whitespace-only lines from the end of a message body before
//! signing.
//!
//! RFC 6376 §3.4.4 relaxed body canonicalization strips trailing
//! whitespace from every line and then ignores empty lines at the end of
//! the body, so `"a\r\n  \r\n"` canonicalizes to `"a\r\n"`. mail-auth 0.13.3
//! keeps such a line as an empty one (`"a\r\n\r\n"`; upstream issue #62,
//! fixed in 0.15), so every standard verifier would reject the body hash.
//! Removing those lines before signing changes nothing a reader sees and
//! gives the same canonical body under both readings.

use std::borrow::Cow;

/// `message` with every line after the last line holding non-whitespace
/// body text removed, when any of those lines contains a space or tab. The
/// last content line keeps its own line ending. Lines that are merely empty
/// are left alone (mail-auth handles them), as is a message without a
/// body.
pub(super) fn trim_trailing_blank_lines(message: &[u8]) -> Cow<'_, [u8]> {
    let Some(body_start) = body_offset(message) else {
        return Cow::Borrowed(message);
    };
    let body = &message[body_start..];
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    // End of the last line with content (after its LF), or the body start.
    let keep = match body.iter().rposition(|b| !is_ws(b)) {
        Some(last) => match body[last..].iter().position(|&b| b == b'\n') {
            Some(lf) => last + lf + 1,
            // The last content line has no line end: nothing follows it.
            None => return Cow::Borrowed(message),
        },
        None => 0,
    };
    if body[keep..].iter().any(|&b| b == b' ' || b == b'\t') {
        Cow::Owned(message[..body_start + keep].to_vec())
    } else {
        Cow::Borrowed(message)
    }
}

/// Offset of the first body byte: just after the first empty line (CRLF or
/// bare LF). `None` when the message is all header.
fn body_offset(message: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    while line_start < message.len() {
        let rest = &message[line_start..];
        if rest.starts_with(b"\r\n") {
            return Some(line_start + 2);
        }
        if rest.starts_with(b"\n") {
            return Some(line_start + 1);
        }
        let lf = rest.iter().position(|&b| b == b'\n')?;
        line_start += lf + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trim(s: &str) -> String {
        String::from_utf8(trim_trailing_blank_lines(s.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn trailing_whitespace_lines_go() {
        assert_eq!(
            trim("From: a\r\n\r\nbody\r\n  \r\n"),
            "From: a\r\n\r\nbody\r\n"
        );
        assert_eq!(
            trim("From: a\r\n\r\nbody\r\n\t\r\n\r\n \t \r\n"),
            "From: a\r\n\r\nbody\r\n"
        );
        // An unterminated whitespace-only last line.
        assert_eq!(trim("From: a\r\n\r\nx\r\n   "), "From: a\r\n\r\nx\r\n");
        // A body of nothing but whitespace becomes empty.
        assert_eq!(trim("From: a\r\n\r\n  \r\n\t\r\n"), "From: a\r\n\r\n");
    }

    #[test]
    fn everything_else_stays() {
        for s in [
            "From: a\r\n\r\nbody\r\n",
            "From: a\r\n\r\nbody\r\n\r\n\r\n",
            "From: a\r\n\r\nbody  \r\n",
            "From: a\r\n\r\nbody  ",
            "From: a\r\n\r\n  \r\nbody\r\n",
            "From: a\r\n\r\n",
            "From: a\r\n",
            "From: a\r\nSubject:  \r\n",
            "",
        ] {
            assert!(
                matches!(trim_trailing_blank_lines(s.as_bytes()), Cow::Borrowed(_)),
                "{s:?}"
            );
        }
    }

    #[test]
    fn headers_are_never_touched() {
        // Whitespace in headers, even a folded whitespace-only continuation,
        // is not body.
        let m = "From: a\r\nX-Y: v\r\n  \r\n\r\nb\r\n \r\n";
        assert_eq!(trim(m), "From: a\r\nX-Y: v\r\n  \r\n\r\nb\r\n");
        assert_eq!(body_offset(b"A: b\nC: d\n\nbody"), Some(11));
        assert_eq!(body_offset(b"\r\nbody"), Some(2));
        assert_eq!(body_offset(b"A: b\r\n"), None);
    }
}
