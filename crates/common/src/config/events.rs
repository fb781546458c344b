//! `[events]` (the kept history) and `[[webhook]]` (where events are sent).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::units;
use crate::events::EventType;
use crate::priority::LaneSet;

/// `[events]`: every message's events, kept for `history` under the spool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// How long events stay for `laneway queue trace` and
    /// `GET /api/v1/events`. Default `"7d"`.
    #[serde(deserialize_with = "units::duration")]
    pub history: Duration,
    /// The most the event log may hold; past it the oldest events go (also
    /// ones a webhook has not got: counted and logged). Default `"1GiB"`.
    #[serde(deserialize_with = "units::size")]
    pub max_size: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            history: Duration::from_secs(7 * 86400),
            max_size: 1 << 30,
        }
    }
}

/// `[[webhook]]`: an HTTP endpoint that gets events, signed, at least once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Name (metrics, logs, the cursor kept for it).
    pub name: String,
    /// `http://` or `https://` URL the batches are POSTed to.
    pub url: String,
    /// Event types sent. Default: all.
    #[serde(default)]
    pub events: Option<Vec<EventType>>,
    /// Lanes whose events are sent, e.g. `"5-9"`. Default: all.
    #[serde(default = "all_lanes")]
    pub lanes: LaneSet,
    /// Most events in one request. Default 100.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest an event waits for a batch to fill. Default `"1s"`.
    #[serde(default = "default_batch_wait", deserialize_with = "units::duration")]
    pub batch_wait: Duration,
    /// Longest a request may take. Default `"10s"`.
    #[serde(default = "default_timeout", deserialize_with = "units::duration")]
    pub timeout: Duration,
    /// Events older than this are not sent any more (counted as dropped).
    /// Default `"3d"`.
    #[serde(default = "default_max_age", deserialize_with = "units::duration")]
    pub max_age: Duration,
    /// First wait after a failed request, doubling. Default `"1s"`.
    #[serde(
        default = "default_retry_initial",
        deserialize_with = "units::duration"
    )]
    pub retry_initial: Duration,
    /// Longest wait between tries. Default `"5m"`.
    #[serde(default = "default_retry_max", deserialize_with = "units::duration")]
    pub retry_max: Duration,
    /// One secret a line (its bytes, newline stripped, are an HMAC-SHA256
    /// key): the first signs, every line gets its own `v1=` (rotation).
    pub secret_file: PathBuf,
}

fn all_lanes() -> LaneSet {
    LaneSet::ALL
}
fn default_batch_size() -> usize {
    100
}
fn default_batch_wait() -> Duration {
    Duration::from_secs(1)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_age() -> Duration {
    Duration::from_secs(3 * 86400)
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}

impl Webhook {
    /// Whether an event of this type and lane goes to this webhook.
    pub fn wants(&self, kind: EventType, lane: u8) -> bool {
        self.events.as_ref().is_none_or(|t| t.contains(&kind))
            && crate::Priority::new(i64::from(lane)).is_ok_and(|l| self.lanes.contains(l))
    }

    /// The secrets of `secret_file`, the signing one first.
    pub fn secrets(&self) -> Result<Vec<Vec<u8>>, String> {
        let text = std::fs::read(&self.secret_file).map_err(|e| {
            format!(
                "[[webhook]] {}: secret_file {}: {e}",
                self.name,
                self.secret_file.display()
            )
        })?;
        let secrets: Vec<Vec<u8>> = text
            .split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            .filter(|l| !l.is_empty())
            .collect();
        if secrets.is_empty() {
            return Err(format!(
                "[[webhook]] {}: secret_file {} holds no secret",
                self.name,
                self.secret_file.display()
            ));
        }
        Ok(secrets)
    }
}
