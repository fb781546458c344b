//! The operator's view of the queue, shared by the HTTP admin API, the
//! control socket behind `laneway queue`, and the scheduler that answers
//! (like `postqueue`/`postsuper`, or KumoMTA's admin API).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ingest::BoxFuture;
use crate::{MessageId, Priority};

/// One lane in the queue summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneSummary {
    /// The lane.
    pub lane: u8,
    /// Messages in it.
    pub count: u64,
    /// Of those, waiting for a retry.
    pub deferred: u64,
    /// Age of its oldest message, seconds.
    pub oldest_age_seconds: Option<f64>,
    /// Work items (message and destination) ready to go in it.
    #[serde(default)]
    pub ready: u64,
    /// Messages that entered it since the daemon started (accepted,
    /// imported, found in the spool at start-up, or moved here by
    /// set-priority); the difference of
    /// two readings over their interval is the lane's in-rate.
    #[serde(default)]
    pub in_total: u64,
    /// Messages that left it since the daemon started (every recipient
    /// delivered, bounced, expired or deleted; or moved to another lane).
    #[serde(default)]
    pub out_total: u64,
}

/// One destination site in the queue summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationSummary {
    /// The site key (next hop).
    pub site: String,
    /// Ready work per lane ("0"–"9"; lanes without work left out).
    pub lanes: BTreeMap<String, u64>,
    /// Ready work in all.
    pub ready: u64,
    /// Work waiting for a retry (message and domain routed here).
    #[serde(default)]
    pub deferred: u64,
    /// Open connections.
    pub connections: u64,
    /// `ok`, `throttled` or `down`.
    pub health: String,
    /// Suspended by an operator.
    pub suspended: bool,
    /// Recipient domains routed to it (sorted, at most 10).
    #[serde(default)]
    pub domains: Vec<String>,
}

/// The queue at a glance (`GET /api/v1/queue`, `laneway queue stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSummary {
    /// Messages in the queue.
    pub total: u64,
    /// Work items ready to go.
    pub ready: u64,
    /// Messages waiting for a retry.
    pub deferred: u64,
    /// Per lane, 0 to 9.
    pub lanes: Vec<LaneSummary>,
    /// Sites with the most ready work first (at most 20).
    pub destinations: Vec<DestinationSummary>,
    /// Suspended recipient domains.
    pub suspended_domains: Vec<String>,
}

/// One node as the cluster view shows it (`GET /api/v1/cluster`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's name (`[cluster] node_id`).
    pub node: String,
    /// Laneway version it runs.
    pub version: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it last reported (RFC 3339).
    pub updated: String,
    /// `ready`, or `draining` while it shuts down.
    pub state: String,
    /// Its queue.
    pub queue: QueueSummary,
}

/// Every node of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The node that answered.
    pub node: String,
    /// Whether `[cluster]` is configured (else the view is this node).
    pub clustered: bool,
    /// Whether the answering node reaches Redis now (else the view is
    /// this node alone).
    pub connected: bool,
    /// The nodes alive, by name.
    pub nodes: Vec<NodeStatus>,
}

/// A message handed over by another node (`POST /api/v1/queue/import`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedMessage {
    /// Its queue id (kept: ids are unique across nodes).
    pub id: MessageId,
    /// Its lane, 0–9.
    pub lane: u8,
    /// The envelope as spooled.
    pub envelope: crate::Envelope,
    /// Every recipient's delivery state, as the spool keeps it.
    pub state: serde_json::Value,
    /// The message as spooled (signed, with its `Received:`), base64.
    pub message: String,
}

/// `POST /api/v1/queue/drain`: hand every queued message to another node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// The other node's API, e.g. `http://10.0.0.2:8025`.
    pub to: String,
    /// An API key of the other node with the `admin` scope.
    pub key: String,
}

/// How a drain goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStatus {
    /// `idle`, `running`, `done` or `failed`.
    pub state: String,
    /// Where the messages go.
    pub to: Option<String>,
    /// Messages the other node spooled and this one removed.
    pub moved: u64,
    /// Of those, ones the other node had already (a repeated hand-over).
    pub already_there: u64,
    /// Hand-overs refused or failed (the message stayed here).
    pub failed: u64,
    /// Messages still queued here.
    pub remaining: u64,
    /// Why it stopped, when it failed.
    pub error: Option<String>,
}

/// Which events `GET /api/v1/events` and `laneway queue trace` want:
/// one filter (or none: every event), after a cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// The events of this message.
    pub message_id: Option<MessageId>,
    /// The events about this recipient.
    pub recipient: Option<String>,
    /// The events of messages with this `Message-ID:`.
    pub message_id_header: Option<String>,
    /// The events of messages with this metadata key and value.
    pub meta: Option<(String, String)>,
    /// Only events after this cursor (0: from the oldest kept).
    pub after: u64,
    /// At most this many.
    pub limit: usize,
}

/// A page of events, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    /// The events, as their JSON schema says.
    pub events: Vec<crate::events::Event>,
    /// Where the next page starts (`after=`), if there may be more.
    pub next_cursor: Option<String>,
}

/// A message in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageSummary {
    /// Queue id.
    pub id: MessageId,
    /// Lane.
    pub lane: u8,
    /// Envelope sender.
    pub from: String,
    /// Recipients not yet done.
    pub recipients: Vec<String>,
    /// `ready`, `deferred`, `active` (being delivered) or `resolving`.
    pub state: String,
    /// Delivery attempts.
    pub attempts: u32,
    /// Next attempt (RFC 3339), for deferred mail.
    pub next_attempt: Option<String>,
    /// Acceptance time (RFC 3339).
    pub queued_at: String,
}

/// One recipient of a message in detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientDetail {
    /// Address.
    pub address: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts for this recipient.
    pub attempts: u32,
    /// The last reply about it.
    pub last_reply: Option<String>,
    /// Next attempt (RFC 3339).
    pub next_attempt: Option<String>,
}

/// A message in detail (`GET /api/v1/messages/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDetail {
    /// Queue id.
    pub id: MessageId,
    /// Lane.
    pub lane: u8,
    /// Envelope sender.
    pub from: String,
    /// Like [`MessageSummary::state`].
    pub state: String,
    /// Delivery attempts.
    pub attempts: u32,
    /// Next attempt (RFC 3339).
    pub next_attempt: Option<String>,
    /// Acceptance time (RFC 3339).
    pub queued_at: String,
    /// Size in bytes.
    pub size: u64,
    /// Every recipient.
    pub recipients: Vec<RecipientDetail>,
    /// The last reply about any recipient.
    pub last_reply: Option<String>,
    /// The full envelope as stored (DSN parameters, origin).
    pub envelope: serde_json::Value,
}

/// Which messages to list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageFilter {
    /// Only this lane.
    pub lane: Option<Priority>,
    /// Only messages with a pending recipient at this domain.
    pub domain: Option<String>,
    /// Only this envelope sender (case-insensitive).
    pub sender: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Continue after this id.
    pub cursor: Option<MessageId>,
}

/// Why an admin operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No such message.
    #[error("no message {0} in the queue")]
    NotFound(MessageId),
    /// The message is being delivered right now.
    #[error("message {0} is being delivered; try again in a moment")]
    Busy(MessageId),
    /// The request makes no sense.
    #[error("{0}")]
    Invalid(String),
    /// The spool could not be updated.
    #[error("spool error: {0}")]
    Io(String),
    /// Something already under way stands in the way (e.g. a drain).
    #[error("{0}")]
    Conflict(String),
}

impl AdminError {
    /// The HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            AdminError::NotFound(_) => 404,
            AdminError::Busy(_) | AdminError::Conflict(_) => 409,
            AdminError::Invalid(_) => 400,
            AdminError::Io(_) => 500,
        }
    }
}

/// A provider or domain of the shaping files with its effective limits
/// (`GET /api/v1/shaping`): what the entry sets, the rest from `[outbound]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapingRow {
    /// The provider's name or the domain.
    pub name: String,
    /// MX host suffixes (providers; empty for a domain).
    pub mx_suffix: Vec<String>,
    /// Most connections to the site.
    pub max_connections: usize,
    /// Of those, kept for lanes ≥ `reserved_min_lane`.
    pub reserved_connections: usize,
    /// The lowest lane that may use reserved connections.
    pub reserved_min_lane: u8,
    /// Messages per period (`"50/s"`), or none.
    pub rate: Option<String>,
    /// Messages per connection.
    pub messages_per_connection: usize,
    /// TLS policy towards the site.
    pub tls: String,
    /// How long an idle connection waits for more work (`"30s"`).
    pub idle_timeout: String,
    /// Its automation rules, one line each (`"1: suspend lanes 0,1,2,3,4
    /// for 1h at the first match of 4\.7\.28"`).
    #[serde(default)]
    pub automation: Vec<String>,
    /// Its per-pool limits, one line each (`"new: max_connections 1, rate
    /// 10/s, warmup from 2026-12-01: 500/day 1000/day"`).
    #[serde(default)]
    pub pools: Vec<String>,
}

/// The shaping in force (`GET /api/v1/shaping`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShapingView {
    /// Providers, matched by MX host suffix, by name.
    pub providers: Vec<ShapingRow>,
    /// Single recipient domains, by name.
    pub domains: Vec<ShapingRow>,
    /// Automation rules holding a provider now (or ramping back).
    #[serde(default)]
    pub active: Vec<ShapingActive>,
}

/// An automation rule holding a provider (`laneway shaping show`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapingActive {
    /// The provider (or shaping domain).
    pub provider: String,
    /// Which of its `[[…automation]]` rules, from 1.
    pub rule: usize,
    /// `suspend`, `throttle` or `bounce`.
    pub action: String,
    /// The lanes it holds (`"0,1,2,3,4"`).
    pub lanes: String,
    /// `holding`, or `ramping` once its duration is over.
    pub phase: String,
    /// Seconds left of the phase.
    pub remaining_seconds: u64,
    /// When the hold ends (RFC 3339).
    pub until: String,
    /// When the ramp ends and the normal limits are back (RFC 3339).
    pub ramp_until: String,
    /// The held lanes' rate while throttled, and where the ramp starts.
    pub rate: Option<String>,
    /// While throttled: most regular connections.
    pub max_connections: Option<usize>,
    /// The reply that started it.
    pub reply: String,
    /// The node that saw the reply.
    pub node: String,
}

/// `laneway domain check` (`GET /api/v1/domains/{domain}/check`): is the
/// DNS of a sender domain set up for this relay?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainCheck {
    /// The sender domain (`[[domain]] name`).
    pub domain: String,
    /// Each check, in order.
    pub checks: Vec<DomainCheckItem>,
    /// How many are `ok`, `wrong` and `missing` (they add up to the checks).
    pub ok: usize,
    /// See `ok`.
    pub wrong: usize,
    /// See `ok`.
    pub missing: usize,
}

/// One check of a [`DomainCheck`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainCheckItem {
    /// `bounce_mx`, `spf`, `dkim:<selector>`, `dmarc`, `ptr:<address>`,
    /// `mta_sts`, `tls_rpt`.
    pub check: String,
    /// `ok`, `wrong` or `missing`.
    pub status: String,
    /// The DNS name looked up.
    pub name: String,
    /// What was found there.
    pub found: Vec<String>,
    /// The record that would be right (when not `ok`).
    pub expected: Option<String>,
    /// Why, in a sentence.
    pub detail: String,
    /// Only worth having (MTA-STS, TLS-RPT): missing is not a fault.
    pub optional: bool,
}

/// A suppressed recipient (`GET /api/v1/suppressions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuppressionEntry {
    /// The recipient.
    pub address: String,
    /// The sender domain whose mail to it is suppressed.
    pub sender_domain: String,
    /// Why (e.g. `bounced 5.1.1`, `complained`, `manual`).
    pub reason: String,
    /// `all` (refused at RCPT) or `bulk` (dropped from lanes below
    /// `[auth] transactional_min_lane`).
    pub lanes: String,
    /// Since when (RFC 3339).
    pub since: String,
}

/// An operator's suppression (`POST /api/v1/suppressions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressRequest {
    /// The recipient.
    pub address: String,
    /// The sender domain whose mail it stops.
    pub sender_domain: String,
    /// Why.
    pub reason: String,
    /// Every lane (`true`) or the bulk lanes only.
    pub all_lanes: bool,
}

/// A page of the suppression list and the cursor of the next.
pub type SuppressionPage = (Vec<SuppressionEntry>, Option<String>);

/// Queue administration, implemented by the daemon over the scheduler.
pub trait Admin: Send + Sync + 'static {
    /// The queue at a glance.
    fn summary(&self) -> QueueSummary;
    /// Messages matching `filter`, and the cursor for the next page.
    fn list(&self, filter: &MessageFilter) -> (Vec<MessageSummary>, Option<MessageId>);
    /// One message in detail.
    fn detail(&self, id: MessageId) -> BoxFuture<'_, Result<MessageDetail, AdminError>>;
    /// Removes a message; with `bounce`, its sender gets a DSN for every
    /// recipient not yet delivered.
    fn delete(&self, id: MessageId, bounce: bool) -> BoxFuture<'_, Result<(), AdminError>>;
    /// Makes a deferred message due now.
    fn retry(&self, id: MessageId) -> Result<(), AdminError>;
    /// Moves a message to another lane (on disk and in the scheduler).
    fn set_priority(
        &self,
        id: MessageId,
        lane: Priority,
    ) -> BoxFuture<'_, Result<MessageDetail, AdminError>>;
    /// Makes every deferred message due now; returns how many.
    fn flush(&self) -> usize;
    /// Stops deliveries to a domain's site (mail stays queued).
    fn suspend(&self, domain: &str) -> Result<(), AdminError>;
    /// Resumes deliveries to a domain's site.
    fn resume(&self, domain: &str) -> Result<(), AdminError>;
    /// The automation rules holding providers now.
    fn shaping_active(&self) -> Vec<ShapingActive> {
        Vec::new()
    }
    /// Checks the DNS of the sender domain `domain`; `None` if it is not
    /// a `[[domain]]` of the configuration.
    fn domain_check<'a>(
        &'a self,
        domain: &'a str,
    ) -> BoxFuture<'a, Result<Option<DomainCheck>, AdminError>> {
        let _ = domain;
        Box::pin(async { Ok(None) })
    }
    /// Ends the automation rule holding `provider`; false if none does.
    fn shaping_clear(&self, provider: &str) -> Result<bool, AdminError> {
        let _ = provider;
        Ok(false)
    }
    /// Suppressed recipients (of one sender domain, or all), a page at a time.
    fn suppressions<'a>(
        &'a self,
        sender_domain: Option<&'a str>,
        limit: usize,
        cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<SuppressionPage, AdminError>>;
    /// Suppresses a recipient for a sender domain.
    fn suppress<'a>(
        &'a self,
        r: &'a SuppressRequest,
    ) -> BoxFuture<'a, Result<SuppressionEntry, AdminError>>;
    /// Lifts a suppression; whether there was one.
    fn unsuppress<'a>(
        &'a self,
        address: &'a str,
        sender_domain: &'a str,
    ) -> BoxFuture<'a, Result<bool, AdminError>>;
    /// A one-click unsubscribe link was followed (`POST /u/<token>`):
    /// `Ok(false)` when the token is not one of ours. Nothing to do by
    /// default (no sender authentication configured).
    fn unsubscribe<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<bool, AdminError>> {
        let _ = token;
        Box::pin(async { Ok(false) })
    }
    /// Every node of the cluster (this one alone without `[cluster]`).
    fn cluster(&self) -> BoxFuture<'_, ClusterView>;
    /// Spools a message another node hands over; `false` when it is here
    /// already.
    fn import(&self, m: ImportedMessage) -> BoxFuture<'_, Result<bool, AdminError>>;
    /// Starts handing every queued message to another node.
    fn drain(&self, r: DrainRequest) -> Result<DrainStatus, AdminError>;
    /// How the last drain went.
    fn drain_status(&self) -> DrainStatus;
    /// Kept events (`[events] history`), a page at a time.
    fn events(&self, q: EventQuery) -> BoxFuture<'_, Result<EventPage, AdminError>>;
}

/// RFC 3339 (UTC, seconds) of a time in ms since the Unix epoch.
pub fn rfc3339(ms: u64) -> String {
    crate::headers::rfc3339_secs(ms / 1000)
}
