//! The durable event log: every event the spool journal commits, kept in
//! one redb file (`<spool_dir>/events.redb`) for the webhooks and the
//! history.
//!
//! | table | key | value |
//! |---|---|---|
//! | `events` | seq (u64) | time (8 bytes BE ms) + event JSON |
//! | `by_message` | queue id (8 BE) + seq (8 BE) | — |
//! | `by_recipient` | lower-cased address, NUL, seq (8 BE) | — |
//! | `by_header` | `Message-ID:` value, NUL, seq | — |
//! | `by_meta` | `key=value`, NUL, seq | — |
//! | `cursors` | webhook name | the last seq it got |
//! | `meta` | `next`, `bytes` | counters |
//!
//! Events arrive at each journal checkpoint ([`EventLog::persist`], one
//! durable transaction) in journal order, which keeps every message's
//! events in the order they happened. The log is bounded by `max_size`
//! (the oldest go first, counted as dropped for the webhooks that had not
//! got them) and purged of what is older than `history` once no webhook
//! still needs it.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use laneway_common::MessageId;
use laneway_common::events::{Event, EventType};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const BY_MESSAGE: TableDefinition<&[u8], ()> = TableDefinition::new("by_message");
const BY_RECIPIENT: TableDefinition<&[u8], ()> = TableDefinition::new("by_recipient");
const BY_HEADER: TableDefinition<&[u8], ()> = TableDefinition::new("by_header");
const BY_META: TableDefinition<&[u8], ()> = TableDefinition::new("by_meta");
const CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cursors");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Its place in the log (increasing).
    pub seq: u64,
    /// When it happened, ms since the Unix epoch.
    pub ts_ms: u64,
    /// The event.
    pub event: Event,
}

/// Which events a history query wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every event.
    All,
    /// The events of one message.
    Message(MessageId),
    /// The events about one recipient.
    Recipient(String),
    /// The events of messages with this `Message-ID:`.
    Header(String),
    /// The events of messages with this metadata key and value.
    Meta(String, String),
}

/// A log operation failed.
#[derive(Debug, thiserror::Error)]
#[error("event log: {0}")]
pub struct LogError(String);

fn db<E: std::fmt::Display>(e: E) -> LogError {
    LogError(e.to_string())
}

/// The event log; a cheap `Clone` handle.
#[derive(Clone)]
pub struct EventLog {
    db: Arc<Database>,
    max_size: u64,
    /// The newest seq stored, for the webhooks to wait on.
    newest: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

/// An index key's part before the seq: the value and a NUL.
fn prefix_of(value: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(value.len() + 9);
    k.extend_from_slice(value);
    k.push(0);
    k
}

fn key_with_seq(value: &[u8], seq: u64) -> Vec<u8> {
    let mut k = prefix_of(value);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// An index table.
type Index = TableDefinition<'static, &'static [u8], ()>;

/// The index keys of an event.
fn index_keys(e: &Event, seq: u64) -> Vec<(Index, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(id) = e.message_id.parse::<MessageId>() {
        let mut k = id.as_u64().to_be_bytes().to_vec();
        k.extend_from_slice(&seq.to_be_bytes());
        out.push((BY_MESSAGE, k));
    }
    if !e.recipient.is_empty() {
        out.push((
            BY_RECIPIENT,
            key_with_seq(e.recipient.to_lowercase().as_bytes(), seq),
        ));
    }
    if let Some(h) = &e.message_id_header {
        out.push((BY_HEADER, key_with_seq(h.as_bytes(), seq)));
    }
    for (k, v) in &e.metadata {
        out.push((BY_META, key_with_seq(format!("{k}={v}").as_bytes(), seq)));
    }
    out
}

fn time_of(e: &Event) -> u64 {
    humantime::parse_rfc3339(&e.timestamp)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or_else(laneway_common::envelope::now_ms)
}

/// Bytes before an event's JSON in the `events` table: time (8, BE ms),
/// type (index into `EventType::ALL`) and lane — what the webhooks filter
/// on without parsing the JSON.
const HEAD: usize = 10;

fn head(v: &[u8]) -> Option<(u64, EventType, u8)> {
    let ts = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let kind = *EventType::ALL.get(usize::from(*v.get(8)?))?;
    Some((ts, kind, *v.get(9)?))
}

/// A stored event as its JSON, for sending on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw {
    /// Its place in the log.
    pub seq: u64,
    /// When it happened, ms since the Unix epoch.
    pub ts_ms: u64,
    /// Its type.
    pub kind: EventType,
    /// Its lane.
    pub lane: u8,
    /// The event's JSON.
    pub json: Vec<u8>,
}

fn decode(seq: u64, v: &[u8]) -> Option<Stored> {
    let (ts, ..) = head(v)?;
    let event = serde_json::from_slice(&v[HEAD..]).ok()?;
    Some(Stored {
        seq,
        ts_ms: ts,
        event,
    })
}

/// The event log's own page cache (redb's default is 1 GiB).
const CACHE_BYTES: usize = 8 << 20;

impl EventLog {
    /// Opens (or creates) the log at `path`, bounded by `max_size` bytes.
    pub fn open(path: &Path, max_size: u64) -> Result<EventLog, LogError> {
        // redb caches up to 1 GiB per database by default: a log that grew
        // with a million queued messages kept ~0.4 KiB of pages resident
        // per message (looked up once each at recovery). The interior
        // pages every lookup touches fit in far less; the kernel's page
        // cache still holds the rest. 32 MiB filled up too (26 MiB of the
        // daemon's 285 with a million queued); 8 MiB relayed as fast
        // (4,995 vs 5,072 msg/s, three alternating runs each, within the
        // runs' spread of 4,632-5,574).
        let database = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(db)?;
        let txn = database.begin_write().map_err(db)?;
        for t in [BY_MESSAGE, BY_RECIPIENT, BY_HEADER, BY_META] {
            txn.open_table(t).map_err(db)?;
        }
        txn.open_table(EVENTS).map_err(db)?;
        txn.open_table(CURSORS).map_err(db)?;
        txn.open_table(META).map_err(db)?;
        txn.commit().map_err(db)?;
        let log = EventLog {
            db: Arc::new(database),
            max_size,
            newest: Arc::new(tokio::sync::watch::channel(0).0),
        };
        let newest = log.newest_seq()?;
        log.newest.send_replace(newest);
        Ok(log)
    }

    fn counter(&self, name: &str) -> Result<u64, LogError> {
        let txn = self.db.begin_read().map_err(db)?;
        let t = txn.open_table(META).map_err(db)?;
        Ok(t.get(name).map_err(db)?.map(|v| v.value()).unwrap_or(0))
    }

    /// The seq of the newest event (0 when there is none).
    pub fn newest_seq(&self) -> Result<u64, LogError> {
        Ok(self.counter("next")?.saturating_sub(1))
    }

    /// Bytes of event JSON held.
    pub fn bytes(&self) -> Result<u64, LogError> {
        self.counter("bytes")
    }

    /// A receiver that changes whenever events are stored.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.newest.subscribe()
    }

    /// Stores events (their JSON, in journal order) in one durable
    /// transaction. A returned mail or complaint event gets the metadata
    /// of the message it is about, from that message's reception.
    pub fn store(&self, events: Vec<Vec<u8>>) -> Result<u64, LogError> {
        let txn = self.db.begin_write().map_err(db)?;
        let newest;
        {
            let mut meta = txn.open_table(META).map_err(db)?;
            let mut next = meta
                .get("next")
                .map_err(db)?
                .map(|v| v.value())
                .unwrap_or(1)
                .max(1);
            let mut bytes = meta
                .get("bytes")
                .map_err(db)?
                .map(|v| v.value())
                .unwrap_or(0);
            let mut table = txn.open_table(EVENTS).map_err(db)?;
            for json in events {
                let Ok(mut e) = serde_json::from_slice::<Event>(&json) else {
                    tracing::warn!("event log: an event that does not decode is skipped");
                    continue;
                };
                let mut json = json;
                if e.metadata.is_empty()
                    && matches!(e.kind, EventType::Returned | EventType::Complaint)
                    && let Ok(id) = e.message_id.parse::<MessageId>()
                    && let Some(m) = reception_metadata(&txn, &table, id)?
                {
                    e.metadata = m;
                    json = e.to_json();
                }
                let mut v = time_of(&e).to_be_bytes().to_vec();
                let kind = EventType::ALL
                    .iter()
                    .position(|k| *k == e.kind)
                    .unwrap_or(0);
                v.push(kind as u8);
                v.push(e.lane);
                v.extend_from_slice(&json);
                table.insert(next, v.as_slice()).map_err(db)?;
                for (t, k) in index_keys(&e, next) {
                    txn.open_table(t)
                        .map_err(db)?
                        .insert(k.as_slice(), ())
                        .map_err(db)?;
                }
                metrics::counter!(laneway_common::metrics::EVENTS, "type" => e.kind.as_str())
                    .increment(1);
                bytes += json.len() as u64;
                next += 1;
            }
            meta.insert("next", next).map_err(db)?;
            meta.insert("bytes", bytes).map_err(db)?;
            newest = next - 1;
        }
        txn.commit().map_err(db)?;
        self.newest.send_replace(newest);
        if self.bytes()? > self.max_size {
            let dropped = self.trim(self.max_size / 10 * 9)?;
            tracing::warn!(
                dropped,
                max_size = self.max_size,
                "event log full: the oldest events were dropped"
            );
        }
        Ok(newest)
    }

    /// Removes the oldest events until at most `target` bytes are held;
    /// how many went. Webhooks that had not got them count them dropped.
    fn trim(&self, target: u64) -> Result<usize, LogError> {
        let cursors = self.cursors()?;
        let mut n = 0;
        while self.bytes()? > target {
            let excess = self.bytes()? - target;
            let freed = std::cell::Cell::new(0u64);
            let gone = self.remove_while(1000, |_, _, len| {
                let go = freed.get() < excess;
                freed.set(freed.get() + len);
                go
            })?;
            if gone.is_empty() {
                break;
            }
            for (name, c) in &cursors {
                let missed = gone.iter().filter(|s| *s > c).count() as u64;
                if missed > 0 {
                    metrics::counter!(laneway_common::metrics::WEBHOOK_EVENTS, "webhook" => name.clone(), "result" => "dropped").increment(missed);
                }
            }
            metrics::counter!(laneway_common::metrics::EVENTS_DROPPED).increment(gone.len() as u64);
            n += gone.len();
        }
        Ok(n)
    }

    /// Removes up to `most` of the oldest events, in order, while
    /// `go(seq, ts, bytes)` holds for them; their seqs.
    fn remove_while(
        &self,
        most: usize,
        go: impl Fn(u64, u64, u64) -> bool,
    ) -> Result<Vec<u64>, LogError> {
        let txn = self.db.begin_write().map_err(db)?;
        let mut gone = Vec::new();
        {
            let mut table = txn.open_table(EVENTS).map_err(db)?;
            let mut meta = txn.open_table(META).map_err(db)?;
            let mut bytes = meta
                .get("bytes")
                .map_err(db)?
                .map(|v| v.value())
                .unwrap_or(0);
            let first: Vec<(u64, Vec<u8>)> = table
                .iter()
                .map_err(db)?
                .take(most)
                .filter_map(|r| r.ok())
                .map(|(k, v)| (k.value(), v.value().to_vec()))
                .collect();
            for (seq, v) in first {
                let ts = v
                    .get(..8)
                    .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
                    .unwrap_or(0);
                if !go(seq, ts, v.len().saturating_sub(HEAD) as u64) {
                    break;
                }
                table.remove(seq).map_err(db)?;
                if let Some(s) = decode(seq, &v) {
                    for (t, k) in index_keys(&s.event, seq) {
                        txn.open_table(t)
                            .map_err(db)?
                            .remove(k.as_slice())
                            .map_err(db)?;
                    }
                }
                bytes = bytes.saturating_sub(v.len().saturating_sub(HEAD) as u64);
                gone.push(seq);
            }
            meta.insert("bytes", bytes).map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok(gone)
    }

    /// Forgets what is older than `history` (at `now_ms`) unless a webhook
    /// in `needed` (name, its `max_age`) has not got it and it is younger
    /// than that; how many went.
    pub fn purge(
        &self,
        now_ms: u64,
        history: Duration,
        needed: &[(String, Duration)],
    ) -> Result<usize, LogError> {
        let cursors = self.cursors()?;
        let cutoff = now_ms.saturating_sub(history.as_millis() as u64);
        let still_needed = |seq: u64, ts: u64| {
            needed.iter().any(|(name, max_age)| {
                let got = cursors
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(0, |(_, c)| *c);
                seq > got && ts >= now_ms.saturating_sub(max_age.as_millis() as u64)
            })
        };
        let mut n = 0;
        loop {
            let gone =
                self.remove_while(1000, |seq, ts, _| ts < cutoff && !still_needed(seq, ts))?;
            n += gone.len();
            if gone.len() < 1000 {
                return Ok(n);
            }
        }
    }

    /// Every webhook's cursor.
    pub fn cursors(&self) -> Result<Vec<(String, u64)>, LogError> {
        let txn = self.db.begin_read().map_err(db)?;
        let t = txn.open_table(CURSORS).map_err(db)?;
        let mut out = Vec::new();
        for r in t.iter().map_err(db)? {
            let (k, v) = r.map_err(db)?;
            out.push((k.value().to_string(), v.value()));
        }
        Ok(out)
    }

    /// A webhook's cursor; a new webhook starts after the newest event.
    pub fn cursor(&self, name: &str) -> Result<u64, LogError> {
        let txn = self.db.begin_write().map_err(db)?;
        let c = {
            let mut t = txn.open_table(CURSORS).map_err(db)?;
            let got = t.get(name).map_err(db)?.map(|v| v.value());
            match got {
                Some(c) => c,
                None => {
                    let newest = self.newest_seq()?;
                    t.insert(name, newest).map_err(db)?;
                    newest
                }
            }
        };
        txn.commit().map_err(db)?;
        Ok(c)
    }

    /// Records that a webhook got everything up to `seq` (durable).
    pub fn set_cursor(&self, name: &str, seq: u64) -> Result<(), LogError> {
        let txn = self.db.begin_write().map_err(db)?;
        txn.open_table(CURSORS)
            .map_err(db)?
            .insert(name, seq)
            .map_err(db)?;
        txn.commit().map_err(db)
    }

    /// Up to `limit` events after `after` whose type and lane `wants`,
    /// looking at no more than `scan` events, as their JSON (for the
    /// webhooks: nothing is parsed); and the last seq looked at.
    pub fn read_raw(
        &self,
        after: u64,
        limit: usize,
        scan: usize,
        wants: impl Fn(EventType, u8) -> bool,
    ) -> Result<(Vec<Raw>, u64), LogError> {
        self.scan(after, limit, scan, |seq, v| {
            let (ts_ms, kind, lane) = head(v)?;
            wants(kind, lane).then(|| Raw {
                seq,
                ts_ms,
                kind,
                lane,
                json: v[HEAD..].to_vec(),
            })
        })
    }

    /// Up to `limit` events after `after` for which `wants` holds, looking
    /// at no more than `scan` events; and the last seq looked at.
    pub fn read(
        &self,
        after: u64,
        limit: usize,
        scan: usize,
        wants: impl Fn(&Event) -> bool,
    ) -> Result<(Vec<Stored>, u64), LogError> {
        self.scan(after, limit, scan, |seq, v| {
            decode(seq, v).filter(|s| wants(&s.event))
        })
    }

    /// The one walk of the log both readers share: up to `limit` of what
    /// `pick` makes of the entries after `after`, looking at no more than
    /// `scan`; and the last seq looked at.
    fn scan<T>(
        &self,
        after: u64,
        limit: usize,
        scan: usize,
        pick: impl Fn(u64, &[u8]) -> Option<T>,
    ) -> Result<(Vec<T>, u64), LogError> {
        let txn = self.db.begin_read().map_err(db)?;
        let t = txn.open_table(EVENTS).map_err(db)?;
        let mut out = Vec::new();
        let mut last = after;
        for r in t
            .range((Bound::Excluded(after), Bound::Unbounded))
            .map_err(db)?
            .take(scan)
        {
            let (k, v) = r.map_err(db)?;
            let seq = k.value();
            if let Some(x) = pick(seq, v.value()) {
                out.push(x);
            }
            last = seq;
            if out.len() >= limit {
                break;
            }
        }
        Ok((out, last))
    }

    /// A page of the history: events matching `filter` after `after`, in
    /// order, and the cursor of the next page.
    pub fn history(
        &self,
        filter: &Filter,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Stored>, Option<u64>), LogError> {
        let limit = limit.max(1);
        let (table, prefix) = match filter {
            Filter::All => {
                let (page, last) = self.read(after, limit, usize::MAX, |_| true)?;
                let next = (page.len() == limit).then_some(last);
                return Ok((page, next));
            }
            Filter::Message(id) => (BY_MESSAGE, id.as_u64().to_be_bytes().to_vec()),
            Filter::Recipient(r) => (BY_RECIPIENT, prefix_of(r.to_lowercase().as_bytes())),
            Filter::Header(h) => (BY_HEADER, prefix_of(h.as_bytes())),
            Filter::Meta(k, v) => (BY_META, prefix_of(format!("{k}={v}").as_bytes())),
        };
        let txn = self.db.begin_read().map_err(db)?;
        let index = txn.open_table(table).map_err(db)?;
        let events = txn.open_table(EVENTS).map_err(db)?;
        let mut start = prefix.clone();
        start.extend_from_slice(&(after.saturating_add(1)).to_be_bytes());
        let mut out = Vec::new();
        for r in index.range(start.as_slice()..).map_err(db)? {
            let (k, _) = r.map_err(db)?;
            let k = k.value();
            if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 {
                break;
            }
            let seq = u64::from_be_bytes(k[prefix.len()..].try_into().unwrap_or([0; 8]));
            if let Some(v) = events.get(seq).map_err(db)?
                && let Some(s) = decode(seq, v.value())
            {
                out.push(s);
            }
            if out.len() == limit {
                let next = out.last().map(|s| s.seq);
                return Ok((out, next));
            }
        }
        Ok((out, None))
    }

    /// Whether the log holds the reception of message `id` (a message
    /// found at start-up without one gets it then).
    pub fn has_reception(&self, id: MessageId) -> Result<bool, LogError> {
        let (page, _) = self.history(&Filter::Message(id), 0, 64)?;
        Ok(page.iter().any(|s| s.event.kind == EventType::Reception))
    }
}

/// The metadata of the reception of `id`, if stored.
fn reception_metadata(
    txn: &redb::WriteTransaction,
    events: &redb::Table<u64, &[u8]>,
    id: MessageId,
) -> Result<Option<std::collections::BTreeMap<String, String>>, LogError> {
    let index = txn.open_table(BY_MESSAGE).map_err(db)?;
    let prefix = id.as_u64().to_be_bytes();
    for r in index.range(prefix.as_slice()..).map_err(db)? {
        let (k, _) = r.map_err(db)?;
        let k = k.value();
        if !k.starts_with(&prefix) {
            break;
        }
        let seq = u64::from_be_bytes(k[8..].try_into().unwrap_or([0; 8]));
        if let Some(v) = events.get(seq).map_err(db)?
            && let Some(s) = decode(seq, v.value())
            && s.event.kind == EventType::Reception
        {
            return Ok(Some(s.event.metadata));
        }
    }
    Ok(None)
}

impl laneway_spool::journal::EventPersist for EventLog {
    fn persist(&self, events: Vec<Vec<u8>>) -> std::io::Result<()> {
        self.store(events)
            .map(|_| ())
            .map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use laneway_common::events::Event;

    const DAY: u64 = 86_400_000;
    const T0: u64 = 1_800_000_000_000;

    fn at(kind: EventType, id: u64, rcpt: &str, ts: u64) -> Vec<u8> {
        let mut e = Event::new(kind, MessageId::from_u64(id), 4, "a@shop.test", rcpt);
        e.event_id = format!("{id}-{ts}-{}", kind.as_str());
        e.timestamp =
            humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ts))
                .to_string();
        if kind == EventType::Reception {
            e.metadata.insert("order".into(), "42".into());
            e.message_id_header = Some("<m1@shop.test>".into());
        }
        e.to_json()
    }

    fn open(dir: &tempfile::TempDir, max: u64) -> EventLog {
        EventLog::open(&dir.path().join("events.redb"), max).unwrap()
    }

    /// The history of a message that bounced and left the queue is there a
    /// day later (clock injected), by id, recipient, header and metadata,
    /// and gone after `history`.
    #[test]
    fn a_bounced_message_can_be_traced_a_day_later() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir, 1 << 30);
        log.store(vec![
            at(EventType::Reception, 7, "bob@x.test", T0),
            at(EventType::Reception, 8, "eve@x.test", T0),
            at(EventType::TransientFailure, 7, "bob@x.test", T0 + 1000),
            at(EventType::Bounce, 7, "bob@x.test", T0 + 60_000),
            at(EventType::Returned, 7, "bob@x.test", T0 + 120_000),
        ])
        .unwrap();
        let week = Duration::from_secs(7 * 86400);
        assert_eq!(log.purge(T0 + DAY, week, &[]).unwrap(), 0);
        let (page, next) = log
            .history(&Filter::Message(MessageId::from_u64(7)), 0, 100)
            .unwrap();
        let kinds: Vec<EventType> = page.iter().map(|s| s.event.kind).collect();
        assert_eq!(
            kinds,
            [
                EventType::Reception,
                EventType::TransientFailure,
                EventType::Bounce,
                EventType::Returned
            ]
        );
        assert_eq!(next, None);
        // a returned mail's event gets the metadata of the message's reception
        assert_eq!(
            page[3].event.metadata.get("order").map(String::as_str),
            Some("42")
        );
        let by = |f: Filter| log.history(&f, 0, 100).unwrap().0.len();
        assert_eq!(by(Filter::Recipient("BOB@x.test".into())), 4);
        assert_eq!(by(Filter::Header("<m1@shop.test>".into())), 2);
        assert_eq!(
            by(Filter::Meta("order".into(), "42".into())),
            3,
            "two receptions and the returned one"
        );
        // pages: two at a time, in order, no repeats
        let (p1, c1) = log.history(&Filter::All, 0, 2).unwrap();
        let (p2, c2) = log.history(&Filter::All, c1.unwrap(), 2).unwrap();
        let (p3, c3) = log.history(&Filter::All, c2.unwrap(), 2).unwrap();
        let seqs: Vec<u64> = p1.iter().chain(&p2).chain(&p3).map(|s| s.seq).collect();
        assert_eq!((seqs, c3), (vec![1, 2, 3, 4, 5], None));
        assert!(log.has_reception(MessageId::from_u64(8)).unwrap());
        assert!(!log.has_reception(MessageId::from_u64(9)).unwrap());
        // a webhook that has not got them keeps them past history, within its max_age
        log.cursor("shop").unwrap();
        log.set_cursor("shop", 2).unwrap();
        let needs = [("shop".to_string(), Duration::from_secs(10 * 86400))];
        assert_eq!(
            log.purge(T0 + 8 * DAY, week, &needs).unwrap(),
            2,
            "the two it got"
        );
        assert_eq!(log.purge(T0 + 11 * DAY, week, &needs).unwrap(), 3);
        assert!(log.history(&Filter::All, 0, 100).unwrap().0.is_empty());
        assert_eq!(
            by(Filter::Recipient("bob@x.test".into())),
            0,
            "indexes purged too"
        );
        assert_eq!(log.bytes().unwrap(), 0);
    }

    /// Past max_size the oldest go, and the rest stay in order.
    #[test]
    fn the_log_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir, 20_000);
        for batch in 0..10u64 {
            let events = (0..20)
                .map(|i| at(EventType::Delivery, batch * 100 + i, "r@x.test", T0))
                .collect();
            log.store(events).unwrap();
        }
        let bytes = log.bytes().unwrap();
        assert!(bytes <= 20_000, "{bytes}");
        let (kept, _) = log.history(&Filter::All, 0, 1000).unwrap();
        assert!(kept.len() < 200 && kept.len() > 50, "{}", kept.len());
        assert_eq!(kept.last().unwrap().seq, 200, "the newest stay");
        assert!(kept.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        assert_eq!(log.newest_seq().unwrap(), 200);
    }
}
