//! A destination site: the next hop that one or more recipient domains
//! share (same MX set, or the same static route), with its ten lanes of
//! ready work, its connection accounting and its health.
//!
//! Connection slots: at most `max_connections` (lowered while the site
//! pushes back), of which `reserved` are kept for lanes ≥ `reserved_min_lane`
//! so urgent mail does not even wait for a bulk transaction to end.
//! Back-off follows Postfix's dead-site and concurrency feedback: a failed
//! connection or a throttling reply halves the window and pauses the site,
//! successes grow it back one step at a time.

use std::collections::BTreeSet;
use std::sync::Arc;

use laneway_common::config::units::Rate;
use laneway_common::{LaneSet, MessageId, Priority};

/// Limits of one site (from `[outbound]` and a matching `[[destination]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SiteLimits {
    /// Most connections.
    pub max_connections: usize,
    /// Of those, how many only lanes ≥ `reserved_min_lane` may use.
    pub reserved: usize,
    /// The lowest lane that may use reserved connections.
    pub reserved_min_lane: Priority,
    /// Message rate, if limited.
    pub rate: Option<Rate>,
    /// Messages per connection before it is closed.
    pub messages_per_connection: usize,
    /// Limits of each egress pool's traffic to the site (by pool index;
    /// missing entries: none).
    pub pools: Vec<PoolLimit>,
}

/// What one egress pool may send to a site (a shaping file's
/// `[provider.<name>.pool.<pool>]`, an IP warm-up).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolLimit {
    /// Most connections from the pool.
    pub max_connections: Option<usize>,
    /// Messages per period from the pool.
    pub rate: Option<Rate>,
}

impl Default for SiteLimits {
    fn default() -> Self {
        SiteLimits {
            max_connections: 20,
            reserved: 0,
            reserved_min_lane: Priority::new(7).expect("lane"),
            rate: None,
            messages_per_connection: 1000,
            pools: Vec::new(),
        }
    }
}

/// How healthy a site is, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Working normally.
    Ok,
    /// Pushing back (421 / 4.7.x): concurrency lowered.
    Throttled,
    /// Unreachable: paused, work deferred.
    Down,
}

/// A connection's right to carry work for a site.
#[derive(Debug, Clone)]
pub struct ConnGrant {
    /// The site key.
    pub site: Arc<str>,
    /// The egress pool (index into the configured pools).
    pub pool: usize,
    /// The lanes this connection may carry.
    pub lanes: LaneSet,
    /// Whether this is one of the reserved slots (only high lanes).
    pub reserved: bool,
    /// Messages carried so far.
    pub carried: usize,
    pub(crate) state: GrantState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantState {
    Starting,
    Busy,
    Idle,
}

/// What a connection did, reported when it closes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnReport {
    /// No MX host could be reached.
    pub connect_failed: bool,
    /// The site pushed back (421, 4.7.x).
    pub throttled: bool,
    /// Messages accepted on the connection.
    pub delivered: usize,
    /// Never opened: every slot of the site is taken across the cluster;
    /// no new connection for this many ms (0: not the case).
    pub shared_full_ms: u64,
}

#[derive(Debug)]
pub(crate) struct Site {
    pub key: Arc<str>,
    pub limits: SiteLimits,
    pub lanes: [BTreeSet<(MessageId, super::compact::DomainId)>; 10],
    pub regular: usize,
    pub reserved: usize,
    pub idle: Vec<usize>,
    pub starting: Vec<usize>,
    /// Connections open per pool, and when each pool's rate allows the next.
    pub pool_open: Vec<usize>,
    pub pool_token_ms: Vec<f64>,
    pub cwnd: usize,
    pub failures: u32,
    pub paused_until_ms: u64,
    pub next_token_ms: f64,
    pub suspended: bool,
    pub last_grant: u64,
    pub health: Health,
    /// The provider or shaping domain it rolls up to.
    pub shaping: Option<Arc<str>>,
}

impl Site {
    pub fn new(key: Arc<str>, limits: SiteLimits, pools: usize) -> Site {
        let cwnd = limits.max_connections;
        Site {
            key,
            limits,
            lanes: Default::default(),
            regular: 0,
            reserved: 0,
            idle: vec![0; pools],
            starting: vec![0; pools],
            pool_open: vec![0; pools],
            pool_token_ms: vec![0.0; pools],
            cwnd,
            failures: 0,
            paused_until_ms: 0,
            next_token_ms: 0.0,
            suspended: false,
            last_grant: 0,
            health: Health::Ok,
            shaping: None,
        }
    }

    pub fn set_limits(&mut self, limits: SiteLimits) {
        if self.limits != limits {
            self.cwnd = self.cwnd.min(limits.max_connections).max(1);
            if self.health == Health::Ok {
                self.cwnd = limits.max_connections;
            }
            self.limits = limits;
        }
    }

    pub fn ready_in(&self, lanes: LaneSet) -> usize {
        lanes.iter_desc().map(|l| self.lanes[l.index()].len()).sum()
    }

    pub fn highest_ready(&self, lanes: LaneSet) -> Option<Priority> {
        lanes
            .iter_desc()
            .find(|l| !self.lanes[l.index()].is_empty())
    }

    pub fn ready(&self) -> usize {
        self.lanes.iter().map(|l| l.len()).sum()
    }

    pub fn active(&self) -> usize {
        self.regular + self.reserved
    }

    /// The connection limit in force (the window, at most the configured maximum).
    pub fn window(&self) -> usize {
        self.cwnd.clamp(1, self.limits.max_connections.max(1))
    }

    /// Slots for any lane: the window less the reserved slots.
    pub fn regular_slots(&self) -> usize {
        self.window().saturating_sub(self.limits.reserved).max(1)
    }

    /// How long until the site's message rate allows another message,
    /// or `None` if one may go now.
    pub fn token_wait(&self, now_ms: u64) -> Option<u64> {
        self.limits.rate?;
        let now = now_ms as f64;
        (self.next_token_ms > now + 0.5).then(|| (self.next_token_ms - now).ceil() as u64)
    }

    /// The limits of `pool`'s traffic.
    pub fn pool_limit(&self, pool: usize) -> Option<&PoolLimit> {
        self.limits.pools.get(pool)
    }

    /// Whether `pool` may open another connection.
    pub fn pool_has_room(&self, pool: usize) -> bool {
        let open = self.pool_open.get(pool).copied().unwrap_or(0);
        self.pool_limit(pool)
            .and_then(|l| l.max_connections)
            .is_none_or(|m| open < m)
    }

    /// How long until `pool`'s rate allows another message here.
    pub fn pool_token_wait(&self, pool: usize, now_ms: u64) -> Option<u64> {
        self.pool_limit(pool)?.rate?;
        let next = *self.pool_token_ms.get(pool)?;
        let now = now_ms as f64;
        (next > now + 0.5).then(|| (next - now).ceil() as u64)
    }

    /// Uses up one message of `pool`'s rate.
    pub fn consume_pool_token(&mut self, pool: usize, now_ms: u64) {
        if let Some(rate) = self.pool_limit(pool).and_then(|l| l.rate)
            && let Some(t) = self.pool_token_ms.get_mut(pool)
        {
            *t = t.max(now_ms as f64) + 1000.0 / rate.per_second();
        }
    }

    /// Uses up one message of the site's rate.
    pub fn consume_token(&mut self, now_ms: u64) {
        if let Some(rate) = self.limits.rate {
            let interval = 1000.0 / rate.per_second();
            self.next_token_ms = self.next_token_ms.max(now_ms as f64) + interval;
        }
    }

    /// Applies a closed connection's report; returns the new health if it changed.
    pub fn report(&mut self, r: &ConnReport, now_ms: u64) -> Option<Health> {
        let before = self.health;
        if r.shared_full_ms > 0 {
            // other nodes hold the slots: wait, without judging the site
            self.paused_until_ms = self.paused_until_ms.max(now_ms + r.shared_full_ms);
            return None;
        }
        if r.connect_failed {
            self.failures += 1;
            self.cwnd = 1;
            let pause = 1000u64 << self.failures.min(8).saturating_sub(1);
            self.paused_until_ms = now_ms + pause.min(300_000);
            self.health = Health::Down;
        } else if r.throttled {
            self.cwnd = (self.window() / 2).max(1);
            self.paused_until_ms = now_ms + 1000;
            self.health = Health::Throttled;
        } else if r.delivered > 0 {
            self.failures = 0;
            if self.cwnd < self.limits.max_connections {
                self.cwnd += 1;
            }
            if self.cwnd >= self.limits.max_connections {
                self.health = Health::Ok;
            } else if self.health == Health::Down {
                self.health = Health::Throttled;
            }
        }
        (self.health != before).then_some(self.health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_halves_on_throttling_and_grows_back() {
        let mut s = Site::new("x".into(), SiteLimits::default(), 1);
        assert_eq!(s.window(), 20);
        assert_eq!(
            s.report(
                &ConnReport {
                    throttled: true,
                    ..Default::default()
                },
                0
            ),
            Some(Health::Throttled)
        );
        assert_eq!(s.window(), 10);
        assert_eq!(s.paused_until_ms, 1000);
        for _ in 0..9 {
            s.report(
                &ConnReport {
                    delivered: 1,
                    ..Default::default()
                },
                0,
            );
        }
        assert_eq!(s.window(), 19);
        assert_eq!(
            s.report(
                &ConnReport {
                    delivered: 1,
                    ..Default::default()
                },
                0
            ),
            Some(Health::Ok)
        );
    }

    #[test]
    fn connect_failures_pause_longer_each_time() {
        let mut s = Site::new("x".into(), SiteLimits::default(), 1);
        s.report(
            &ConnReport {
                connect_failed: true,
                ..Default::default()
            },
            0,
        );
        assert_eq!(
            (s.window(), s.paused_until_ms, s.health),
            (1, 1000, Health::Down)
        );
        s.report(
            &ConnReport {
                connect_failed: true,
                ..Default::default()
            },
            0,
        );
        assert_eq!(s.paused_until_ms, 2000);
    }

    #[test]
    fn rate_tokens() {
        let mut s = Site::new(
            "x".into(),
            SiteLimits {
                rate: Some("10/s".parse().unwrap()),
                ..Default::default()
            },
            1,
        );
        assert_eq!(s.token_wait(0), None);
        s.consume_token(0);
        assert_eq!(s.token_wait(0), Some(100));
        assert_eq!(s.token_wait(100), None);
        s.consume_token(100);
        assert_eq!(s.token_wait(150), Some(50));
    }

    #[test]
    fn reserved_slots_come_out_of_the_window() {
        let s = Site::new(
            "x".into(),
            SiteLimits {
                max_connections: 3,
                reserved: 1,
                ..Default::default()
            },
            1,
        );
        assert_eq!(s.regular_slots(), 2);
    }
}
