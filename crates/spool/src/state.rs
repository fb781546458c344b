//! The mutable part of a spooled message: per-recipient delivery state and
//! the retry schedule. Kept apart from the immutable data file and replaced
//! atomically (temp → fsync → rename → fsync directory).

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
pub struct RcptState {
    /// Where it stands.
    pub status: RcptStatus,
    /// Delivery attempts made for it.
    #[serde(default)]
    pub attempts: u32,
    /// The last reply (remote or local) about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply: Option<String>,
    /// When it is next due, ms since the Unix epoch (0: now).
    #[serde(default)]
    pub next_attempt_ms: u64,
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
