//! Delivery status notifications (RFC 3464 inside an RFC 6522
//! `multipart/report`, built with mail-builder). They go from the null
//! sender to the original envelope sender — never to a null sender, so a
//! bounce can never bounce — and re-enter through ingest in the original
//! message's lane, so a bounce storm from a bulk blast stays in the bulk
//! lane. NOTIFY (RFC 3461) decides which recipients are reported; RET
//! decides whether the whole message or only its header comes back; ENVID
//! and ORCPT are echoed.

use std::sync::Arc;

use laneway_common::envelope::{DsnRet, Envelope, Recipient};
use laneway_common::headers::{self, rfc5322_date};
use laneway_common::ingest::BoxFuture;
use laneway_common::{Ingest, LaneRequest, Submission};
use laneway_spool::queue::{DsnAction, Notice, Notifier};
use laneway_spool::store::Spooled;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};

use laneway_common::delivery::{Outcome, Status};

/// Originals larger than this come back as headers only.
pub const MAX_RETURNED: usize = 1 << 20;

/// Makes DSNs and submits them through ingest.
pub struct DsnNotifier {
    ingest: Arc<dyn Ingest>,
    hostname: String,
}

impl DsnNotifier {
    /// A notifier for a relay called `hostname`.
    pub fn new(ingest: Arc<dyn Ingest>, hostname: String) -> DsnNotifier {
        DsnNotifier { ingest, hostname }
    }
}

/// Whether `r` asked to be told about `action` (RFC 3461 §4.1).
fn wants(r: &Recipient, action: DsnAction) -> bool {
    let n = &r.notify;
    !n.never
        && match action {
            DsnAction::Failed => n.failure,
            DsnAction::Delayed => n.delay,
            DsnAction::Delivered | DsnAction::Relayed => n.success && n.explicit,
        }
}

/// Builds the DSN for `notice` about a message with this envelope and
/// content; `None` when nobody is to be told.
pub fn build(
    hostname: &str,
    env: &Envelope,
    message: &[u8],
    notice: &Notice,
    now_secs: i64,
) -> Option<Vec<u8>> {
    if env.is_null_sender() {
        return None;
    }
    let rcpts: Vec<(&Recipient, &Outcome)> = notice
        .recipients
        .iter()
        .filter_map(|(i, why)| env.recipients.get(*i).map(|r| (r, why)))
        .filter(|(r, _)| wants(r, notice.action))
        .collect();
    if rcpts.is_empty() {
        return None;
    }
    let (subject, intro, action) = match notice.action {
        DsnAction::Failed => (
            "Undelivered Mail Returned to Sender",
            "your message could not be delivered to one or more recipients. It is attached below.",
            "failed",
        ),
        DsnAction::Delayed => (
            "Delayed Mail (still being retried)",
            "your message has not been delivered yet to one or more recipients. The mail system will keep trying; you do not need to send it again.",
            "delayed",
        ),
        DsnAction::Delivered => (
            "Successful Mail Delivery Report",
            "your message was delivered to the recipients below.",
            "delivered",
        ),
        DsnAction::Relayed => (
            "Successful Mail Delivery Report",
            "your message was relayed to the recipients' mail systems, which do not report delivery.",
            "relayed",
        ),
    };
    let mut text = format!(
        "This is the mail system at host {hostname}.\r\n\r\nWe are sorry to tell you that {intro}\r\n\r\n"
    );
    if matches!(notice.action, DsnAction::Delivered | DsnAction::Relayed) {
        text = format!(
            "This is the mail system at host {hostname}.\r\n\r\nFor your information: {intro}\r\n\r\n"
        );
    }
    for (r, why) in &rcpts {
        text.push_str(&format!("<{}>: {}\r\n", r.address, why));
    }
    let mut status = format!(
        "Reporting-MTA: dns; {hostname}\r\nX-Laneway-Queue-ID: {}\r\n",
        notice.id
    );
    if let Some(envid) = &env.envid {
        status.push_str(&format!("Original-Envelope-Id: {envid}\r\n"));
    }
    status.push_str(&format!(
        "Arrival-Date: {}\r\n",
        rfc5322_date((env.queued_at_ms / 1000) as i64)
    ));
    for (r, why) in &rcpts {
        status.push_str("\r\n");
        if let Some(o) = &r.orcpt {
            status.push_str(&format!("Original-Recipient: {o}\r\n"));
        }
        status.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\nAction: {action}\r\n",
            r.address
        ));
        let said = report_of(notice.action, why);
        status.push_str(&format!("Status: {}\r\n", said.status));
        if let Some(mta) = &said.remote_mta {
            status.push_str(&format!("Remote-MTA: dns; {mta}\r\n"));
        }
        if let Some(d) = &said.diagnostic {
            status.push_str(&format!("Diagnostic-Code: {d}\r\n"));
        }
        if let Some(c) = said.bounce_class {
            status.push_str(&format!("X-Laneway-Bounce-Class: {c}\r\n"));
        }
        status.push_str(&format!(
            "Last-Attempt-Date: {}\r\n",
            rfc5322_date(now_secs)
        ));
    }
    // RFC 8689 §4.3: a notice about a REQUIRETLS message returns only its
    // headers (and travels with REQUIRETLS itself, see notify).
    let headers_only =
        env.ret == Some(DsnRet::Hdrs) || env.require_tls || message.len() > MAX_RETURNED;
    let cte = |b: &[u8]| if b.is_ascii() { "7bit" } else { "8bit" };
    let returned = if headers_only {
        let head = &message[..headers::body_offset(message)];
        MimePart::new(
            ContentType::new("text/rfc822-headers"),
            BodyPart::Binary(head.to_vec().into()),
        )
        .header("Content-Transfer-Encoding", Raw::new(cte(head)))
    } else {
        MimePart::new(
            ContentType::new("message/rfc822"),
            BodyPart::Binary(message.to_vec().into()),
        )
        .header("Content-Transfer-Encoding", Raw::new(cte(message)))
    };
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new(ContentType::new("text/plain"), BodyPart::Text(text.into())),
            MimePart::new(
                ContentType::new("message/delivery-status"),
                BodyPart::Binary(status.into_bytes().into()),
            )
            .header("Content-Transfer-Encoding", Raw::new("7bit")),
            returned,
        ],
    );
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Mail Delivery System"),
            format!("MAILER-DAEMON@{hostname}"),
        ))
        .to(Address::new_address(None::<&str>, env.sender.clone()))
        .subject(subject)
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .message_id(format!("{}.{}.{}@{hostname}", notice.id, action, now_secs))
        .date(now_secs)
        .body(report)
        .write_to_vec()
        .ok()
}

/// What a DSN says about one recipient (RFC 3464 §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// `Status:`.
    pub status: Status,
    /// `Remote-MTA:` (the host that answered), when one did.
    pub remote_mta: Option<String>,
    /// `Diagnostic-Code:`: `smtp; <the remote reply>` when the remote
    /// said it, `X-Laneway; <the reason>` when Laneway decided.
    pub diagnostic: Option<String>,
    /// `X-Laneway-Bounce-Class:` (an RFC 3464 §3 extension field) for a
    /// failure: the class of [`laneway_common::bounce`].
    pub bounce_class: Option<&'static str>,
}

/// The one function that decides what a DSN reports for a result.
pub fn report_of(action: DsnAction, o: &Outcome) -> RecipientReport {
    let success = matches!(action, DsnAction::Delivered | DsnAction::Relayed);
    let diagnostic = match (&o.remote, success) {
        (Some(r), _) if !success || r.is_positive() => {
            Some(format!("smtp; {}", one_line(&r.to_string())))
        }
        (_, true) => None,
        (_, false) => Some(format!("X-Laneway; {}", one_line(&o.to_string()))),
    };
    RecipientReport {
        status: if success {
            Status::new(2, 0, 0)
        } else {
            o.status
        },
        remote_mta: o.hop.as_ref().map(|h| h.host.clone()),
        bounce_class: matches!(action, DsnAction::Failed).then(|| o.bounce_class().as_str()),
        diagnostic: if success && o.remote.is_none() {
            None
        } else {
            diagnostic
        },
    }
}

fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Notifier for DsnNotifier {
    fn notify<'a>(&'a self, original: &'a Spooled, notice: Notice) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let env = &original.envelope;
            if env.is_null_sender() {
                // RFC 5321 §4.5.5, RFC 3461 §6.2: never a DSN about a DSN.
                tracing::info!(id = %notice.id, action = ?notice.action, "no DSN: the message has a null sender");
                return;
            }
            let now = (laneway_common::envelope::now_ms() / 1000) as i64;
            let Some(message) = build(&self.hostname, env, original.message(), &notice, now) else {
                return;
            };
            let mut dsn = Envelope::local(
                String::new(),
                vec![Recipient::new(env.sender.clone())],
                "dsn",
            );
            dsn.smtputf8 = env.smtputf8;
            // RFC 8689 §4.3: a notice about a REQUIRETLS message is one too
            dsn.require_tls = env.require_tls;
            let sub = Submission {
                envelope: dsn,
                message,
                lane: LaneRequest::fixed(notice.lane),
            };
            match self.ingest.submit(sub).await {
                Ok(acc) => {
                    tracing::info!(id = %notice.id, dsn = %acc.id, lane = %notice.lane, action = ?notice.action, to = %env.sender, "DSN queued")
                }
                Err(e) => tracing::error!(id = %notice.id, error = %e, "cannot queue the DSN"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use laneway_common::delivery::{NextHop, Stage};
    use laneway_common::envelope::{Notify, Origin};
    use laneway_common::{MessageId, Priority, Reply};

    fn env() -> Envelope {
        let carol = Recipient {
            address: "carol@example.net".into(),
            orcpt: None,
            notify: Notify {
                never: true,
                success: false,
                failure: false,
                delay: false,
                explicit: true,
            },
        };
        let bob = Recipient {
            orcpt: Some("rfc822;bob@example.net".into()),
            ..Recipient::new("bob@example.net")
        };
        let mut e = Envelope::new("alice@example.com", vec![bob, carol], Origin::local());
        e.ret = Some(DsnRet::Hdrs);
        e.envid = Some("env-1".into());
        e
    }

    fn notice(action: DsnAction) -> Notice {
        Notice {
            id: MessageId::from_u64(7),
            lane: Priority::new(2).unwrap(),
            action,
            recipients: vec![
                (
                    0,
                    Outcome::remote(
                        Stage::Rcpt,
                        Reply::new(550, (5, 1, 1), "<bob@example.net>: user unknown"),
                        Some(NextHop {
                            host: "mx.example.net".into(),
                            addr: "192.0.2.1:25".parse().unwrap(),
                        }),
                    ),
                ),
                (
                    1,
                    Outcome::remote(Stage::Rcpt, Reply::new(550, (5, 1, 1), "nope"), None),
                ),
            ],
        }
    }

    #[test]
    fn failure_report_parses_as_multipart_report() {
        let msg = b"Subject: hello\r\nFrom: alice@example.com\r\n\r\nsecret body\r\n";
        let out = build("mx.test", &env(), msg, &notice(DsnAction::Failed), 0).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("multipart/report"), "{text}");
        assert!(
            text.contains("report-type=\"delivery-status\"")
                || text.contains("report-type=delivery-status"),
            "{text}"
        );
        assert!(text.contains(
            "Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.1.1"
        ));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: user unknown"));
        assert!(text.contains("Remote-MTA: dns; mx.example.net"));
        assert!(
            text.contains("X-Laneway-Bounce-Class: invalid_recipient"),
            "{text}"
        );
        assert!(text.contains("Original-Recipient: rfc822;bob@example.net"));
        assert!(text.contains("Original-Envelope-Id: env-1"));
        assert!(
            !text.contains("carol@example.net"),
            "NOTIFY=NEVER must not be reported"
        );
        // RET=HDRS: the header comes back, the body does not
        assert!(text.contains("text/rfc822-headers") && text.contains("Subject: hello"));
        assert!(!text.contains("secret body"));
        assert!(text.contains("Auto-Submitted: auto-replied"));
    }

    #[test]
    fn no_dsn_for_the_null_sender_or_unwanted_notices() {
        let mut e = env();
        e.sender.clear();
        assert!(build("mx.test", &e, b"x\r\n", &notice(DsnAction::Failed), 0).is_none());
        // SUCCESS was not asked for
        assert!(build("mx.test", &env(), b"x\r\n", &notice(DsnAction::Relayed), 0).is_none());
        let delayed = build("mx.test", &env(), b"x\r\n", &notice(DsnAction::Delayed), 0).unwrap();
        assert!(
            String::from_utf8(delayed)
                .unwrap()
                .contains("Action: delayed")
        );
    }

    #[test]
    fn what_a_dsn_says_comes_from_the_typed_result() {
        let local = Outcome::permanent(Stage::Dns, Status::new(5, 1, 10), "null MX");
        let r = report_of(DsnAction::Failed, &local);
        assert_eq!(r.status.to_string(), "5.1.10");
        assert_eq!(r.diagnostic.as_deref(), Some("X-Laneway; 5.1.10 null MX"));
        assert_eq!(r.remote_mta, None);
        let expired = Outcome::expired(&Outcome::remote(
            Stage::Rcpt,
            Reply::new(451, (4, 7, 1), "greylisted"),
            None,
        ));
        let r = report_of(DsnAction::Failed, &expired);
        assert_eq!(r.status.to_string(), "4.4.7");
        assert_eq!(
            r.diagnostic.as_deref(),
            Some("smtp; 451 4.7.1 greylisted"),
            "the last remote reply"
        );
        let relayed = Outcome::remote(Stage::Data, Reply::new(250, (2, 0, 0), "ok"), None);
        let r = report_of(DsnAction::Relayed, &relayed);
        assert_eq!(r.status.to_string(), "2.0.0");
    }
}
