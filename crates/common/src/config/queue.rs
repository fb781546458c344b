//! `[queue]`, `[[queue.lane]]` and `[spool]`: retries, expiry and the spool.

use std::time::Duration;

use serde::Deserialize;

use super::units::{self};
use crate::priority::{LaneSet, Priority};

/// `[queue]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    /// The lane of mail that names no priority. Default 4.
    pub default_priority: Priority,
    /// First retry delay; doubled each attempt, with jitter. Default `"5m"`.
    #[serde(deserialize_with = "units::duration")]
    pub retry_base: Duration,
    /// Longest retry delay. Default `"4h"`.
    #[serde(deserialize_with = "units::duration")]
    pub retry_max: Duration,
    /// Give up and bounce after this long in the queue. Default `"5d"`.
    #[serde(deserialize_with = "units::duration")]
    pub max_age: Duration,
    /// Send a delay DSN (when asked for) after this long. Default `"4h"`.
    #[serde(deserialize_with = "units::duration")]
    pub delay_warning: Duration,
    /// `[[queue.lane]]`: per-lane overrides.
    pub lane: Vec<LaneOverride>,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            default_priority: Priority::DEFAULT,
            retry_base: Duration::from_secs(300),
            retry_max: Duration::from_secs(4 * 3600),
            max_age: Duration::from_secs(5 * 86400),
            delay_warning: Duration::from_secs(4 * 3600),
            lane: Vec::new(),
        }
    }
}

/// `[[queue.lane]]`: retry and expiry for some lanes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneOverride {
    /// The lanes, e.g. `"7-9"`.
    pub lanes: LaneSet,
    /// Overrides `[queue] retry_base`.
    #[serde(default, deserialize_with = "units::opt_duration")]
    pub retry_base: Option<Duration>,
    /// Overrides `[queue] retry_max`.
    #[serde(default, deserialize_with = "units::opt_duration")]
    pub retry_max: Option<Duration>,
    /// Overrides `[queue] max_age`.
    #[serde(default, deserialize_with = "units::opt_duration")]
    pub max_age: Option<Duration>,
    /// Overrides `[queue] delay_warning`.
    #[serde(default, deserialize_with = "units::opt_duration")]
    pub delay_warning: Option<Duration>,
}

/// Retry and expiry in force for one lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanePolicy {
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Expiry.
    pub max_age: Duration,
    /// Delay warning.
    pub delay_warning: Duration,
}

impl Queue {
    /// The policy for `lane`: the last matching `[[queue.lane]]` entry wins
    /// over `[queue]`.
    pub fn policy(&self, lane: Priority) -> LanePolicy {
        let mut p = LanePolicy {
            retry_base: self.retry_base,
            retry_max: self.retry_max,
            max_age: self.max_age,
            delay_warning: self.delay_warning,
        };
        for o in self.lane.iter().filter(|o| o.lanes.contains(lane)) {
            p.retry_base = o.retry_base.unwrap_or(p.retry_base);
            p.retry_max = o.retry_max.unwrap_or(p.retry_max);
            p.max_age = o.max_age.unwrap_or(p.max_age);
            p.delay_warning = o.delay_warning.unwrap_or(p.delay_warning);
        }
        p
    }
}

/// `[spool]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spool {
    /// Shard directories per lane (1–4096). Default 64.
    pub shards: u32,
    /// Below this much free space (bytes) new mail is refused with
    /// `452 4.3.1` / HTTP 507. Default 100 MiB.
    #[serde(deserialize_with = "units::size")]
    pub min_free_bytes: u64,
}

impl Default for Spool {
    fn default() -> Self {
        Spool {
            shards: 64,
            min_free_bytes: 100 << 20,
        }
    }
}
