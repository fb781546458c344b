//! What a status code says about the recipient address.
//!
//! Only [`Class::Hard`] suppresses future mail, so every rule here errs
//! towards the classes that do not: an address is declared dead only when
//! the code (RFC 3463 enhanced status) or, lacking a specific code, the
//! reply text clearly says so. Policy rejections (5.7.x: spam filters,
//! DMARC, blocklists) are about the sender, not the address, and a full or
//! disabled mailbox may recover.

use laneway_common::bounce::BounceClass;

/// What a returned message or an SMTP reply means for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// The mailbox or its domain does not exist (5.1.1, 5.1.2, 5.1.3,
    /// 5.1.6, 5.1.10, 5.2.1, or wording that says so): stop sending to it.
    Hard,
    /// Temporary (4.x.x), or permanent for reasons that may change
    /// (mailbox full 5.2.2, message too big 5.3.4, …) or could not be told.
    Soft,
    /// Refused by the receiver's policy (5.7.x, spam or reputation
    /// wording): recorded, never suppresses — the sender must act.
    Policy,
    /// The recipient reported the message as spam (ARF feedback report).
    Complaint,
    /// Delivered, relayed or expanded (a success DSN).
    Success,
}

impl Class {
    /// Whether this outcome alone suppresses the address for all lanes.
    /// Only [`Class::Hard`] does; complaints are handled by the caller
    /// (they suppress bulk lanes only).
    pub fn suppresses(&self) -> bool {
        matches!(self, Class::Hard)
    }
}

/// An RFC 3463 enhanced status code `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Enhanced {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl Enhanced {
    /// `x.0.0`: "other or undefined", says nothing about the cause.
    fn generic(self) -> bool {
        self.subject == 0 && self.detail == 0
    }
}

impl std::fmt::Display for Enhanced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// Classifies an SMTP reply or DSN status, e.g. `"550 5.1.1 User
/// unknown"`, `"5.2.2"`, `"smtp; 452 4.2.2 Mailbox full"`, `"550 No such
/// user"`.
///
/// The first specific enhanced code decides; without one (or with only
/// `x.0.0`), the wording does (full mailbox → Soft, spam/policy → Policy,
/// unknown user → Hard) within the reply's class; otherwise 2xx →
/// Success, 4xx and unexplained 5xx → Soft.
pub fn classify_status(status: &str) -> Class {
    let codes = enhanced_codes(status);
    if let Some(code) = codes.iter().copied().find(|c| !c.generic()) {
        return by_code(code, status);
    }
    let class = codes
        .first()
        .map(|c| c.class)
        .or_else(|| basic_code(status).map(|b| (b / 100) as u8));
    match class {
        Some(2) => Class::Success,
        Some(4) => Class::Soft,
        _ => by_wording(status),
    }
}

/// The class a specific enhanced code implies, with the text refining it
/// as [`BounceClass::classify`] allows: only the recipient-side statuses of
/// [`laneway_common::bounce::RECIPIENT_STATUSES`] (the list that also
/// decides suppression at delivery), or wording that says so where the code
/// leaves room, are hard; sender-side codes (5.1.7, 5.1.8) and routing
/// trouble (5.4.x) are not.
fn by_code(c: Enhanced, text: &str) -> Class {
    use laneway_common::delivery::Status;
    match (c.class, u8::try_from(c.subject)) {
        (2, _) => Class::Success,
        (5, Ok(s)) => of_bounce_class(BounceClass::classify(Status::new(5, s, c.detail), text)),
        _ => Class::Soft,
    }
}

/// Permanent replies without a specific code: the text table of
/// [`laneway_common::bounce::TEXT_RULES`] decides.
fn by_wording(text: &str) -> Class {
    BounceClass::of_text(text).map_or(Class::Soft, of_bounce_class)
}

/// What a bounce class means for the address.
fn of_bounce_class(c: BounceClass) -> Class {
    match c {
        c if c.suppresses() => Class::Hard,
        BounceClass::Policy
        | BounceClass::SpamBlock
        | BounceClass::Reputation
        | BounceClass::AuthFailure
        | BounceClass::Tls => Class::Policy,
        _ => Class::Soft,
    }
}

/// Every enhanced status code in `text`, in order. A code must stand
/// alone: `192.5.1.1` and `v5.1.1` are not codes.
pub(crate) fn enhanced_codes(text: &str) -> Vec<Enhanced> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if matches!(b[i], b'2' | b'4' | b'5')
            && standalone_start(b, i)
            && let Some((code, end)) = enhanced_at(b, i)
        {
            out.push(code);
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

/// The first basic reply code (`2xx`, `4xx`, `5xx`) standing alone and
/// followed by a space, a hyphen, a quote or the end.
pub(crate) fn basic_code(text: &str) -> Option<u16> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(2)).find_map(|i| {
        let d = &b[i..i + 3];
        let ok = matches!(d[0], b'2' | b'4' | b'5')
            && d[1].is_ascii_digit()
            && d[2].is_ascii_digit()
            && standalone_start(b, i)
            && matches!(
                b.get(i + 3),
                None | Some(b' ' | b'-' | b'\'' | b'"' | b')' | b'\r' | b'\n')
            );
        ok.then(|| {
            u16::from(d[0] - b'0') * 100 + u16::from(d[1] - b'0') * 10 + u16::from(d[2] - b'0')
        })
    })
}

/// No letter, digit or dot right before `i`.
fn standalone_start(b: &[u8], i: usize) -> bool {
    i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.')
}

/// Parses `d.ddd.ddd` at `i`; returns it and the index after it.
fn enhanced_at(b: &[u8], i: usize) -> Option<(Enhanced, usize)> {
    let class = b[i] - b'0';
    if b.get(i + 1) != Some(&b'.') {
        return None;
    }
    let (subject, j) = number(b, i + 2)?;
    if b.get(j) != Some(&b'.') {
        return None;
    }
    let (detail, end) = number(b, j + 1)?;
    let next = b.get(end).copied();
    let after = b.get(end + 1).copied();
    let trailing_ok = match next {
        None => true,
        Some(c) if c.is_ascii_alphanumeric() => false,
        // "5.1.1.3" is an address or version, "5.1.1." ends a sentence.
        Some(b'.') => !after.is_some_and(|c| c.is_ascii_digit()),
        Some(_) => true,
    };
    trailing_ok.then_some((
        Enhanced {
            class,
            subject,
            detail,
        },
        end,
    ))
}

/// 1–3 digits at `i`.
fn number(b: &[u8], i: usize) -> Option<(u16, usize)> {
    let len = b[i.min(b.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if !(1..=3).contains(&len) {
        return None;
    }
    let n = b[i..i + len]
        .iter()
        .fold(0u16, |n, c| n * 10 + u16::from(c - b'0'));
    Some((n, i + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_from_replies() {
        let table: &[(&str, Class)] = &[
            (
                "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown",
                Class::Hard,
            ),
            ("5.1.1", Class::Hard),
            (
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found",
                Class::Hard,
            ),
            // routing trouble and sender-side codes never suppress
            ("554 5.4.4 SMTPSEND.DNS.NonExistentDomain", Class::Soft),
            (
                "550 5.4.1 Recipient address rejected: Access denied",
                Class::Soft,
            ),
            ("550 5.1.8 Sender domain does not resolve", Class::Soft),
            ("550 5.1.7 Bad sender address syntax", Class::Soft),
            (
                "550 5.2.1 The email account that you tried to reach is disabled",
                Class::Hard,
            ),
            ("553 5.1.3 Bad recipient address syntax", Class::Hard),
            ("552 5.2.2 Mailbox full", Class::Soft),
            (
                "452 4.2.2 The email account that you tried to reach is over quota",
                Class::Soft,
            ),
            ("552 5.3.4 Message size exceeds fixed limit", Class::Soft),
            ("421 4.7.0 Try again later", Class::Soft),
            ("450 4.1.1 User unknown (temporarily)", Class::Soft),
            ("550 5.7.1 Message rejected as spam", Class::Policy),
            (
                "550 5.7.26 Unauthenticated email is not accepted (DMARC)",
                Class::Policy,
            ),
            ("250 2.0.0 OK queued", Class::Success),
            ("2.0.0", Class::Success),
            // Generic enhanced code: the wording or a later code decides.
            ("550 5.0.0 <bob@example.net>... User unknown", Class::Hard),
            (
                "smtp; 550 5.0.0 mailbox unavailable 5.1.1 no such user",
                Class::Hard,
            ),
            ("550 5.0.0 blocked by policy", Class::Policy),
            // No enhanced code at all.
            ("550 No such user here", Class::Hard),
            ("550 Mailbox quota exceeded", Class::Soft),
            ("554 Your IP is on a blocklist", Class::Policy),
            ("550 Requested action not taken", Class::Soft),
            ("451 Temporary local problem", Class::Soft),
            ("", Class::Soft),
            ("garbage 12.3 and 192.5.1.1", Class::Soft),
        ];
        for (reply, want) in table {
            assert_eq!(classify_status(reply), *want, "{reply}");
        }
    }

    #[test]
    fn only_hard_suppresses() {
        assert!(Class::Hard.suppresses());
        for c in [Class::Soft, Class::Policy, Class::Complaint, Class::Success] {
            assert!(!c.suppresses(), "{c:?}");
        }
    }

    #[test]
    fn code_scanning() {
        let codes = |s: &str| {
            enhanced_codes(s)
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(codes("(#5.1.1)"), ["5.1.1"]);
        assert_eq!(
            codes("Status: 5.1.1 (bad mailbox). Then 4.4.7."),
            ["5.1.1", "4.4.7"]
        );
        assert_eq!(
            codes("5.1.1.2 v5.1.1 10.5.1.1 3.1.1 5.1234.1 5..1"),
            Vec::<String>::new()
        );
        assert_eq!(codes("x 5.1.1"), ["5.1.1"]);
        assert_eq!(codes("5.1.1x"), Vec::<String>::new());
        assert_eq!(codes("5.1."), Vec::<String>::new());
        assert_eq!(
            basic_code("Remote Server returned '550 5.1.1 x'"),
            Some(550)
        );
        assert_eq!(basic_code("550-5.1.1 The email"), Some(550));
        assert_eq!(basic_code("code 5500 or 1550 or 55"), None);
        assert_eq!(basic_code("452"), Some(452));
        assert_eq!(basic_code("é55"), None);
    }
}
