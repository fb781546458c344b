//! Ingest: the one function both front doors call (DESIGN §1). It fixes
//! the lane, removes `X-Priority-Queue`, adds `Received:`, and stores the
//! message durably before the front door may acknowledge it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use laneway_common::events::{Event, EventSink};
use laneway_common::headers::{self, rfc5322_date};
use laneway_common::id::IdGenerator;
use laneway_common::ingest::{BoxFuture, PRIORITY_HEADER, decide_lane};
use laneway_common::{
    Accepted, Envelope, Ingest, IngestError, Lifecycle, MessageId, Priority, Submission,
    envelope::now_ms,
};
use laneway_spool::DiskStore;
use laneway_spool::journal::Record;

use laneway_auth::SenderAuth;

/// RFC 5321 §6.3: refuse mail that has been around this many hops.
pub const MAX_RECEIVED: usize = 100;

/// Hooks ingest calls once a message is on disk (the scheduler).
pub trait OnSpooled: Send + Sync {
    /// A message was stored.
    fn spooled(&self, id: MessageId, lane: Priority, envelope: &Envelope, size: usize);
}

/// The daemon's [`Ingest`] implementation.
pub struct Ingestor {
    store: Arc<DiskStore>,
    ids: IdGenerator,
    floor: Option<MessageId>,
    /// This node's name in a cluster (in `Received:`).
    node: Option<String>,
    hostname: String,
    min_free_bytes: u64,
    free: FreeSpace,
    lifecycle: Lifecycle,
    on_spooled: Option<Arc<dyn OnSpooled>>,
    auth: Option<Arc<SenderAuth>>,
    events: Option<Arc<dyn EventSink>>,
}

impl Ingestor {
    /// An ingest writing into `store`.
    pub fn new(
        store: Arc<DiskStore>,
        floor: Option<MessageId>,
        hostname: String,
        min_free_bytes: u64,
        lifecycle: Lifecycle,
    ) -> Ingestor {
        Ingestor {
            store,
            ids: IdGenerator::new(floor),
            floor,
            node: None,
            hostname,
            min_free_bytes,
            free: FreeSpace::default(),
            lifecycle,
            on_spooled: None,
            auth: None,
            events: None,
        }
    }

    /// Makes this a node of a cluster: its name goes in `Received:` and
    /// its tag in every new queue id (unique across nodes).
    pub fn set_node(&mut self, node: &str) {
        self.ids = IdGenerator::with_tag(self.floor, laneway_common::id::node_tag(node));
        self.node = Some(node.to_string());
    }

    /// Sets the sender authentication (signing, bounce domains, suppression).
    pub fn set_auth(&mut self, auth: Arc<SenderAuth>) {
        self.auth = Some(auth);
    }

    /// Sets where `reception` events go.
    pub fn set_events(&mut self, sink: Arc<dyn EventSink>) {
        self.events = Some(sink);
    }

    /// Sets who hears about stored messages.
    pub fn set_on_spooled(&mut self, hook: Arc<dyn OnSpooled>) {
        self.on_spooled = Some(hook);
    }

    fn check_space(&self) -> Result<(), IngestError> {
        if self.free.enough(self.min_free_bytes) {
            return Ok(());
        }
        match self.store.free_bytes() {
            Ok(free) => {
                self.free.set(free);
                if free < self.min_free_bytes {
                    tracing::warn!(
                        free,
                        min_free_bytes = self.min_free_bytes,
                        "spool file system nearly full; refusing new mail"
                    );
                    return Err(IngestError::SpoolFull);
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read spool free space");
                Err(IngestError::Io(e))
            }
        }
    }
}

/// How long a reading of the spool's free space serves: a `statfs` for
/// every transaction was 1.6% of the daemon's CPU in the acceptance
/// benchmark.
const FREE_SPACE_FOR_MS: u64 = 100;

/// The spool's free space as last read, less what was written since.
#[derive(Debug, Default)]
struct FreeSpace {
    /// When it was read (ms since the epoch; 0: read it again).
    at_ms: AtomicU64,
    free: AtomicU64,
    /// Bytes written since: each message twice (its file and its journal
    /// record).
    since: AtomicU64,
}

impl FreeSpace {
    /// Whether the last reading, recent enough, leaves `min` free.
    fn enough(&self, min: u64) -> bool {
        let at = self.at_ms.load(Ordering::Relaxed);
        let left = self
            .free
            .load(Ordering::Relaxed)
            .saturating_sub(self.since.load(Ordering::Relaxed));
        at != 0 && now_ms().saturating_sub(at) < FREE_SPACE_FOR_MS && left >= min
    }

    fn set(&self, free: u64) {
        self.free.store(free, Ordering::Relaxed);
        self.since.store(0, Ordering::Relaxed);
        self.at_ms.store(now_ms().max(1), Ordering::Relaxed);
    }

    fn wrote(&self, message_bytes: usize) {
        self.since
            .fetch_add(2 * message_bytes as u64, Ordering::Relaxed);
    }

    /// A write failed: the next check reads the file system again.
    fn forget(&self) {
        self.at_ms.store(0, Ordering::Relaxed);
    }
}

/// The `Received:` field for a message (RFC 5321 §4.4, RFC 3848).
pub fn received_field(
    hostname: &str,
    node: Option<&str>,
    id: MessageId,
    env: &Envelope,
    now_secs: i64,
) -> String {
    let o = &env.origin;
    let mut s = String::from("Received:");
    if o.helo.is_some() || o.peer.is_some() {
        let helo = o.helo.as_deref().unwrap_or("unknown");
        let helo: String = helo
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        match o.peer {
            Some(ip) => s.push_str(&format!(" from {helo} ([{ip}])\r\n\t")),
            None => s.push_str(&format!(" from {helo}\r\n\t")),
        }
    } else {
        s.push(' ');
    }
    if let Some(tls) = &o.tls {
        s.push_str(&format!("(using {tls})\r\n\t"));
    }
    let proto = o.protocol.as_deref().unwrap_or("local");
    match node {
        Some(n) => s.push_str(&format!(
            "by {hostname} (Laneway node {n}) with {proto} id {id}"
        )),
        None => s.push_str(&format!("by {hostname} (Laneway) with {proto} id {id}")),
    }
    if env.recipients.len() == 1 && env.recipients[0].address.is_ascii() {
        s.push_str(&format!("\r\n\tfor <{}>", env.recipients[0].address));
    }
    s.push_str(&format!("; {}\r\n", rfc5322_date(now_secs)));
    s
}

impl Ingest for Ingestor {
    fn admit(&self) -> Result<(), IngestError> {
        if self.lifecycle.is_shutting_down() {
            return Err(IngestError::Draining);
        }
        self.check_space()
    }

    fn check_recipient<'a>(
        &'a self,
        sender: &'a str,
        recipient: &'a str,
    ) -> BoxFuture<'a, laneway_common::RecipientVerdict> {
        Box::pin(async move {
            match &self.auth {
                Some(a) => a.check_recipient(sender, recipient).await,
                None => laneway_common::RecipientVerdict::Accept,
            }
        })
    }

    fn submit(&self, sub: Submission) -> BoxFuture<'_, Result<Accepted, IngestError>> {
        Box::pin(async move {
            let _activity = self.lifecycle.activity();
            let Submission {
                mut envelope,
                message,
                lane,
            } = sub;
            let received = headers::fields(&message)
                .iter()
                .filter(|f| f.is("Received"))
                .count();
            if received >= MAX_RECEIVED {
                return Err(IngestError::Loop(received));
            }
            let lane = decide_lane(&lane, &message)?;
            let mut message = headers::remove_fields(&message, PRIORITY_HEADER).unwrap_or(message);
            // X-Laneway-Meta-* never leaves; only a trusted client's counts
            let (meta, stripped) = laneway_common::metadata::from_headers(&message);
            if let Some(m) = stripped {
                message = m;
            }
            if envelope.origin.trusted {
                for (k, v) in meta {
                    envelope.metadata.entry(k).or_insert(v);
                }
            }
            laneway_common::metadata::check(&envelope.metadata).map_err(IngestError::BadContent)?;
            let id = self.ids.next_id();
            let mut dropped = Vec::new();
            if let Some(auth) = &self.auth {
                // Mail to our bounce domains is read, not relayed.
                let (back, keep): (Vec<_>, Vec<_>) = envelope
                    .recipients
                    .drain(..)
                    .partition(|r| auth.is_bounce_address(&r.address));
                envelope.recipients = keep;
                if !back.is_empty() {
                    let returned = Envelope {
                        recipients: back,
                        ..envelope.clone()
                    };
                    let forward = auth
                        .returned(&returned, &message, id)
                        .await
                        .map_err(|e| IngestError::Io(std::io::Error::other(e)))?;
                    tracing::info!(id = %id, from = %envelope.sender, forwarded = forward.len(), "returned mail processed");
                    envelope
                        .recipients
                        .extend(forward.into_iter().map(laneway_common::Recipient::new));
                }
                if envelope.recipients.is_empty() {
                    return Ok(Accepted { id, lane, dropped });
                }
                // only a DKIM signature is worth the hop to a blocking thread
                if envelope.origin.trusted && !auth.would_sign(&message) {
                    message = auth.prepare(&mut envelope, id, lane, message)?;
                } else if envelope.origin.trusted {
                    let (a, mut env) = (auth.clone(), envelope);
                    let (env, signed) = tokio::task::spawn_blocking(move || {
                        let m = a.prepare(&mut env, id, lane, message);
                        (env, m)
                    })
                    .await
                    .map_err(|e| IngestError::Io(std::io::Error::other(e)))?;
                    envelope = env;
                    message = signed?;
                }
                dropped = auth.suppressed(&envelope, lane, id).await;
                envelope
                    .recipients
                    .retain(|r| !dropped.iter().any(|(d, _)| *d == r.address));
                if envelope.recipients.is_empty() {
                    return Ok(Accepted { id, lane, dropped });
                }
            }
            // RFC 8689 §5: a trusted sender may let this message ignore
            // recipient TLS policies; REQUIRETLS wins over the header
            if envelope.origin.trusted
                && !envelope.require_tls
                && headers::fields(&message)
                    .iter()
                    .any(|f| f.is("TLS-Required") && f.text().trim().eq_ignore_ascii_case("no"))
            {
                envelope.tls_optional = true;
            }
            let now = now_ms();
            envelope.queued_at_ms = now;
            let received = received_field(
                &self.hostname,
                self.node.as_deref(),
                id,
                &envelope,
                (now / 1000) as i64,
            );
            let mut data = Vec::with_capacity(received.len() + message.len());
            data.extend_from_slice(received.as_bytes());
            data.extend_from_slice(&message);
            let size = data.len();
            // The reception events go into the journal with the message, in
            // its commit (one fdatasync, not a second for them alone: an
            // acknowledged message's reception is durable), and are logged
            // once it is durable.
            let receptions: Vec<(Event, Vec<u8>)> = match &self.events {
                Some(sink) => crate::events::receptions(id, lane, &envelope, &message, size)
                    .into_iter()
                    .map(|e| sink.stamp_json(e))
                    .collect(),
                None => Vec::new(),
            };
            let with = receptions
                .iter()
                .map(|(_, json)| Record::Event(json.clone()))
                .collect();
            let store = self.store.clone();
            let env = envelope.clone();
            let started = std::time::Instant::now();
            // A journaled message's file is written here, without a
            // blocking thread (create and write into the page cache, no
            // fsync: a hand-off to another thread cost more than the
            // write); a larger one is fsynced on its own, on one. The
            // group commit that makes it durable is awaited, not waited on.
            let staged = if data.len() <= laneway_spool::store::JOURNALED_UP_TO {
                store.stage(id, lane, &env, &data, with)
            } else {
                tokio::task::spawn_blocking(move || store.stage(id, lane, &env, &data, with))
                    .await
                    .map_err(|e| IngestError::Io(std::io::Error::other(e)))?
            };
            let written = match staged {
                Ok(commit) => match commit.await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        // never acknowledged: its file must not be delivered either
                        let _ = self.store.remove(id, lane);
                        Err(e)
                    }
                },
                Err(e) => Err(e),
            };
            metrics::histogram!(laneway_common::metrics::SPOOL_WRITE)
                .record(started.elapsed().as_secs_f64());
            if let Err(e) = written {
                self.free.forget();
                tracing::error!(id = %id, error = %e, "spool write failed; message not accepted");
                return Err(if e.kind() == std::io::ErrorKind::StorageFull {
                    IngestError::SpoolFull
                } else {
                    IngestError::Io(e)
                });
            }
            self.free.wrote(size);
            // the `queued` line and the reception events' lines in one write
            laneway_common::logline::together(|| {
                tracing::info!(
                    id = %id,
                    lane = %lane,
                    from = %envelope.sender,
                    rcpts = envelope.recipients.len(),
                    size,
                    door = ?envelope.origin.door,
                    via = %envelope.origin.name,
                    peer = ?envelope.origin.peer,
                    "queued"
                );
                if let Some(sink) = &self.events {
                    for (e, json) in &receptions {
                        sink.log(e, json);
                    }
                }
            });
            let door = match envelope.origin.door {
                laneway_common::envelope::Door::Smtp => envelope.origin.name.clone(),
                laneway_common::envelope::Door::Api => "api".to_string(),
                laneway_common::envelope::Door::Local => "local".to_string(),
            };
            metrics::counter!(laneway_common::metrics::RECEIVED, "listener" => door, "lane" => laneway_common::metrics::lane(lane))
                .increment(1);
            if let Some(hook) = &self.on_spooled {
                hook.spooled(id, lane, &envelope, size);
            }
            Ok(Accepted { id, lane, dropped })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use laneway_common::{LaneRequest, Origin};

    #[test]
    fn lane_precedence() {
        let p = |n| Priority::new(n).unwrap();
        let msg = b"X-Priority-Queue: 9\r\nSubject: x\r\n\r\nbody\r\n";
        let fixed = LaneRequest::fixed(p(4));
        assert_eq!(decide_lane(&fixed, msg).unwrap(), p(4));
        let trust = LaneRequest {
            explicit: None,
            trust_header: true,
            fallback: p(4),
        };
        assert_eq!(decide_lane(&trust, msg).unwrap(), p(9));
        assert_eq!(decide_lane(&trust, b"Subject: x\r\n\r\n").unwrap(), p(4));
        let explicit = LaneRequest {
            explicit: Some((p(2), "MT-PRIORITY".into())),
            ..trust.clone()
        };
        assert_eq!(decide_lane(&explicit, msg).unwrap(), p(2));
        for bad in ["12", "-1", "bulk", ""] {
            let m = format!("X-Priority-Queue: {bad}\r\n\r\nx\r\n");
            let e = decide_lane(&trust, m.as_bytes()).unwrap_err();
            assert_eq!(e.reply().code, 550, "{bad}");
            assert_eq!(e.reply().status().unwrap(), "5.6.0");
        }
    }

    #[test]
    fn received_field_shape() {
        let origin = Origin {
            helo: Some("client.test".into()),
            peer: Some("192.0.2.1".parse().unwrap()),
            tls: Some("TLSv1.3 TLS13_AES_128_GCM_SHA256".into()),
            protocol: Some("ESMTPS".into()),
            ..Origin::local()
        };
        let env = Envelope::new("a@x", vec![laneway_common::Recipient::new("b@y")], origin);
        let r = received_field("mx.test", None, MessageId::from_u64(0xabc), &env, 0);
        assert_eq!(
            r,
            "Received: from client.test ([192.0.2.1])\r\n\t(using TLSv1.3 TLS13_AES_128_GCM_SHA256)\r\n\tby mx.test (Laneway) with ESMTPS id 0000000000000abc\r\n\tfor <b@y>; Thu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
        let r = received_field("mx.test", Some("mx-2"), MessageId::from_u64(0xabc), &env, 0);
        assert!(
            r.contains("by mx.test (Laneway node mx-2) with ESMTPS id 0000000000000abc"),
            "{r}"
        );
    }
}
