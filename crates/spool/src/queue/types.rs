//! The scheduler's public types: the clock, work items, polls, what a
//! connection is told to do, outcomes recorded and DSN requests.

use std::sync::Arc;

use laneway_common::config::Queue as QueueConfig;
use laneway_common::ingest::BoxFuture;
use laneway_common::{LaneSet, MessageId, Priority};

use super::{ConnGrant, Outcome, SiteLimits};
use crate::store::Spooled;

/// Time and randomness, injectable for tests.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// A number in [0, 1) for retry jitter.
    fn jitter(&self) -> f64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        laneway_common::envelope::now_ms()
    }
    fn jitter(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// What [`Queue::complete`] recorded for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Index of the recipient in the envelope.
    pub index: usize,
    /// The outcome as recorded (a deferral past `max_age` becomes a failure).
    pub outcome: Outcome,
    /// For a deferral, when the next attempt is due (ms since the epoch).
    pub next_attempt_ms: Option<u64>,
    /// The failure is an expiry.
    pub expired: bool,
}

/// The connection an attempt used, as its events report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptVia {
    /// TLS protocol and cipher, when encrypted.
    pub tls: Option<String>,
    /// The TLS policy the connection was made under.
    pub tls_policy: Option<String>,
    /// The egress pool.
    pub pool: Option<String>,
    /// The source address.
    pub source_ip: Option<String>,
}

impl Applied {
    pub(super) fn new(index: usize, outcome: Outcome) -> Applied {
        Applied {
            index,
            outcome,
            next_attempt_ms: None,
            expired: false,
        }
    }
}

/// What a DSN reports (RFC 3464 `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    /// Permanent failure (or expiry).
    Failed,
    /// Still trying after `delay_warning`.
    Delayed,
    /// Delivered to a next hop that took the DSN request … not needed.
    Delivered,
    /// Relayed to a next hop that could not take the DSN request.
    Relayed,
}

/// A request for a delivery status notification.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The original message's id.
    pub id: MessageId,
    /// Its lane (the DSN goes out in the same lane).
    pub lane: Priority,
    /// What happened.
    pub action: DsnAction,
    /// The recipients concerned (index into the envelope) with the result
    /// that is reported for each.
    pub recipients: Vec<(usize, Outcome)>,
}

/// Generates DSNs (implemented by crates/outbound, which submits them back
/// through ingest). It decides per recipient whether one is wanted
/// (NOTIFY, null sender).
pub trait Notifier: Send + Sync {
    /// Sends a notice about `original`; resolves once it is durable.
    fn notify<'a>(&'a self, original: &'a Spooled, notice: Notice) -> BoxFuture<'a, ()>;
}

/// Settings of the scheduler.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Retry, expiry and delay-warning policy.
    pub policy: QueueConfig,
    /// Egress pools: the lanes each carries. Lanes in no pool use the last.
    pub pools: Vec<LaneSet>,
    /// Outbound connections in all.
    pub max_connections: usize,
    /// Most recipients per transaction.
    pub max_recipients: usize,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            policy: QueueConfig::default(),
            pools: vec![LaneSet::ALL],
            max_connections: 500,
            max_recipients: 100,
        }
    }
}

/// A unit of delivery: some recipients of one message at one domain.
#[derive(Debug, Clone)]
pub struct WorkItem {
    /// The message.
    pub id: MessageId,
    /// Its lane.
    pub lane: Priority,
    /// The recipient domain.
    pub domain: Arc<str>,
    /// The recipients: index into the envelope and address.
    pub recipients: Vec<(usize, String)>,
    /// The envelope sender.
    pub sender: String,
    /// Delivery attempts made so far for the message.
    pub attempts: u32,
    /// Acceptance time, ms since the Unix epoch.
    pub queued_at_ms: u64,
    /// Message size in bytes.
    pub size: u64,
}

impl WorkItem {
    /// Whether its message may be read on an async worker
    /// ([`crate::store::DiskStore::fetch`]): journaled and from the last
    /// minute, so that its file is almost surely still in the page cache
    /// (written there moments ago). Handing such a read to a blocking
    /// thread cost two thread wake-ups, more than the read; an older or
    /// larger one may wait for the disk and goes to a blocking thread.
    pub fn read_inline(&self) -> bool {
        self.size <= crate::store::JOURNALED_UP_TO as u64
            && laneway_common::envelope::now_ms().saturating_sub(self.queued_at_ms) < 60_000
    }
}

/// What the dispatcher should do next.
#[derive(Debug, Default)]
pub struct Poll {
    /// Domains to resolve to a site (then call [`Queue::resolved`]).
    pub resolve: Vec<Arc<str>>,
    /// Connections to open now (already counted against the limits).
    pub grants: Vec<ConnGrant>,
    /// When to poll again at the latest, ms since the epoch.
    pub wake_at_ms: Option<u64>,
}

/// A connection's next step.
#[derive(Debug)]
pub enum Take {
    /// Deliver this.
    Item(WorkItem),
    /// The site's message rate is used up: ask again after this many ms.
    Wait(u64),
    /// Nothing to do: wait for work (or close after the idle timeout).
    Empty,
    /// The connection has carried `messages_per_connection` messages (or
    /// its site is suspended): close it; a fresh one will be granted.
    Close,
}

/// Where a resolved domain's mail goes.
#[derive(Debug, Clone)]
pub struct SiteInfo {
    /// The site key (shared by every domain with the same next hop).
    pub key: Arc<str>,
    /// Its limits.
    pub limits: SiteLimits,
    /// How long the resolution holds, ms.
    pub ttl_ms: u64,
    /// The provider (or shaping domain) it rolls up to, whose
    /// [`super::Restriction`] applies to it.
    pub shaping: Option<Arc<str>>,
}
