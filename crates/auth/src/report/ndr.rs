//! Heuristics for non-delivery reports without RFC 3464 structure
//! (qmail, old Exchange, hand-rolled bounce generators).
//!
//! Plain text cannot be parsed reliably, so the rules are strict about
//! *whether* something is a bounce — it must come from a delivery daemon or
//! say so in its subject, and it must carry a status code and an address —
//! and modest about *what* it says: each status line is paired with the
//! address on the same line or the nearest one above it. Addresses of the
//! report itself (its sender and recipients) and of header lines that name
//! the original's sender or ids are never taken for the recipient.

use super::Bounced;
use super::classify::{basic_code, classify_status, enhanced_codes};

/// How far above a status line its address may be, in lines.
const LOOKBACK: usize = 8;
/// Longest diagnostic kept, bytes.
const MAX_DIAGNOSTIC: usize = 500;

/// Whether a report's sender or subject marks it as a bounce.
pub(super) fn looks_like_bounce(from: &str, subject: &str) -> bool {
    const SENDERS: &[&str] = &[
        "mailer-daemon",
        "mailerdaemon",
        "mail-daemon",
        "postmaster",
        "mail delivery",
        "microsoftexchange",
        "bounce",
    ];
    const SUBJECTS: &[&str] = &[
        "undeliver",
        "undelivered",
        "not delivered",
        "delivery status",
        "delivery failure",
        "delivery failed",
        "delivery has failed",
        "failure notice",
        "returned mail",
        "returned to sender",
        "mail delivery",
        "could not be delivered",
        "non-delivery",
        "nondeliverable",
    ];
    let from = from.to_ascii_lowercase();
    let subject = subject.to_ascii_lowercase();
    SENDERS.iter().any(|s| from.contains(s)) || SUBJECTS.iter().any(|s| subject.contains(s))
}

/// Recipients named in `text`, excluding `own` addresses (lower-cased:
/// the report's From/To/Return-Path).
pub(super) fn recipients(text: &str, own: &[String]) -> Vec<Bounced> {
    let lines: Vec<&str> = text.lines().collect();
    let per_line: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| {
            if skipped_header(l) {
                Vec::new()
            } else {
                addresses_in(l)
                    .into_iter()
                    .filter(|a| usable(a, own))
                    .collect()
            }
        })
        .collect();
    let mut out: Vec<Bounced> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(status) = status_of(line) else {
            continue;
        };
        let address = (i.saturating_sub(LOOKBACK)..=i)
            .rev()
            .find_map(|j| per_line[j].first());
        let Some(address) = address else { continue };
        if out.iter().any(|b| b.address.eq_ignore_ascii_case(address)) {
            continue;
        }
        out.push(Bounced {
            address: address.to_string(),
            action: None,
            status: Some(status),
            diagnostic: Some(truncate(line.trim(), MAX_DIAGNOSTIC).to_string()),
            class: classify_status(line),
        });
    }
    out
}

/// The status a line states: an enhanced code, else a basic reply code.
fn status_of(line: &str) -> Option<String> {
    if let Some(c) = enhanced_codes(line).first() {
        return Some(c.to_string());
    }
    basic_code(line)
        .filter(|c| *c >= 400)
        .map(|c| c.to_string())
}

/// Header lines whose addresses are never the failed recipient.
fn skipped_header(line: &str) -> bool {
    const NAMES: &[&str] = &[
        "from:",
        "sender:",
        "reply-to:",
        "return-path:",
        "message-id:",
        "in-reply-to:",
        "references:",
        "received:",
        "dkim-signature:",
        "list-unsubscribe:",
    ];
    let l = line.trim_start().as_bytes();
    NAMES
        .iter()
        .any(|n| l.len() >= n.len() && l[..n.len()].eq_ignore_ascii_case(n.as_bytes()))
}

/// Not one of the report's own addresses nor a daemon's.
fn usable(addr: &str, own: &[String]) -> bool {
    let lower = addr.to_ascii_lowercase();
    let local = lower.split('@').next().unwrap_or_default();
    !own.contains(&lower) && !matches!(local, "mailer-daemon" | "postmaster" | "mail-daemon")
}

/// Every address-shaped token in `text` (`local@domain.tld`), in order.
pub(super) fn addresses_in(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let local_ok = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&*+-/=?^_`{|}~.".contains(&c);
    let domain_ok = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'.';
    let mut out = Vec::new();
    let mut from = 0;
    for (at, _) in text.match_indices('@') {
        if at < from {
            continue;
        }
        let mut start = at;
        while start > from && local_ok(b[start - 1]) {
            start -= 1;
        }
        while start < at && b[start] == b'.' {
            start += 1;
        }
        let mut end = at + 1;
        while end < b.len() && domain_ok(b[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let domain = &text[at + 1..end];
        let good_domain = domain.contains('.')
            && domain
                .split('.')
                .all(|l| !l.is_empty() && !l.starts_with('-'));
        if start < at && good_domain {
            out.push(&text[start..end]);
            from = end;
        }
    }
    out
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Class;

    #[test]
    fn address_tokens() {
        assert_eq!(
            addresses_in("<Bob.Smith+x@Example.NET>: 'carol@example.org'. a@b @c.d e@f.g-"),
            ["Bob.Smith+x@Example.NET", "carol@example.org", "e@f.g"]
        );
        assert_eq!(addresses_in(".x@y.z é@ü.de @@ a@@b.c"), ["x@y.z"]);
        assert!(addresses_in("no addresses here").is_empty());
    }

    #[test]
    fn qmail_style() {
        let text = "Hi. This is the qmail-send program at mx.example.net.\n\
                    I'm afraid I wasn't able to deliver your message to the following addresses.\n\n\
                    <bob@example.net>:\n\
                    Sorry, no mailbox here by that name. (#5.1.1)\n\n\
                    <carol@example.net>:\n\
                    198.51.100.7 does not like recipient.\n\
                    Remote host said: 552 5.2.2 Mailbox full\n\
                    --- Below this line is a copy of the message.\n\n\
                    Return-Path: <b+token@bounce.example.com>\n\
                    From: alice@example.com\n\
                    To: bob@example.net\n";
        let own = vec!["b+token@bounce.example.com".to_string()];
        let r = recipients(text, &own);
        assert_eq!(
            super::super::summary(&r),
            [
                ("bob@example.net", Some("5.1.1"), Class::Hard),
                ("carol@example.net", Some("5.2.2"), Class::Soft),
            ]
        );
    }

    #[test]
    fn sender_and_id_lines_are_not_recipients() {
        let text = "From: alice@example.com\n\
                    Message-ID: <id-1@example.com>\n\
                    Return-Path: <b+x@bounce.example.com>\n\
                    550 5.1.1 rejected\n";
        assert!(recipients(text, &[]).is_empty());
        let text = format!("To: bob@example.net\n{text}");
        assert_eq!(recipients(&text, &[])[0].address, "bob@example.net");
        // The report's own addresses never count.
        assert!(recipients(&text, &["bob@example.net".into()]).is_empty());
    }

    #[test]
    fn bounce_markers() {
        assert!(looks_like_bounce("MAILER-DAEMON@mx.example.net", ""));
        assert!(looks_like_bounce("Mail Delivery System <x@y.z>", ""));
        assert!(looks_like_bounce(
            "someone@example.net",
            "Undeliverable: hello"
        ));
        assert!(!looks_like_bounce("bob@example.net", "Re: your offer"));
        assert_eq!(truncate("ééé", 3), "é");
    }
}
