//! Restrictions: what an active shaping rule (crates/outbound, automation)
//! does to the sites of its provider. They are keyed by the provider (or
//! shaping domain) name that [`SiteInfo::shaping`] gives each site, so every
//! site that rolls up to the provider is held at once, and a throttled
//! rate is one rate for all of them.
//!
//! While a restriction *holds*, its lanes are suspended (no connection is
//! opened for them, none carries them) or throttled (their own rate, and a
//! cap on the site's regular connections); every other lane keeps the
//! site's limits, and the site's reserved connections stay open to the
//! urgent lanes even when its window has shrunk. When the hold ends the
//! lanes *ramp*: their rate starts at the restriction's floor and doubles
//! every eighth of the ramp, so the site's own limits are back at its end.

use std::sync::Arc;

use laneway_common::config::units::Rate;
use laneway_common::{LaneSet, Priority};

use super::{Queue, SiteInfo};

/// What a restriction does to its lanes while it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestrictMode {
    /// Nothing goes out.
    Suspend,
    /// At most `rate`; the site's regular connections capped.
    Throttle,
    /// Not held back here: the dispatcher fails the lanes' mail instead.
    Bounce,
}

/// A shaping rule's hold on one provider's sites.
#[derive(Debug, Clone, PartialEq)]
pub struct Restriction {
    /// The lanes held.
    pub lanes: LaneSet,
    /// What is done to them.
    pub mode: RestrictMode,
    /// Their rate while throttled, and where the ramp starts (default 1/s).
    pub rate: Option<Rate>,
    /// While throttled: most regular connections per site.
    pub max_connections: Option<usize>,
    /// The hold ends then (queue clock, ms).
    pub until_ms: u64,
    /// The ramp ends then.
    pub ramp_until_ms: u64,
}

/// Where a restriction is at a moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Holding.
    Hold,
    /// Coming back: this far through the ramp (0 to 1).
    Ramp(f64),
    /// Over.
    Over,
}

impl Restriction {
    /// Its phase at `now_ms`.
    pub fn phase(&self, now_ms: u64) -> Phase {
        if now_ms < self.until_ms {
            Phase::Hold
        } else if now_ms < self.ramp_until_ms {
            let span = (self.ramp_until_ms - self.until_ms).max(1) as f64;
            Phase::Ramp((now_ms - self.until_ms) as f64 / span)
        } else {
            Phase::Over
        }
    }

    /// The lanes nothing may be taken from now.
    pub(crate) fn blocked(&self, now_ms: u64) -> LaneSet {
        match (self.phase(now_ms), self.mode) {
            (Phase::Hold, RestrictMode::Suspend) => self.lanes,
            _ => LaneSet::default(),
        }
    }

    /// Messages per second the held lanes may send now (`None`: no limit
    /// of the restriction's own).
    pub(crate) fn lane_rate(&self, now_ms: u64) -> Option<f64> {
        let floor = self.rate.map(|r| r.per_second()).unwrap_or(1.0);
        match (self.phase(now_ms), self.mode) {
            (Phase::Hold, RestrictMode::Throttle) => self.rate.map(|r| r.per_second()),
            (Phase::Hold, _) => None,
            // a throttle of connections only had no rate to ramp from
            (Phase::Ramp(_), RestrictMode::Throttle) if self.rate.is_none() => None,
            (Phase::Ramp(f), _) => Some(floor * 2f64.powf(8.0 * f)),
            (Phase::Over, _) => None,
        }
    }

    /// The cap on a site's regular connections now.
    pub(crate) fn regular_cap(&self, now_ms: u64) -> Option<usize> {
        match (self.phase(now_ms), self.mode) {
            (Phase::Hold, RestrictMode::Throttle) => self.max_connections,
            _ => None,
        }
    }
}

/// A restriction with the state of its rate.
#[derive(Debug)]
pub(crate) struct Held {
    pub restriction: Restriction,
    pub next_token_ms: f64,
}

impl Held {
    /// How long until the held lanes may send another message.
    pub fn token_wait(&self, now_ms: u64) -> Option<u64> {
        self.restriction.lane_rate(now_ms)?;
        let now = now_ms as f64;
        (self.next_token_ms > now + 0.5).then(|| (self.next_token_ms - now).ceil() as u64)
    }

    /// Uses up one message of the held lanes' rate.
    pub fn consume(&mut self, now_ms: u64) {
        if let Some(r) = self.restriction.lane_rate(now_ms) {
            self.next_token_ms = self.next_token_ms.max(now_ms as f64) + 1000.0 / r.max(0.001);
        }
    }

    /// Whether `lane` is one it limits now.
    pub fn limits(&self, lane: Priority, now_ms: u64) -> bool {
        self.restriction.lanes.contains(lane) && self.restriction.lane_rate(now_ms).is_some()
    }
}

impl Queue {
    /// Replaces the restrictions in force (keyed by shaping name); one
    /// that is unchanged keeps its rate's state. Wakes the scheduler.
    pub fn set_restrictions(&self, list: Vec<(Arc<str>, Restriction)>) {
        let mut st = self.lock();
        let mut next = std::collections::HashMap::new();
        for (name, r) in list {
            let token = st
                .restrictions
                .get(&name)
                .filter(|h| h.restriction == r)
                .map(|h| h.next_token_ms)
                .unwrap_or(0.0);
            next.insert(
                name,
                Held {
                    restriction: r,
                    next_token_ms: token,
                },
            );
        }
        st.restrictions = next;
        drop(st);
        self.changed.notify_one();
        self.work.notify_waiters();
    }

    /// The restriction on `site`'s shaping name in force, if any.
    pub fn restriction_of(&self, site: &str) -> Option<Restriction> {
        let st = self.lock();
        let name = st.sites.get(site)?.shaping.clone()?;
        st.restrictions.get(&name).map(|h| h.restriction.clone())
    }
}

impl SiteInfo {
    /// The same site, under a provider's (or shaping domain's) name.
    pub fn shaped(mut self, name: Option<Arc<str>>) -> SiteInfo {
        self.shaping = name;
        self
    }
}
