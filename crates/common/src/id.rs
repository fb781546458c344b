//! Queue ids: 16 lowercase hex digits, sortable by acceptance time.
//!
//! The upper 52 bits are the acceptance time in microseconds since the Unix
//! epoch, the lower 12 bits a counter, so ids sort in acceptance order (FIFO
//! inside a lane) and stay unique within one spool: the generator never
//! hands out an id at or below the highest one it has seen, even when the
//! clock steps back. On a node of a cluster the lowest 8 of those 12 bits
//! are the node's tag (from its name), so that two nodes accepting in the
//! same microsecond still differ (16 ids a microsecond a node remain).

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A message's queue id, the one shown in `250 2.0.0 Ok: queued as <id>`
/// and in every log line about the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(u64);

impl MessageId {
    /// The id's numeric value.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// An id from its numeric value.
    pub fn from_u64(v: u64) -> MessageId {
        MessageId(v)
    }

    /// Acceptance time encoded in the id, microseconds since the Unix epoch.
    pub fn timestamp_micros(self) -> u64 {
        self.0 >> 12
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The error for a string that is not a queue id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a queue id (16 hex digits): {0:?}")]
pub struct BadMessageId(pub String);

impl FromStr for MessageId {
    type Err = BadMessageId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadMessageId(s.to_string()));
        }
        u64::from_str_radix(s, 16)
            .map(MessageId)
            .map_err(|_| BadMessageId(s.to_string()))
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Hands out strictly increasing ids. One per spool.
#[derive(Debug, Default)]
pub struct IdGenerator {
    last: AtomicU64,
    /// With a node tag: the low byte every id carries.
    tag: Option<u8>,
}

/// The id tag of a node name (stable: a CRC of the name).
pub fn node_tag(node: &str) -> u8 {
    let h = node.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (h ^ (h >> 8) ^ (h >> 16) ^ (h >> 24)) as u8
}

impl IdGenerator {
    /// A generator that will only return ids above `floor` (the highest id
    /// found in the spool at start-up).
    pub fn new(floor: Option<MessageId>) -> IdGenerator {
        IdGenerator {
            last: AtomicU64::new(floor.map(|f| f.0).unwrap_or(0)),
            tag: None,
        }
    }

    /// A generator for a node of a cluster: every id carries `tag` in its
    /// low byte (see [`node_tag`]).
    pub fn with_tag(floor: Option<MessageId>, tag: u8) -> IdGenerator {
        IdGenerator {
            tag: Some(tag),
            ..IdGenerator::new(floor)
        }
    }

    /// The next id.
    pub fn next_id(&self) -> MessageId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let candidate = now << 12;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = match self.tag {
                None => candidate.max(last + 1),
                // the next multiple of 256 above `last`, tagged
                Some(t) => (candidate.max((last | 0xff) + 1) & !0xff) | u64::from(t),
            };
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return MessageId(next),
                Err(seen) => last = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_round_trip() {
        let g = IdGenerator::new(None);
        let mut prev = g.next_id();
        for _ in 0..10_000 {
            let id = g.next_id();
            assert!(id > prev);
            assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
            prev = id;
        }
    }

    #[test]
    fn tagged_ids_of_two_nodes_never_meet() {
        let (a, b) = (node_tag("mx1"), node_tag("mx2"));
        assert_ne!(a, b);
        let (ga, gb) = (
            IdGenerator::with_tag(None, a),
            IdGenerator::with_tag(None, b),
        );
        let mut seen = std::collections::HashSet::new();
        let mut prev = ga.next_id();
        for _ in 0..5_000 {
            let (x, y) = (ga.next_id(), gb.next_id());
            assert!(x > prev, "increasing");
            prev = x;
            assert_eq!((x.0 & 0xff) as u8, a);
            assert_eq!((y.0 & 0xff) as u8, b);
            assert!(seen.insert(x) && seen.insert(y));
        }
        let floor = MessageId(u64::MAX / 2);
        assert!(IdGenerator::with_tag(Some(floor), a).next_id() > floor);
    }

    #[test]
    fn floor_is_respected_when_the_clock_is_behind() {
        let floor = MessageId(u64::MAX / 2);
        let g = IdGenerator::new(Some(floor));
        assert!(g.next_id() > floor);
    }

    #[test]
    fn bad_ids_are_refused() {
        assert!("xyz".parse::<MessageId>().is_err());
        assert!("0123456789abcdeg".parse::<MessageId>().is_err());
        assert!("0123456789abcdef0".parse::<MessageId>().is_err());
    }
}
