//! Reading mail that comes back: delivery status notifications (RFC 3464),
//! spam complaints (ARF, RFC 5965) and unstructured non-delivery reports.
//!
//! The VERP token in the address a report arrives at says which message
//! and recipient it concerns; this module says what happened to them, so
//! the daemon can suppress dead addresses and record complaints. mail-parser
//! takes the MIME structure apart; the report fields are parsed in
//! `fields.rs`, plain-text bounces by the heuristics in `ndr.rs`, and
//! [`classify_status`] turns codes into a [`Class`].
//!
//! Nothing here trusts its input: [`parse`] returns `None` for anything
//! it does not recognise and never panics (a test feeds it garbage).

mod classify;
mod fields;
mod ndr;
#[cfg(test)]
mod tests;

use mail_parser::{Message, MessageParser, MimeHeaders};

pub use classify::{Class, classify_status};

/// What kind of report a returned message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An RFC 3464 delivery status notification (`multipart/report;
    /// report-type=delivery-status`).
    Dsn,
    /// A non-delivery report in plain text, read heuristically.
    Ndr,
    /// An RFC 5965 feedback report (`report-type=feedback-report`).
    Complaint,
}

/// One recipient a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounced {
    /// The recipient address as the report gives it.
    pub address: String,
    /// DSN `Action` (lower-cased: failed, delayed, delivered, relayed,
    /// expanded); `None` for NDRs and complaints.
    pub action: Option<String>,
    /// Enhanced status code (`5.1.1`), or for NDRs without one the basic
    /// reply code (`550`).
    pub status: Option<String>,
    /// The remote server's words: DSN `Diagnostic-Code` without its type,
    /// or the NDR line holding the status (at most 500 bytes).
    pub diagnostic: Option<String>,
    /// What the outcome means for the address.
    pub class: Class,
}

/// Address, status and class of each recipient: what tests compare.
#[cfg(test)]
pub(crate) fn summary(r: &[Bounced]) -> Vec<(&str, Option<&str>, Class)> {
    r.iter()
        .map(|b| (b.address.as_str(), b.status.as_deref(), b.class))
        .collect()
}

/// A parsed report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returned {
    /// The kind of report.
    pub kind: Kind,
    /// The recipients it is about; may be empty for a complaint whose
    /// recipient was redacted (use [`Returned::original_mail_from`]).
    pub recipients: Vec<Bounced>,
    /// `Message-ID` of the original message, without angle brackets, when
    /// the report includes its headers.
    pub original_message_id: Option<String>,
    /// The original envelope sender: ARF `Original-Mail-From`, else the
    /// attached original's `Return-Path`. For complaints, which arrive at
    /// a feedback address rather than the bounce address, this carries the
    /// VERP token that names message and recipient.
    pub original_mail_from: Option<String>,
    /// ARF `Feedback-Type` (lower-cased), for complaints.
    pub feedback_type: Option<String>,
}

/// Reads a returned message. `None` when it is not recognisably a report
/// (e.g. an auto-reply or a person answering the bounce address).
pub fn parse(raw: &[u8]) -> Option<Returned> {
    let msg = MessageParser::default().parse(raw)?;
    let mut dsn_text = None;
    let mut arf_text = None;
    for part in &msg.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        if !ct.ctype().eq_ignore_ascii_case("message") {
            continue;
        }
        let sub = ct.subtype().unwrap_or_default().to_ascii_lowercase();
        let text = || String::from_utf8_lossy(part.contents()).into_owned();
        match sub.as_str() {
            "delivery-status" | "global-delivery-status" if dsn_text.is_none() => {
                dsn_text = Some(text());
            }
            "feedback-report" if arf_text.is_none() => arf_text = Some(text()),
            _ => {}
        }
    }
    let original = Original::find(&msg);
    if let Some(text) = arf_text {
        let f = fields::feedback(&text);
        let class = fields::feedback_class(f.feedback_type.as_deref());
        let mut rcpts = f.rcpt_to;
        if rcpts.is_empty() {
            rcpts.extend(original.single_to.clone());
        }
        return Some(Returned {
            kind: Kind::Complaint,
            recipients: rcpts
                .into_iter()
                .map(|address| Bounced {
                    address,
                    action: None,
                    status: None,
                    diagnostic: None,
                    class,
                })
                .collect(),
            original_message_id: original.message_id,
            original_mail_from: f.mail_from.or(original.return_path),
            feedback_type: f.feedback_type,
        });
    }
    if let Some(text) = dsn_text {
        let recipients = fields::dsn_recipients(&text);
        if !recipients.is_empty() {
            return Some(Returned {
                kind: Kind::Dsn,
                recipients,
                original_message_id: original.message_id,
                original_mail_from: original.return_path,
                feedback_type: None,
            });
        }
    }
    parse_ndr(&msg, original)
}

/// The plain-text fallback.
fn parse_ndr(msg: &Message<'_>, original: Original) -> Option<Returned> {
    let from = msg.header_raw("From").unwrap_or_default();
    if !ndr::looks_like_bounce(from, msg.subject().unwrap_or_default()) {
        return None;
    }
    let mut text = String::new();
    for i in 0..msg.text_body.len() {
        if let Some(t) = msg.body_text(i) {
            text.push_str(&t);
            text.push('\n');
        }
    }
    let mut own: Vec<String> = Vec::new();
    for name in ["From", "To", "Cc", "Return-Path", "Sender", "Reply-To"] {
        for raw in msg
            .root_part()
            .headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
        {
            let value = msg
                .raw_message
                .get(raw.offset_start() as usize..raw.offset_end() as usize)
                .unwrap_or_default();
            let value = String::from_utf8_lossy(value);
            own.extend(
                ndr::addresses_in(&value)
                    .iter()
                    .map(|a| a.to_ascii_lowercase()),
            );
        }
    }
    let recipients = ndr::recipients(&text, &own);
    if recipients.is_empty() {
        return None;
    }
    let original_message_id = original.message_id.or_else(|| message_id_in(&text));
    Some(Returned {
        kind: Kind::Ndr,
        recipients,
        original_message_id,
        original_mail_from: original.return_path,
        feedback_type: None,
    })
}

/// Facts about the original message attached to a report
/// (`message/rfc822`, `message/global`, `text/rfc822-headers`,
/// `message/global-headers`).
#[derive(Debug, Default)]
struct Original {
    message_id: Option<String>,
    return_path: Option<String>,
    /// The `To:` address when there is exactly one.
    single_to: Option<String>,
}

impl Original {
    fn find(msg: &Message<'_>) -> Original {
        for part in msg.parts.iter().skip(1) {
            if let Some(m) = part.message() {
                return Original::of(m);
            }
            let Some(ct) = part.content_type() else {
                continue;
            };
            let ty =
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase();
            if (ty == "text/rfc822-headers" || ty == "message/global-headers")
                && let Some(m) = MessageParser::new().parse_headers(part.contents())
            {
                return Original::of(&m);
            }
        }
        Original::default()
    }

    fn of(m: &Message<'_>) -> Original {
        let to: Vec<&str> = m
            .to()
            .map(|a| a.iter().filter_map(|a| a.address()).collect())
            .unwrap_or_default();
        Original {
            message_id: m.message_id().map(str::to_string),
            return_path: m.header_raw("Return-Path").and_then(extract_address),
            single_to: (to.len() == 1).then(|| to[0].to_string()),
        }
    }
}

/// The first `Message-ID:` in free text, without brackets.
fn message_id_in(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim_start();
        let (name, value) = l.split_once(':')?;
        if !name.eq_ignore_ascii_case("message-id") {
            return None;
        }
        let id = value.trim().trim_start_matches('<').trim_end_matches('>');
        (!id.is_empty() && !id.contains(char::is_whitespace)).then(|| id.to_string())
    })
}

/// The first address in `value` (`"<a@b.c>"`, `"rfc822; a@b.c"`, …).
pub(crate) fn extract_address(value: &str) -> Option<String> {
    ndr::addresses_in(value).first().map(|a| a.to_string())
}
