//! The outbound settings of a configuration: egress pools, timeouts,
//! per-destination limits (matched by domain pattern: exact, then the
//! longest `.suffix`, then `*`), and the recipient-side policies in force.
//! Swapped as a whole on reload.

use std::net::IpAddr;
use std::time::Duration;

use laneway_common::config::{Config, Destination, OutboundTls};
use laneway_common::domain::best_match;
use laneway_common::{LaneSet, Priority};
use laneway_spool::queue::SiteLimits;

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
            },
            mta_sts: o.mta_sts,
            mta_sts_port: o.mta_sts_port,
            dane: o.dane,
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

    /// The limits of the site `domain` resolves to.
    pub fn limits_for(&self, domain: &str) -> SiteLimits {
        let d = &self.default_limits;
        match self.destination(domain) {
            None => d.clone(),
            Some(x) => SiteLimits {
                max_connections: x.max_connections.unwrap_or(d.max_connections),
                reserved: x.reserved_connections,
                reserved_min_lane: x.reserved_min_lane,
                rate: x.rate,
                messages_per_connection: x
                    .messages_per_connection
                    .unwrap_or(d.messages_per_connection),
            },
        }
    }
}
