//! Events about messages (DESIGN §4b): one schema for every fact —
//! reception, each delivery attempt's typed result, delay warnings,
//! suppressions, returned mail, complaints, operator actions, TLS reports —
//! and the [`EventSink`] producers hand them to. The durable log, the
//! webhooks and the history live in `laneway-events`; the sink in force
//! stamps each event (id, time, node), logs it, and writes it into the
//! spool journal in the same group commit as the change it reports.
//!
//! The JSON form is versioned ([`SCHEMA_VERSION`]) and described by
//! `crates/events/event.schema.json`. One event per recipient.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::delivery::{Disposition, Outcome};

/// The version of the JSON form; bumped when a field changes meaning or
/// goes (new optional fields do not bump it).
pub const SCHEMA_VERSION: u32 = 1;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Accepted and spooled (with lane and door).
    Reception,
    /// The next hop took it.
    Delivery,
    /// An attempt failed for now; it is tried again.
    TransientFailure,
    /// Failed for good (with the bounce class).
    Bounce,
    /// Given up after `max_age`.
    Expiration,
    /// A delay warning was sent to the sender.
    Delayed,
    /// Refused or skipped because the recipient is suppressed.
    Suppressed,
    /// A bounce came back to the bounce domain and was decoded.
    Returned,
    /// A spam complaint (ARF) came back.
    Complaint,
    /// An operator deleted, moved or retried it.
    Admin,
    /// A TLS report (RFC 8460) was sent.
    TlsReportSent,
    /// Delivery was slowed for a provider's sake.
    Shaping,
    /// The recipient unsubscribed.
    Unsubscribe,
}

impl EventType {
    /// Every type.
    pub const ALL: [EventType; 13] = [
        EventType::Reception,
        EventType::Delivery,
        EventType::TransientFailure,
        EventType::Bounce,
        EventType::Expiration,
        EventType::Delayed,
        EventType::Suppressed,
        EventType::Returned,
        EventType::Complaint,
        EventType::Admin,
        EventType::TlsReportSent,
        EventType::Shaping,
        EventType::Unsubscribe,
    ];

    /// The name in JSON, logs and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Reception => "reception",
            EventType::Delivery => "delivery",
            EventType::TransientFailure => "transient_failure",
            EventType::Bounce => "bounce",
            EventType::Expiration => "expiration",
            EventType::Delayed => "delayed",
            EventType::Suppressed => "suppressed",
            EventType::Returned => "returned",
            EventType::Complaint => "complaint",
            EventType::Admin => "admin",
            EventType::TlsReportSent => "tls_report_sent",
            EventType::Shaping => "shaping",
            EventType::Unsubscribe => "unsubscribe",
        }
    }

    /// The type an attempt's outcome reports.
    pub fn of_outcome(o: &Outcome, expired: bool) -> EventType {
        match o.disposition {
            Disposition::Delivered => EventType::Delivery,
            _ if expired => EventType::Expiration,
            Disposition::Transient => EventType::TransientFailure,
            Disposition::Permanent => EventType::Bounce,
        }
    }
}

impl FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<EventType, String> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown event type {s:?} (known: {})", all.join(", "))
            })
    }
}

/// A reply as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventReply {
    /// The SMTP code.
    pub code: u16,
    /// The enhanced status code, if the reply had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enhanced_status: Option<String>,
    /// The text.
    pub text: String,
}

/// The host an attempt reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventHop {
    /// MX or route host name.
    pub host: String,
    /// Its address.
    pub ip: String,
    /// The port.
    pub port: u16,
}

/// TLS of the connection an attempt used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTls {
    /// Protocol and cipher (e.g. `TLSv1.3 TLS13_AES_256_GCM_SHA384`), when
    /// encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The TLS policy the connection was made under (`requiretls`,
    /// `dane`, `mta-sts`, `verify`, `required`, `opportunistic`, `none`).
    pub policy: String,
}

/// One event, one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Unique: for idempotent receivers.
    pub event_id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When (RFC 3339, UTC, milliseconds).
    pub timestamp: String,
    /// The node that recorded it.
    pub node: String,
    /// The queue id (the one the API and SMTP returned).
    pub message_id: String,
    /// The lane, 0–9.
    pub lane: u8,
    /// The envelope sender.
    pub sender: String,
    /// The recipient.
    pub recipient: String,
    /// The application's metadata given at submission.
    pub metadata: BTreeMap<String, String>,
    /// RFC 3461 ORCPT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    /// RFC 3461 ENVID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// The attempt this event reports (1 for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Time since acceptance, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_time_ms: Option<u64>,
    /// Where the attempt was decided (`dns`, `connect`, `tls`,
    /// `greeting`, `mail`, `rcpt`, `data`, `policy`, `expiry`, `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The RFC 3463 status it is reported with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The remote reply, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<EventReply>,
    /// What happened, for people (the remote reply or Laneway's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The host tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<EventHop>,
    /// TLS of the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<EventTls>,
    /// The egress pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The source address of the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// For bounces, returned mail and expirations: the class of failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_class: Option<String>,
    /// For transient failures: the next attempt (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
    /// For receptions: `smtp`, `api` or `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<String>,
    /// For receptions: the listener (or API key) it came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// For receptions: the size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// For receptions: the `Message-ID:` header field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id_header: Option<String>,
    /// For operator actions: `deleted`, `lane_changed`, `retried`; for
    /// shaping events: `<action>_started`, `<action>_ended`,
    /// `<action>_cleared` (`suspend`, `throttle`, `bounce`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// For shaping events: the provider (or shaping domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

impl Event {
    /// An event of `kind` about one recipient of a message; the sink
    /// stamps its id, time and node.
    pub fn new(
        kind: EventType,
        message_id: impl ToString,
        lane: u8,
        sender: impl Into<String>,
        recipient: impl Into<String>,
    ) -> Event {
        Event {
            schema: SCHEMA_VERSION,
            event_id: String::new(),
            kind,
            timestamp: String::new(),
            node: String::new(),
            message_id: message_id.to_string(),
            lane,
            sender: sender.into(),
            recipient: recipient.into(),
            metadata: BTreeMap::new(),
            orcpt: None,
            envid: None,
            attempt: None,
            queue_time_ms: None,
            stage: None,
            status: None,
            reply: None,
            description: None,
            next_hop: None,
            tls: None,
            pool: None,
            source_ip: None,
            bounce_class: None,
            next_attempt: None,
            door: None,
            via: None,
            size: None,
            message_id_header: None,
            action: None,
            provider: None,
        }
    }

    /// Adds what an outcome says: stage, status, reply or reason, next hop
    /// and (for failures) the bounce class.
    pub fn with_outcome(mut self, o: &Outcome) -> Event {
        self.stage = Some(o.stage.as_str().to_string());
        self.status = Some(o.status.to_string());
        self.reply = o.remote.as_ref().map(|r| EventReply {
            code: r.code,
            enhanced_status: r.status(),
            text: r.lines.join(" "),
        });
        self.description = Some(o.to_string());
        self.next_hop = o.hop.as_ref().map(|h| EventHop {
            host: h.host.clone(),
            ip: h.addr.ip().to_string(),
            port: h.addr.port(),
        });
        if !o.is_delivered() {
            self.bounce_class = Some(o.bounce_class().as_str().to_string());
        }
        self
    }

    /// The event as one JSON line (no newline).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Where events go.
pub trait EventSink: Send + Sync {
    /// Stamps an event (id, time, node) and returns it with its JSON, not
    /// yet logged: for a caller that commits it together with a new
    /// message and logs it ([`EventSink::log`]) once that commit is
    /// durable (a message refused after all has no reception).
    fn stamp_json(&self, e: Event) -> (Event, Vec<u8>);
    /// Logs an event that [`EventSink::stamp_json`] stamped.
    fn log(&self, e: &Event, json: &[u8]);
    /// Stamps an event, logs it and returns its JSON, for a caller that
    /// writes it into the journal together with the change it reports.
    fn encode(&self, e: Event) -> Vec<u8> {
        let (e, json) = self.stamp_json(e);
        self.log(&e, &json);
        json
    }
    /// Records an event on its own (nothing to commit it with). Never
    /// blocks on the network or the disk; never fails the mail.
    fn record(&self, e: Event);
}

/// Stamps and logs events (one structured log line each) and, with
/// `[log] events = "path"`, appends them as JSON lines. Without a journal
/// behind it (`record` goes nowhere else), for tools and tests.
#[derive(Debug, Default)]
pub struct Events {
    file: Option<Mutex<BufWriter<File>>>,
    node: String,
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
        Ok(Events {
            file,
            node: String::new(),
        })
    }

    /// Events that name `node`.
    pub fn with_node(self, node: &str) -> Events {
        Events {
            node: node.to_string(),
            ..self
        }
    }

    /// Fills in the id, time and node.
    pub fn stamp(&self, e: &mut Event) {
        if e.event_id.is_empty() {
            e.event_id = format!("{:032x}", rand::random::<u128>());
        }
        if e.timestamp.is_empty() {
            let now =
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(crate::envelope::now_ms());
            e.timestamp = humantime::format_rfc3339_millis(now).to_string();
        }
        if e.node.is_empty() {
            e.node = self.node.clone();
        }
    }

    fn write(&self, e: &Event, json: &[u8]) {
        tracing::info!(
            event = e.kind.as_str(),
            id = %e.message_id,
            lane = e.lane,
            from = %e.sender,
            rcpt = %e.recipient,
            stage = e.stage.as_deref().unwrap_or("-"),
            status = e.status.as_deref().unwrap_or("-"),
            next_hop = e.next_hop.as_ref().map(|h| format!("{}[{}]:{}", h.host, h.ip, h.port)).as_deref().unwrap_or("-"),
            tls = e.tls.as_ref().and_then(|t| t.version.as_deref()).unwrap_or("-"),
            tls_policy = e.tls.as_ref().map(|t| t.policy.as_str()).unwrap_or("-"),
            attempt = e.attempt.unwrap_or(0),
            queue_ms = e.queue_time_ms.unwrap_or(0),
            class = e.bounce_class.as_deref().unwrap_or("-"),
            reply = e.description.as_deref().unwrap_or("-"),
            "event"
        );
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            if f.write_all(json)
                .and_then(|_| f.write_all(b"\n"))
                .and_then(|_| f.flush())
                .is_err()
            {
                tracing::warn!("cannot write to the event log file");
            }
        }
    }
}

impl EventSink for Events {
    fn stamp_json(&self, mut e: Event) -> (Event, Vec<u8>) {
        self.stamp(&mut e);
        let json = e.to_json();
        (e, json)
    }

    fn log(&self, e: &Event, json: &[u8]) {
        self.write(e, json);
    }

    fn record(&self, e: Event) {
        self.encode(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reply;
    use crate::delivery::Stage;

    #[test]
    fn json_has_the_documented_top_level_keys() {
        let o = Outcome::remote(
            Stage::Rcpt,
            Reply::new(550, (5, 1, 1), "no such user"),
            None,
        );
        let e = Events::default().encode(
            Event::new(
                EventType::of_outcome(&o, false),
                "0000000000000abc",
                4,
                "a@x.test",
                "b@y.test",
            )
            .with_outcome(&o),
        );
        let v: serde_json::Value = serde_json::from_slice(&e).unwrap();
        for k in [
            "schema",
            "event_id",
            "type",
            "timestamp",
            "node",
            "message_id",
            "lane",
            "sender",
            "recipient",
            "metadata",
        ] {
            assert!(v.get(k).is_some(), "{k} in {v}");
        }
        assert_eq!(v["type"], "bounce");
        assert_eq!(v["bounce_class"], "invalid_recipient");
        assert_eq!(v["reply"]["code"], 550);
        assert_eq!(v["reply"]["enhanced_status"], "5.1.1");
        assert_eq!(v["lane"], 4);
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        let back: Event = serde_json::from_slice(&e).unwrap();
        assert_eq!(back.kind, EventType::Bounce);
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        }
        assert!(
            "bounced"
                .parse::<EventType>()
                .unwrap_err()
                .contains("reception")
        );
    }
}
