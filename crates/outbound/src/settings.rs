//! The outbound settings of a configuration: egress pools, timeouts,
//! per-destination limits (matched by domain pattern: exact, then the
//! longest `.suffix`, then `*`), and the recipient-side policies in force.
//! Swapped as a whole on reload.

use std::net::IpAddr;
use std::time::Duration;

use laneway_common::admin::{ShapingRow, ShapingView};
use laneway_common::config::units::Rate;
use laneway_common::config::{
    Config, Destination, OutboundTls, ShapingEntry, ShapingRules, Trigger,
};
use laneway_common::domain::best_match;
use laneway_common::{LaneSet, Priority};
use laneway_spool::queue::{PoolLimit, SiteLimits};

use crate::client::Timeouts;

/// An egress pool: the lanes it carries, where it connects from, its EHLO name.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Name for logs.
    pub name: String,
    /// Lanes carried.
    pub lanes: LaneSet,
    /// Source addresses, used in turn.
    pub sources: Vec<IpAddr>,
    /// EHLO name.
    pub helo: String,
    /// Its IP warm-up, if its addresses are new.
    pub warmup: Option<laneway_common::config::Warmup>,
}

/// Outbound settings (swapped on reload).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Default TLS policy.
    pub tls: OutboundTls,
    /// Per-phase timeouts.
    pub timeouts: Timeouts,
    /// How long an idle connection waits for more work.
    pub idle_timeout: Duration,
    /// Egress pools; the last carries every lane no other pool names.
    pub pools: Vec<PoolSettings>,
    /// Per-domain limits.
    pub destinations: Vec<Destination>,
    /// Limits of a site without a `[[destination]]`.
    pub default_limits: SiteLimits,
    /// Honour MTA-STS policies.
    pub mta_sts: bool,
    /// Port of MTA-STS policy hosts.
    pub mta_sts_port: u16,
    /// DANE for hosts with secure TLSA records.
    pub dane: bool,
    /// Provider and domain limits of the shaping files.
    pub shaping: ShapingRules,
    /// The lanes an automation rule holds when it names none: below
    /// `[auth] transactional_min_lane`.
    pub bulk_lanes: LaneSet,
}

/// The shaping that applies to a domain: its `[domain.<d>]` entry, or the
/// provider its MX hosts roll up to.
#[derive(Debug, Clone, Copy)]
pub struct Shaped<'a> {
    /// The provider's name, when it is a provider's entry.
    pub provider: Option<&'a str>,
    /// The entry's name: the provider's, or the domain's (what its
    /// automation rules hold).
    pub name: &'a str,
    /// The limits.
    pub entry: &'a ShapingEntry,
}

impl Settings {
    /// The outbound settings of a configuration.
    pub fn from_config(c: &Config) -> Settings {
        let o = &c.outbound;
        let helo = o
            .helo_name
            .clone()
            .unwrap_or_else(|| c.server.hostname.clone());
        let mut pools: Vec<PoolSettings> = o
            .pool
            .iter()
            .map(|p| PoolSettings {
                name: p.name.clone(),
                lanes: p.lanes,
                sources: p.source.clone(),
                helo: p.helo_name.clone().unwrap_or_else(|| helo.clone()),
                warmup: p.warmup.clone(),
            })
            .collect();
        let covered = pools.iter().fold(0u16, |acc, p| acc | p.lanes.bits());
        let rest = LaneSet::from_bits(!covered);
        if !rest.is_empty() {
            pools.push(PoolSettings {
                name: "default".into(),
                lanes: rest,
                sources: Vec::new(),
                helo,
                warmup: None,
            });
        }
        Settings {
            tls: o.tls,
            timeouts: Timeouts {
                connect: o.connect_timeout,
                greeting: o.greeting_timeout,
                command: o.command_timeout,
                data: o.data_timeout,
            },
            idle_timeout: o.idle_timeout,
            pools,
            destinations: c.destinations.clone(),
            default_limits: SiteLimits {
                max_connections: o.connections_per_destination,
                reserved: 0,
                reserved_min_lane: Priority::new(7).expect("lane"),
                rate: None,
                messages_per_connection: o.messages_per_connection,
                pools: Vec::new(),
            },
            mta_sts: o.mta_sts,
            mta_sts_port: o.mta_sts_port,
            dane: o.dane,
            shaping: c.shaping_rules.clone(),
            bulk_lanes: match c.auth.transactional_min_lane.get() {
                0 => LaneSet::default(),
                n => LaneSet::range(Priority::MIN, Priority::new(n as i64 - 1).expect("lane")),
            },
        }
    }

    /// The lane sets of the pools, in order (for the scheduler).
    pub fn pool_lanes(&self) -> Vec<LaneSet> {
        self.pools.iter().map(|p| p.lanes).collect()
    }

    /// The `[[destination]]` that applies to `domain`, if any.
    pub fn destination(&self, domain: &str) -> Option<&Destination> {
        best_match(&self.destinations, domain, |d| &d.domain)
    }

    /// The shaping for `domain`, whose MX hosts are `mx_hosts` (empty for a
    /// route): none when a `[[destination]]` matches it (the main
    /// configuration wins), else its `[domain.<d>]`, else the provider one
    /// of the MX hosts rolls up to.
    pub fn shaped<'a>(&'a self, domain: &str, mx_hosts: &[&'a str]) -> Option<Shaped<'a>> {
        if self.destination(domain).is_some() {
            return None;
        }
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        if let Some((name, entry)) = self.shaping.domains.get_key_value(&d) {
            return Some(Shaped {
                provider: None,
                name,
                entry,
            });
        }
        self.shaping
            .provider(mx_hosts.iter().copied())
            .map(|(name, entry)| Shaped {
                provider: Some(name),
                name,
                entry,
            })
    }

    /// The limits of the site `domain` resolves to: its `[[destination]]`,
    /// else its shaping, else `[outbound]`'s.
    pub fn limits_for(&self, domain: &str, shaped: Option<Shaped<'_>>) -> SiteLimits {
        let mut limits = self.site_limits(domain, shaped);
        limits.pools = self.pool_limits(shaped, laneway_common::envelope::now_ms());
        limits
    }

    /// Each pool's limits at a site: the shaping entry's
    /// `[….pool.<pool>]`, and the day's rate of an IP warm-up (the
    /// entry's, else the pool's own); the lower rate wins. Empty when no
    /// pool has any.
    pub fn pool_limits(&self, shaped: Option<Shaped<'_>>, now_ms: u64) -> Vec<PoolLimit> {
        let out: Vec<PoolLimit> = self
            .pools
            .iter()
            .map(|p| {
                let o = shaped.and_then(|s| s.entry.pool.get(&p.name));
                let warm = o
                    .and_then(|o| o.warmup.as_ref())
                    .or(p.warmup.as_ref())
                    .and_then(|w| w.rate_at(now_ms));
                let rate = match (o.and_then(|o| o.rate), warm) {
                    (Some(a), Some(b)) if b.per_second() < a.per_second() => Some(b),
                    (a, b) => a.or(b),
                };
                PoolLimit {
                    max_connections: o.and_then(|o| o.max_connections),
                    rate,
                }
            })
            .collect();
        if out.iter().all(|l| *l == PoolLimit::default()) {
            Vec::new()
        } else {
            out
        }
    }

    fn site_limits(&self, domain: &str, shaped: Option<Shaped<'_>>) -> SiteLimits {
        match (self.destination(domain), shaped) {
            (Some(x), _) => self.with_defaults(
                x.max_connections,
                Some(x.reserved_connections),
                Some(x.reserved_min_lane),
                x.rate,
                x.messages_per_connection,
            ),
            (None, Some(s)) => self.entry_limits(s.entry),
            (None, None) => self.default_limits.clone(),
        }
    }

    fn entry_limits(&self, e: &ShapingEntry) -> SiteLimits {
        self.with_defaults(
            e.max_connections,
            e.reserved_connections,
            e.reserved_min_lane,
            e.rate,
            e.messages_per_connection,
        )
    }

    /// Limits with what is not given taken from `[outbound]`.
    fn with_defaults(
        &self,
        max: Option<usize>,
        reserved: Option<usize>,
        min_lane: Option<Priority>,
        rate: Option<Rate>,
        per_conn: Option<usize>,
    ) -> SiteLimits {
        let d = &self.default_limits;
        SiteLimits {
            max_connections: max.unwrap_or(d.max_connections),
            reserved: reserved.unwrap_or(d.reserved),
            reserved_min_lane: min_lane.unwrap_or(d.reserved_min_lane),
            rate: rate.or(d.rate),
            messages_per_connection: per_conn.unwrap_or(d.messages_per_connection),
            pools: Vec::new(),
        }
    }

    /// The shaping files' providers and domains with their effective
    /// limits (`laneway shaping show`).
    pub fn shaping_view(&self) -> ShapingView {
        let row = |name: &str, e: &ShapingEntry| {
            let l = self.entry_limits(e);
            ShapingRow {
                name: name.to_string(),
                mx_suffix: e.mx_suffix.clone(),
                max_connections: l.max_connections,
                reserved_connections: l.reserved,
                reserved_min_lane: l.reserved_min_lane.get(),
                rate: l.rate.map(|r| r.to_string()),
                messages_per_connection: l.messages_per_connection,
                tls: crate::policy::TlsPolicy::from(e.tls.unwrap_or(self.tls))
                    .as_str()
                    .to_string(),
                idle_timeout: humantime::format_duration(
                    e.idle_timeout.unwrap_or(self.idle_timeout),
                )
                .to_string(),
                pools: e
                    .pool
                    .iter()
                    .map(|(name, p)| {
                        let mut parts = Vec::new();
                        if let Some(m) = p.max_connections {
                            parts.push(format!("max_connections {m}"));
                        }
                        if let Some(r) = p.rate {
                            parts.push(format!("rate {r}"));
                        }
                        if let Some(w) = &p.warmup {
                            let rates: Vec<String> =
                                w.rates.iter().map(|r| r.to_string()).collect();
                            parts.push(format!("warmup from {}: {}", w.start, rates.join(" ")));
                        }
                        format!("{name}: {}", parts.join(", "))
                    })
                    .collect(),
                automation: e
                    .automation
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let lanes = r.lanes.unwrap_or(self.bulk_lanes);
                        let trigger = match r.trigger {
                            Trigger::Immediate => "at the first match".to_string(),
                            Trigger::Threshold { count, window } => format!(
                                "after {count} matches in {}",
                                humantime::format_duration(window)
                            ),
                        };
                        format!(
                            "{}: {} lanes {lanes} for {} {trigger} of {}",
                            i + 1,
                            r.action.as_str(),
                            humantime::format_duration(r.duration),
                            r.regex.join(" | ")
                        )
                    })
                    .collect(),
            }
        };
        ShapingView {
            providers: self
                .shaping
                .providers
                .iter()
                .map(|(n, e)| row(n, e))
                .collect(),
            domains: self
                .shaping
                .domains
                .iter()
                .map(|(n, e)| row(n, e))
                .collect(),
            active: Vec::new(),
        }
    }
}
