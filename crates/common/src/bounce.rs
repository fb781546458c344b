//! Bounce classes: what a permanent failure or a returned bounce says
//! about why the mail could not be delivered — one place for the status
//! codes that mean a bad address (the only ones that suppress) and for the
//! table of providers' reply texts that refines the rest.

use std::sync::LazyLock;

use regex::{RegexSet, RegexSetBuilder};
use serde::{Deserialize, Serialize};

use crate::delivery::Status;

/// What a permanent failure or a returned bounce says about why the mail
/// could not be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BounceClass {
    /// The mailbox does not exist or is disabled (5.1.1, 5.1.3, 5.1.6, 5.2.1).
    InvalidRecipient,
    /// The mailbox is full (5.2.2).
    MailboxFull,
    /// The recipient domain does not exist or takes no mail (5.1.2, 5.1.10).
    DomainNotFound,
    /// Refused by the receiver's policy (5.7.x without a more specific reason).
    Policy,
    /// Refused as spam.
    SpamBlock,
    /// Refused for the sending address's or domain's reputation.
    Reputation,
    /// SPF, DKIM or DMARC failed (5.7.23–5.7.27).
    AuthFailure,
    /// TLS could not be negotiated or verified (5.7.10, TLS stage).
    Tls,
    /// The message is too large (5.2.3, 5.3.4).
    MessageTooLarge,
    /// The mail cannot be routed (5.4.x).
    Routing,
    /// Anything else.
    Other,
}

/// The recipient-side statuses: the address or its domain is bad. The one
/// list that decides suppression (RFC 3463 §3.2, RFC 7505 §4.2 for
/// 5.1.10). 5.1.7 and 5.1.8 are about the *sender* and are not here.
pub const RECIPIENT_STATUSES: &[(Status, BounceClass)] = &[
    (Status::new(5, 1, 1), BounceClass::InvalidRecipient), // bad destination mailbox
    (Status::new(5, 1, 2), BounceClass::DomainNotFound),   // bad destination system
    (Status::new(5, 1, 3), BounceClass::InvalidRecipient), // bad destination mailbox syntax
    (Status::new(5, 1, 6), BounceClass::InvalidRecipient), // mailbox has moved
    (Status::new(5, 1, 10), BounceClass::DomainNotFound),  // null MX
    (Status::new(5, 2, 1), BounceClass::InvalidRecipient), // mailbox disabled
];

impl BounceClass {
    /// Every class, in the order of the documentation.
    pub const ALL: [BounceClass; 11] = [
        BounceClass::InvalidRecipient,
        BounceClass::MailboxFull,
        BounceClass::DomainNotFound,
        BounceClass::Policy,
        BounceClass::SpamBlock,
        BounceClass::Reputation,
        BounceClass::AuthFailure,
        BounceClass::Tls,
        BounceClass::MessageTooLarge,
        BounceClass::Routing,
        BounceClass::Other,
    ];

    /// The class of a permanent failure from its enhanced status and the
    /// remote text (for a reply: [`crate::Reply::joined`]; for a returned
    /// bounce: its diagnostic). The code decides; the text refines it only
    /// where the code leaves room, and never turns a refusal that is not
    /// about the address into one that suppresses:
    /// - a recipient-side code ([`RECIPIENT_STATUSES`]) stays one — the
    ///   text may only tell a bad mailbox from a bad domain;
    /// - a policy code (5.7.x other than the TLS and authentication ones)
    ///   may become `spam_block`, `reputation`, `auth_failure` or `tls`;
    /// - an undefined detail (`x.y.0`, or a reply without an enhanced code,
    ///   taken as `x.0.0`) lets the text decide, except under 5.7 where it
    ///   cannot mean a bad address;
    /// - any other specific code keeps its class.
    pub fn classify(status: Status, text: &str) -> BounceClass {
        let by_code = BounceClass::of_status(status);
        let by_text = BounceClass::of_text(text);
        let security = |c: &BounceClass| {
            matches!(
                c,
                BounceClass::Policy
                    | BounceClass::SpamBlock
                    | BounceClass::Reputation
                    | BounceClass::AuthFailure
                    | BounceClass::Tls
            )
        };
        if by_code.suppresses() {
            by_text.filter(|c| c.suppresses()).unwrap_or(by_code)
        } else if by_code == BounceClass::Policy {
            by_text.filter(security).unwrap_or(by_code)
        } else if status.detail == 0 {
            by_text.unwrap_or(by_code)
        } else {
            by_code
        }
    }

    /// The first row of [`TEXT_RULES`] whose pattern matches `text`.
    pub fn of_text(text: &str) -> Option<BounceClass> {
        static SET: LazyLock<RegexSet> = LazyLock::new(|| {
            RegexSetBuilder::new(TEXT_RULES.iter().map(|(_, re)| *re))
                .case_insensitive(true)
                .build()
                .expect("the bounce text table compiles")
        });
        SET.matches(text).iter().next().map(|i| TEXT_RULES[i].0)
    }

    /// The class an enhanced status code implies on its own.
    pub fn of_status(s: Status) -> BounceClass {
        if let Some((_, c)) = RECIPIENT_STATUSES.iter().find(|(x, _)| *x == s) {
            return *c;
        }
        match (s.class, s.subject, s.detail) {
            (_, 2, 2) => BounceClass::MailboxFull,
            (_, 2, 3) | (_, 3, 4) => BounceClass::MessageTooLarge,
            (_, 7, 1) => BounceClass::Policy,
            (_, 7, 10) | (_, 7, 11) => BounceClass::Tls,
            (_, 7, 23..=27) => BounceClass::AuthFailure,
            (_, 7, _) => BounceClass::Policy,
            (_, 4, _) => BounceClass::Routing,
            _ => BounceClass::Other,
        }
    }

    /// Whether a failure of this class, said by the remote side, takes
    /// the address off the list: only a bad mailbox or domain.
    pub fn suppresses(self) -> bool {
        matches!(
            self,
            BounceClass::InvalidRecipient | BounceClass::DomainNotFound
        )
    }

    /// The snake_case name used in logs, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            BounceClass::InvalidRecipient => "invalid_recipient",
            BounceClass::MailboxFull => "mailbox_full",
            BounceClass::DomainNotFound => "domain_not_found",
            BounceClass::Policy => "policy",
            BounceClass::SpamBlock => "spam_block",
            BounceClass::Reputation => "reputation",
            BounceClass::AuthFailure => "auth_failure",
            BounceClass::Tls => "tls",
            BounceClass::MessageTooLarge => "message_too_large",
            BounceClass::Routing => "routing",
            BounceClass::Other => "other",
        }
    }
}

/// Providers' reply texts, first match wins, matched without regard to
/// case against the whole reply ([`crate::Reply::joined`]) or a returned
/// bounce's diagnostic. Only consulted as [`BounceClass::classify`] allows.
/// The order matters: a full mailbox before a bad one ("mailbox full" is
/// not "no such mailbox"), authentication and reputation before the word
/// "spam" (Gmail's IP block says "to protect our users from spam"), and
/// every refusal before the bad-address wordings, so that text which
/// mentions both a policy and a user never suppresses.
///
/// Sources: Gmail's SMTP error reference (support.google.com/a/answer/3726730),
/// Microsoft 365 NDR reference (learn.microsoft.com, "Email non-delivery
/// reports and SMTP errors"), Yahoo Sender Hub error codes
/// (senders.yahooinc.com/smtp-error-codes), Comcast postmaster error codes,
/// Apple iCloud postmaster (support.apple.com/102322), RFC 5321 §4.2.2
/// standard texts, Postfix and Exim default replies.
pub const TEXT_RULES: &[(BounceClass, &str)] = &[
    (
        BounceClass::MailboxFull,
        r"over ?quota|quota (exceeded|full)|exceeded (its|the|their)? ?(storage|quota)|mailbox (is )?full|out of storage|insufficient storage|storage (space|allocation)|mailbox size limit|too many messages in (this|the) mailbox|\bquota\b",
    ),
    (
        BounceClass::MessageTooLarge,
        r"(message|mail) (size|is too (large|big))|size limit|too (large|big)|exceeds? (the )?maximum (message )?size",
    ),
    (
        BounceClass::AuthFailure,
        r"\b(spf|dkim|dmarc)\b|unauthenticated|not authenticated|authenticate with|authentication (failed|check)|\bptr\b|reverse dns|\brdns\b",
    ),
    (
        BounceClass::Reputation,
        r"spamhaus|spamcop|barracuda|\bsorbs\b|\b(rbl|dnsbl)\b|black ?list|block ?list|deny ?list|reputation|banned sending ip|not accepted from this ip|from your ip|ip (address )?(is |has been )?(blocked|listed|blacklisted)|unusual rate|\[ts\d+\]|\[bl\d+\]|\bbl\d{6}\b|user complaints|unexpected volume|rate limit|\(s3150\)|proofpoint",
    ),
    (
        BounceClass::SpamBlock,
        r"spam|unsolicited|junk|virus|malware|phish|content (was )?rejected|suspicious",
    ),
    (BounceClass::Tls, r"\b(tls|starttls|ssl)\b|encrypt"),
    (
        BounceClass::Policy,
        r"polic(y|ies)|blocked|denied|not (allowed|permitted)|prohibit|relay|not accepted",
    ),
    (
        BounceClass::DomainNotFound,
        r"domain (name )?(not found|does not exist|unknown)|no such domain|host (or domain name )?(not found|unknown)|unrouteable domain",
    ),
    (
        BounceClass::InvalidRecipient,
        r"user unknown|unknown (user|recipient)|no such (user|mailbox|recipient|address)|recipient (unknown|not found|does not exist)|invalid (recipient|mailbox|address)|mailbox (not found|unavailable|does not exist|disabled)|(does not|doesn't|does no longer) exist|doesn't have an? \S+ account|no mailbox here|not our customer|unrouteable address|bad destination mailbox|account (is |has been )?disabled|not a valid (user|mailbox|recipient)",
    ),
    (
        BounceClass::Routing,
        r"unable to route|no route|mail loop|loops back|too many hops",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// `550 5.1.1 text` or `554 text`: the status of the reply as the
    /// delivery path takes it (a bare code is `x.0.0`).
    fn class_of(reply: &str) -> BounceClass {
        let mut w = reply.split([' ', '-']);
        let code: u8 = w.next().unwrap()[..1].parse().unwrap();
        let status = w
            .next()
            .and_then(Status::parse)
            .unwrap_or(Status::new(code, 0, 0));
        BounceClass::classify(status, reply)
    }

    /// Real replies from the providers' own documentation and from
    /// Postfix/Exim (sources at [`TEXT_RULES`]), with their class.
    const REAL: &[(&str, BounceClass)] = {
        use BounceClass::*;
        &[
            // Gmail
            (
                "550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces.",
                InvalidRecipient,
            ),
            (
                "550-5.2.1 The email account that you tried to reach is disabled.",
                InvalidRecipient,
            ),
            (
                "552-5.2.2 The recipient's inbox is out of storage space and inactive.",
                MailboxFull,
            ),
            (
                "552-5.3.4 Your message exceeded Google's message size limits.",
                MessageTooLarge,
            ),
            (
                "550-5.7.1 Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked.",
                SpamBlock,
            ),
            (
                "550-5.7.1 Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been blocked.",
                Reputation,
            ),
            (
                "550-5.7.1 Our system has detected that this message is likely suspicious due to the very low reputation of the sending IP address.",
                Reputation,
            ),
            (
                "550-5.7.1 The user or domain that you are sending to (or from) has a policy that prohibited the mail that you sent.",
                Policy,
            ),
            (
                "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.",
                AuthFailure,
            ),
            (
                "550-5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy.",
                AuthFailure,
            ),
            (
                "550-5.7.25 The IP address sending this message does not have a PTR record setup, or the corresponding forward DNS entry does not match the sending IP.",
                AuthFailure,
            ),
            ("530 5.7.0 Must issue a STARTTLS command first.", Tls),
            // Microsoft 365 / Outlook.com
            (
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
                InvalidRecipient,
            ),
            (
                "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302)",
                InvalidRecipient,
            ),
            (
                "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException",
                MailboxFull,
            ),
            (
                "552 5.3.4 Message size exceeds fixed maximum message size",
                MessageTooLarge,
            ),
            (
                "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).",
                Reputation,
            ),
            (
                "550 5.7.606 Access denied, banned sending IP [192.0.2.1].",
                Reputation,
            ),
            (
                "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.",
                Reputation,
            ),
            (
                "550 5.7.509 Access denied, sending domain example.com does not pass DMARC verification and has a DMARC policy of reject.",
                AuthFailure,
            ),
            (
                "550 5.7.520 Access denied, Your organization does not allow external forwarding.",
                Policy,
            ),
            (
                "550 5.7.350 Remote server returned message detected as spam",
                SpamBlock,
            ),
            (
                "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
                Routing,
            ),
            // Yahoo / AOL
            (
                "554 delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0] - mta1234.mail.bf1.yahoo.com",
                InvalidRecipient,
            ),
            (
                "554 5.7.9 Message not accepted for policy reasons. See https://senders.yahooinc.com/error-codes",
                Policy,
            ),
            (
                "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in Spamhaus's list",
                Reputation,
            ),
            (
                "550 5.7.9 This mail has been blocked because the sender is unauthenticated. Yahoo requires all senders to authenticate with either SPF or DKIM.",
                AuthFailure,
            ),
            (
                "554 5.7.5 Permanent error evaluating DMARC policy",
                AuthFailure,
            ),
            (
                "552 1 Requested mail action aborted, mailbox not found",
                InvalidRecipient,
            ),
            // iCloud
            (
                "550 5.1.1 <x@icloud.com>: user does not exist",
                InvalidRecipient,
            ),
            (
                "554 5.7.1 [CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137",
                Policy,
            ),
            (
                "550 5.7.0 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.1",
                Reputation,
            ),
            // GMX / web.de
            (
                "550 Requested action not taken: mailbox unavailable",
                InvalidRecipient,
            ),
            (
                "552 Requested mail action aborted: exceeded storage allocation",
                MailboxFull,
            ),
            ("554 Reject due to policy restrictions.", Policy),
            // Comcast
            (
                "550 5.1.1 <x@comcast.net> Not our Customer",
                InvalidRecipient,
            ),
            (
                "554 resimta-ch2-18v.sys.comcast.net 192.0.2.1 found on one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000001",
                Reputation,
            ),
            // Postfix and Exim
            (
                "550 5.1.1 <x@example.net>: Recipient address rejected: User unknown in local recipient table",
                InvalidRecipient,
            ),
            (
                "550 5.1.2 <x@nowhere.example>: Recipient address rejected: Domain not found",
                DomainNotFound,
            ),
            ("554 5.7.1 <x@example.net>: Relay access denied", Policy),
            (
                "550 5.1.8 <a@sender.example>: Sender address rejected: Domain not found",
                Other,
            ),
            ("554 5.4.6 Too many hops", Routing),
            ("550 Unrouteable address", InvalidRecipient),
            (
                "552 Message size exceeds maximum permitted",
                MessageTooLarge,
            ),
            ("550 Administrative prohibition", Policy),
            ("550 Host unknown", DomainNotFound),
        ]
    };

    #[test]
    fn real_provider_replies_get_their_class() {
        assert!(REAL.len() >= 30);
        let wrong: Vec<_> = REAL
            .iter()
            .filter(|(r, c)| class_of(r) != *c)
            .map(|(r, c)| format!("{r}: {:?}, want {c:?}", class_of(r)))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn text_never_makes_a_refusal_suppress() {
        // wordings of a bad address under a policy or sender-side code
        for (s, t) in [
            (Status::new(5, 7, 1), "550 5.7.1 user unknown"),
            (Status::new(5, 7, 0), "550 5.7.0 no such user"),
            (Status::new(5, 1, 8), "550 5.1.8 domain not found"),
            (Status::new(5, 4, 1), "550 5.4.1 recipient not found"),
        ] {
            assert!(!BounceClass::classify(s, t).suppresses(), "{t}");
        }
        // nor can it make a recipient-side code stop suppressing
        let c = BounceClass::classify(Status::new(5, 1, 1), "550 5.1.1 blocked by policy (spam)");
        assert_eq!(c, BounceClass::InvalidRecipient);
        // a policy word beats a bad-address word in a code-less reply
        assert_eq!(
            class_of("550 mailbox unavailable: blocked by policy"),
            BounceClass::Policy
        );
    }

    #[test]
    fn bounce_classes_from_codes() {
        let c = |a, b, d| BounceClass::of_status(Status::new(a, b, d));
        assert_eq!(c(5, 1, 1), BounceClass::InvalidRecipient);
        assert_eq!(c(5, 1, 10), BounceClass::DomainNotFound);
        assert_eq!(c(5, 2, 2), BounceClass::MailboxFull);
        assert_eq!(c(5, 3, 4), BounceClass::MessageTooLarge);
        assert_eq!(c(5, 7, 26), BounceClass::AuthFailure);
        assert_eq!(c(5, 7, 1), BounceClass::Policy);
        assert_eq!(c(5, 4, 4), BounceClass::Routing);
        assert_eq!(c(5, 1, 7), BounceClass::Other);
        assert_eq!(c(5, 0, 0), BounceClass::Other);
        assert_eq!(
            BounceClass::classify(Status::new(5, 0, 0), ""),
            BounceClass::Other
        );
    }
}
