//! The mutable part of a spooled message: per-recipient delivery state and
//! the retry schedule. Kept apart from the immutable data file and replaced
//! atomically (temp → fsync → rename → fsync directory).

use laneway_common::delivery::{Outcome, Stage, Status};
use serde::{Deserialize, Serialize};

/// Where one recipient stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RcptStatus {
    /// Not yet delivered; will be (re)tried.
    #[default]
    Pending,
    /// Accepted by the next hop.
    Delivered,
    /// Failed permanently (a DSN was or will be generated).
    Failed,
}

impl RcptStatus {
    /// Whether nothing more will be done for this recipient.
    pub fn is_final(self) -> bool {
        !matches!(self, RcptStatus::Pending)
    }
}

/// The state of one recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(from = "StoredRcpt")]
pub struct RcptState {
    /// Where it stands.
    pub status: RcptStatus,
    /// Delivery attempts made for it.
    #[serde(default)]
    pub attempts: u32,
    /// The result of its last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Outcome>,
    /// When it is next due, ms since the Unix epoch (0: now).
    #[serde(default)]
    pub next_attempt_ms: u64,
}

/// A recipient's state as stored, including the text-only `last_reply`
/// of spools written before results were typed.
#[derive(Deserialize)]
struct StoredRcpt {
    #[serde(default)]
    status: RcptStatus,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    last: Option<Outcome>,
    #[serde(default)]
    last_reply: Option<String>,
    #[serde(default)]
    next_attempt_ms: u64,
}

impl From<StoredRcpt> for RcptState {
    fn from(s: StoredRcpt) -> RcptState {
        let last = s.last.or_else(|| {
            s.last_reply.map(|text| {
                Outcome::transient(
                    Stage::Local,
                    Status::new(4, 0, 0),
                    format!("(from an older spool) {text}"),
                )
            })
        });
        RcptState {
            status: s.status,
            attempts: s.attempts,
            last,
            next_attempt_ms: s.next_attempt_ms,
        }
    }
}

/// The mutable state of a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MessageState {
    /// Delivery attempts made for the message (any recipient).
    pub attempts: u32,
    /// When the next attempt is due, ms since the Unix epoch (0: now).
    pub next_attempt_ms: u64,
    /// One entry per envelope recipient, in envelope order.
    pub recipients: Vec<RcptState>,
    /// Whether a delay DSN has been sent.
    #[serde(default)]
    pub delay_warned: bool,
}

impl MessageState {
    /// The state of a freshly accepted message with `n` recipients.
    pub fn new(n: usize) -> MessageState {
        MessageState {
            attempts: 0,
            next_attempt_ms: 0,
            recipients: vec![RcptState::default(); n],
            delay_warned: false,
        }
    }

    /// Whether every recipient is final (the message can leave the spool).
    pub fn is_done(&self) -> bool {
        self.recipients.iter().all(|r| r.status.is_final())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_of_older_spools_are_read() {
        let old = r#"{"attempts":2,"next_attempt_ms":5,"recipients":[{"status":"pending","attempts":2,"last_reply":"451 4.3.0 later","next_attempt_ms":5}]}"#;
        let st: MessageState = serde_json::from_str(old).unwrap();
        let last = st.recipients[0].last.as_ref().unwrap();
        assert!(last.is_transient());
        assert!(last.to_string().contains("451 4.3.0 later"), "{last}");
        let again: MessageState =
            serde_json::from_slice(&serde_json::to_vec(&st).unwrap()).unwrap();
        assert_eq!(again, st);
    }
}
