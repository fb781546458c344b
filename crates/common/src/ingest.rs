//! The one door into the spool that both front doors (SMTP and HTTP) use.
//! The daemon implements [`Ingest`] by composing sender authentication and
//! the spool, so neither front door knows about the other, nor about DKIM.

use std::future::Future;
use std::pin::Pin;

use crate::envelope::Envelope;
use crate::headers;
use crate::id::MessageId;
use crate::priority::Priority;
use crate::reply::{IngestError, Reply};

/// A boxed, sendable future (what [`Ingest`] methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The priority header (DESIGN §2). Ingest removes it: it never leaves the relay.
pub const PRIORITY_HEADER: &str = "X-Priority-Queue";

/// Decides the lane of a message (DESIGN §2): an explicit lane wins; else,
/// when trusted, the message's `X-Priority-Queue` header (a bad value is an
/// error, never clamped); else the fallback.
pub fn decide_lane(req: &LaneRequest, message: &[u8]) -> Result<Priority, IngestError> {
    if let Some((p, _)) = &req.explicit {
        return Ok(*p);
    }
    if req.trust_header
        && let Some(f) = headers::fields(message)
            .into_iter()
            .find(|f| f.is(PRIORITY_HEADER))
    {
        return f.text().parse().map_err(|e| IngestError::InvalidPriority {
            source_name: format!("{PRIORITY_HEADER} header"),
            detail: format!("{e}"),
        });
    }
    Ok(req.fallback)
}

/// How the lane of a submission is to be decided (DESIGN §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneRequest {
    /// A lane the front door already fixed from the envelope or request
    /// (RFC 6710 `MT-PRIORITY`, the API's `priority` field or HTTP header),
    /// with the name of that source for error messages.
    pub explicit: Option<(Priority, String)>,
    /// Whether an `X-Priority-Queue` header in the message may set the lane
    /// (trusted submitters on a `trust_priority` listener, the API).
    pub trust_header: bool,
    /// The lane when nothing else decides.
    pub fallback: Priority,
}

impl LaneRequest {
    /// Always `lane`, whatever the message says.
    pub fn fixed(lane: Priority) -> LaneRequest {
        LaneRequest {
            explicit: None,
            trust_header: false,
            fallback: lane,
        }
    }
}

/// A message handed to ingest.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The envelope (`queued_at_ms` is set by ingest).
    pub envelope: Envelope,
    /// The message as received: RFC 5322 header and body, CRLF line ends.
    pub message: Vec<u8>,
    /// How to decide the lane.
    pub lane: LaneRequest,
}

/// What ingest reports once the message is durable on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The queue id.
    pub id: MessageId,
    /// The lane it went to.
    pub lane: Priority,
    /// Recipients dropped at ingest (e.g. suppressed for bulk lanes), with the reason.
    pub dropped: Vec<(String, String)>,
}

/// The verdict on one recipient at RCPT time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientVerdict {
    /// Accept it.
    Accept,
    /// Refuse it with this reply.
    Refuse(Reply),
}

/// The door into the spool.
pub trait Ingest: Send + Sync + 'static {
    /// Admission before a transaction (MAIL FROM): refuses when the spool is
    /// short of space or the daemon is draining. Cheap; called per MAIL.
    fn admit(&self) -> Result<(), IngestError>;

    /// Checks one recipient beyond relay policy (suppression list, bounce
    /// tokens). `sender` is the envelope sender. Stores are consulted off
    /// the async worker threads.
    fn check_recipient<'a>(
        &'a self,
        _sender: &'a str,
        _recipient: &'a str,
    ) -> BoxFuture<'a, RecipientVerdict> {
        Box::pin(async { RecipientVerdict::Accept })
    }

    /// Decides the lane, fixes the headers and stores the message durably;
    /// resolves only after the data and its directory entry are on disk.
    fn submit(&self, submission: Submission) -> BoxFuture<'_, Result<Accepted, IngestError>>;
}

/// For test doubles of [`Ingest`]: recipients whose address starts with
/// `suppressed@` are refused as a suppression list would (`550 5.7.1`).
pub fn test_verdict(recipient: &str) -> BoxFuture<'static, RecipientVerdict> {
    let v = if recipient.starts_with("suppressed@") {
        RecipientVerdict::Refuse(Reply::new(550, (5, 7, 1), "recipient suppressed"))
    } else {
        RecipientVerdict::Accept
    };
    Box::pin(async move { v })
}
