//! Events about messages: what the delivery path, sender authentication
//! and the operator report, and where they go. Producers hold an
//! [`EventSink`] (DESIGN §3: shared state and outputs behind traits in
//! `common`); [`Events`] writes one structured log line per event and,
//! with `[log] events = "path"`, the same as JSON lines.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// One recipient's delivery attempt.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryEvent<'a> {
    /// When, ms since the Unix epoch.
    pub ts_ms: u64,
    /// Queue id.
    pub id: String,
    /// Lane.
    pub lane: u8,
    /// Envelope sender.
    pub from: &'a str,
    /// Recipient.
    pub rcpt: &'a str,
    /// `delivered`, `deferred`, `failed` or `expired`.
    pub result: &'static str,
    /// Where the attempt was decided (`dns`, `connect`, `tls`,
    /// `greeting`, `mail`, `rcpt`, `data`, `policy`, `expiry`, `local`).
    pub stage: &'static str,
    /// The RFC 3463 status it is reported with.
    pub status: String,
    /// The remote reply or local reason.
    pub reply: &'a str,
    /// The host and address tried, if a connection was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<&'a str>,
    /// TLS protocol and cipher, if encrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<&'a str>,
    /// The TLS policy the connection was made under (`requiretls`,
    /// `verify`, `required`, `opportunistic`, `none`), if one was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_policy: Option<&'a str>,
    /// Attempt number for this recipient.
    pub attempt: u32,
    /// Time since acceptance, ms.
    pub queue_time_ms: u64,
    /// Next attempt for a deferral, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_ms: Option<u64>,
}

/// Where events go.
pub trait EventSink: Send + Sync {
    /// Records an event. Never blocks on the network; never fails the mail.
    fn record(&self, e: &DeliveryEvent<'_>);
}

/// The log (and JSON-lines file) event sink.
#[derive(Debug, Default)]
pub struct Events {
    file: Option<Mutex<BufWriter<File>>>,
    /// The node that records them, in a cluster.
    node: Option<String>,
}

/// An event with the node that recorded it (the JSON line).
#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    event: &'a DeliveryEvent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
}

impl Events {
    /// Events to the log only, plus a JSON-lines file if `path` is set.
    pub fn open(path: Option<&Path>) -> io::Result<Events> {
        let file = match path {
            Some(p) => Some(Mutex::new(BufWriter::new(
                OpenOptions::new().create(true).append(true).open(p)?,
            ))),
            None => None,
        };
        Ok(Events { file, node: None })
    }

    /// Events that name `node` (a node of a cluster).
    pub fn with_node(self, node: &str) -> Events {
        Events {
            node: Some(node.to_string()),
            ..self
        }
    }

    fn write(&self, e: &DeliveryEvent<'_>) {
        tracing::info!(
            id = %e.id,
            lane = e.lane,
            from = %e.from,
            rcpt = %e.rcpt,
            result = e.result,
            stage = e.stage,
            status = %e.status,
            next_hop = e.next_hop.unwrap_or("-"),
            tls = e.tls.unwrap_or("-"),
            tls_policy = e.tls_policy.unwrap_or("-"),
            attempt = e.attempt,
            queue_ms = e.queue_time_ms,
            reply = %e.reply,
            node = self.node.as_deref().unwrap_or("-"),
            "delivery"
        );
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            let line = serde_json::to_string(&Line {
                event: e,
                node: self.node.as_deref(),
            })
            .unwrap_or_default();
            if writeln!(f, "{line}").and_then(|_| f.flush()).is_err() {
                tracing::warn!("cannot write to the delivery event log");
            }
        }
    }
}

impl EventSink for Events {
    fn record(&self, e: &DeliveryEvent<'_>) {
        self.write(e);
    }
}
