//! The machine-readable parts of reports: RFC 3464 `message/delivery-status`
//! and RFC 5965 `message/feedback-report`.
//!
//! Both are blocks of header-style fields separated by blank lines.
//! mail-parser 0.11 hands these parts over as opaque bytes, so they are
//! parsed here: names case-insensitive, folded lines joined, anything
//! malformed skipped rather than trusted.

use super::classify::{Class, classify_status, enhanced_codes};
use super::{Bounced, extract_address};

/// One block of fields, names lower-cased, values unfolded and trimmed.
#[derive(Debug, Default)]
pub(super) struct Block(Vec<(String, String)>);

impl Block {
    /// The first value of field `name` (lower-case).
    pub fn get<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.all(name).next()
    }

    /// Every value of field `name` (lower-case), in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits `text` into blocks on blank lines and parses each one's fields.
pub(super) fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur = Block::default();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !cur.0.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with([' ', '\t']) {
            // Folded continuation of the previous field.
            if let Some((_, v)) = cur.0.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(' ') {
                cur.0
                    .push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
        }
    }
    if !cur.0.is_empty() {
        out.push(cur);
    }
    out
}

/// `"rfc822; Bob@Example.net"` → `"Bob@Example.net"` (RFC 3464 §2.3.2
/// address-type, then the address; angle brackets tolerated).
fn typed_address(value: &str) -> Option<String> {
    let addr = value.split_once(';').map_or(value, |(_, a)| a);
    extract_address(addr)
}

/// `"smtp; 550 5.1.1 User unknown"` → `"550 5.1.1 User unknown"`.
fn diagnostic(value: &str) -> String {
    match value.split_once(';') {
        Some((kind, rest)) if !kind.contains(' ') => rest.trim().to_string(),
        _ => value.trim().to_string(),
    }
}

/// The per-recipient blocks of a delivery-status part.
pub(super) fn dsn_recipients(text: &str) -> Vec<Bounced> {
    blocks(text)
        .iter()
        .filter_map(|b| {
            let address = b
                .get("final-recipient")
                .and_then(typed_address)
                .or_else(|| b.get("original-recipient").and_then(typed_address))?;
            let action = b.get("action").map(|a| a.trim().to_ascii_lowercase());
            let status = b.get("status").map(|s| {
                enhanced_codes(s)
                    .first()
                    .map_or_else(|| s.to_string(), |c| c.to_string())
            });
            let diagnostic = b.get("diagnostic-code").map(diagnostic);
            let class =
                recipient_class(action.as_deref(), status.as_deref(), diagnostic.as_deref());
            Some(Bounced {
                address,
                action,
                status,
                diagnostic,
                class,
            })
        })
        .collect()
}

/// RFC 3464 §2.3.3 actions first, then the status and diagnostic.
fn recipient_class(action: Option<&str>, status: Option<&str>, diag: Option<&str>) -> Class {
    match action {
        Some("delivered" | "relayed" | "expanded") => return Class::Success,
        Some("delayed") => return Class::Soft,
        _ => {}
    }
    classify_status(&format!(
        "{} {}",
        status.unwrap_or_default(),
        diag.unwrap_or_default()
    ))
}

/// What an ARF report says.
#[derive(Debug, Default)]
pub(super) struct Feedback {
    pub feedback_type: Option<String>,
    pub rcpt_to: Vec<String>,
    pub mail_from: Option<String>,
    pub reported_domain: Option<String>,
}

/// The fields of a `message/feedback-report` part (RFC 5965 §3.1).
pub(super) fn feedback(text: &str) -> Feedback {
    let mut f = Feedback::default();
    for b in blocks(text) {
        if f.feedback_type.is_none() {
            f.feedback_type = b.get("feedback-type").map(|t| t.to_ascii_lowercase());
        }
        f.rcpt_to
            .extend(b.all("original-rcpt-to").filter_map(extract_address));
        if f.mail_from.is_none() {
            f.mail_from = b.get("original-mail-from").and_then(extract_address);
        }
        if f.reported_domain.is_none() {
            f.reported_domain = b.get("reported-domain").map(|d| d.to_ascii_lowercase());
        }
    }
    f
}

/// The class of a complaint of `feedback_type` (RFC 5965 §7.3): `not-spam`
/// is praise, `auth-failure` (RFC 6591) is about authentication, every
/// other type (abuse, fraud, virus, other, unknown) is a complaint.
pub(super) fn feedback_class(feedback_type: Option<&str>) -> Class {
    match feedback_type {
        Some("not-spam") => Class::Success,
        Some("auth-failure") => Class::Policy,
        _ => Class::Complaint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_fold_and_ignore_case() {
        let text = "Reporting-MTA: dns; mx.example.org\r\n\
                    X-Odd line without colon\r\n\
                    \r\n  \t\r\n\
                    final-RECIPIENT: rfc822;\r\n bob@example.net\r\n\
                    Diagnostic-Code: smtp; 550-5.1.1 first\r\n\t550 5.1.1 second\r\n\
                    \n\
                    Final-Recipient: rfc822; carol@example.net";
        let b = blocks(text);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].get("reporting-mta"), Some("dns; mx.example.org"));
        assert_eq!(b[0].0.len(), 1);
        assert_eq!(b[1].get("final-recipient"), Some("rfc822; bob@example.net"));
        assert_eq!(
            b[1].get("diagnostic-code"),
            Some("smtp; 550-5.1.1 first 550 5.1.1 second")
        );
        assert_eq!(
            b[2].get("final-recipient"),
            Some("rfc822; carol@example.net")
        );
    }

    #[test]
    fn recipients_and_classes() {
        let text = "Reporting-MTA: dns; mx\n\n\
            Final-Recipient: rfc822; <Bob@Example.NET>\nAction: FAILED\nStatus: 5.1.1 (bad mailbox)\n\
            Diagnostic-Code: smtp; 550 5.1.1 User unknown\n\n\
            Original-Recipient: rfc822;carol@example.net\nAction: delayed\nStatus: 4.4.1\n\n\
            Final-Recipient: rfc822; dave@example.net\nAction: delivered\nStatus: 2.0.0\n\n\
            Final-Recipient: rfc822; erin@example.net\nAction: failed\nStatus: 5.0.0\n\
            Diagnostic-Code: X-Postfix; host said: 550 Mailbox does not exist\n\n\
            Final-Recipient: rfc822; not an address\nAction: failed\n";
        let r = dsn_recipients(text);
        assert_eq!(
            super::super::summary(&r),
            [
                ("Bob@Example.NET", Some("5.1.1"), Class::Hard),
                ("carol@example.net", Some("4.4.1"), Class::Soft),
                ("dave@example.net", Some("2.0.0"), Class::Success),
                ("erin@example.net", Some("5.0.0"), Class::Hard),
            ]
        );
        assert_eq!(r[0].action.as_deref(), Some("failed"));
        assert_eq!(r[0].diagnostic.as_deref(), Some("550 5.1.1 User unknown"));
        assert_eq!(
            r[3].diagnostic.as_deref(),
            Some("host said: 550 Mailbox does not exist")
        );
    }

    #[test]
    fn feedback_fields() {
        let f = feedback(
            "Feedback-Type: Abuse\r\nUser-Agent: X/1\r\nVersion: 1\r\n\
             Original-Mail-From: <b+abc@bounce.example.com>\r\n\
             Original-Rcpt-To: <u1@example.net>\r\nOriginal-Rcpt-To: u2@example.net\r\n\
             Reported-Domain: Example.COM\r\n",
        );
        assert_eq!(f.feedback_type.as_deref(), Some("abuse"));
        assert_eq!(f.rcpt_to, ["u1@example.net", "u2@example.net"]);
        assert_eq!(f.mail_from.as_deref(), Some("b+abc@bounce.example.com"));
        assert_eq!(f.reported_domain.as_deref(), Some("example.com"));
        assert_eq!(feedback_class(Some("abuse")), Class::Complaint);
        assert_eq!(feedback_class(None), Class::Complaint);
        assert_eq!(feedback_class(Some("not-spam")), Class::Success);
        assert_eq!(feedback_class(Some("auth-failure")), Class::Policy);
    }
}
