//! `[outbound]`, `[[outbound.pool]]`, `[[destination]]`, `[[route]]` and
//! `[dns]`: delivery.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::units::{self, Rate};
use crate::priority::{LaneSet, Priority};

/// Outbound TLS policy: whether and how STARTTLS is used (RFC 3207, RFC 7435).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboundTls {
    /// STARTTLS when offered, no certificate check; plaintext retry if the
    /// handshake fails.
    #[default]
    Opportunistic,
    /// STARTTLS required, certificate and name verified, else defer.
    Verify,
    /// STARTTLS required (certificate not checked), else defer.
    Required,
    /// Never TLS.
    None,
}

/// `[outbound]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outbound {
    /// Port of remote MX hosts. Default 25.
    pub port: u16,
    /// EHLO name. Default `[server] hostname`.
    pub helo_name: Option<String>,
    /// `"opportunistic"` (default), `"verify"`, `"required"`, `"none"`.
    pub tls: OutboundTls,
    /// Outbound connections in all. Default 500.
    pub max_connections: usize,
    /// Connections per destination (next-hop site). Default 20.
    pub connections_per_destination: usize,
    /// Messages sent over one connection before it is closed. Default 1000.
    pub messages_per_connection: usize,
    /// Most recipients in one transaction. Default 100.
    pub max_recipients_per_transaction: usize,
    /// TCP connect timeout. Default `"30s"`.
    #[serde(deserialize_with = "units::duration")]
    pub connect_timeout: Duration,
    /// Wait for the greeting and EHLO replies. Default `"5m"`.
    #[serde(deserialize_with = "units::duration")]
    pub greeting_timeout: Duration,
    /// Wait for MAIL, RCPT and DATA replies. Default `"5m"`.
    #[serde(deserialize_with = "units::duration")]
    pub command_timeout: Duration,
    /// Wait for the reply to the end of data. Default `"10m"`.
    #[serde(deserialize_with = "units::duration")]
    pub data_timeout: Duration,
    /// Keep an idle connection open this long for more work. Default `"2s"`.
    #[serde(deserialize_with = "units::duration")]
    pub idle_timeout: Duration,
    /// Extra trust anchors (PEM) for verified TLS.
    pub ca_file: Option<PathBuf>,
    /// Honour recipient domains' MTA-STS policies (RFC 8461). Default true.
    pub mta_sts: bool,
    /// Port of MTA-STS policy hosts. Default 443 (tests use another).
    pub mta_sts_port: u16,
    /// DANE (RFC 7672) for MX hosts with DNSSEC-secure TLSA records.
    /// Needs `[dns] dnssec`. Default false.
    pub dane: bool,
    /// Send TLS reports (RFC 8460) to domains that ask for them. Default false.
    pub tls_reports: bool,
    /// The reporting period. Default `"24h"`.
    #[serde(deserialize_with = "units::duration")]
    pub tls_report_interval: Duration,
    /// Sender and contact of the reports. Default `postmaster@<hostname>`.
    pub tls_report_from: Option<String>,
    /// `[[outbound.pool]]`: egress pools by lane.
    pub pool: Vec<Pool>,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            port: 25,
            helo_name: None,
            tls: OutboundTls::Opportunistic,
            max_connections: 500,
            connections_per_destination: 20,
            messages_per_connection: 1000,
            max_recipients_per_transaction: 100,
            connect_timeout: Duration::from_secs(30),
            greeting_timeout: Duration::from_secs(300),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(2),
            ca_file: None,
            mta_sts: true,
            mta_sts_port: 443,
            dane: false,
            tls_reports: false,
            tls_report_interval: Duration::from_secs(86400),
            tls_report_from: None,
            pool: Vec::new(),
        }
    }
}

/// `[[outbound.pool]]`: connections for some lanes leave from their own
/// source addresses (the transactional/marketing separation).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Name for logs and metrics.
    pub name: String,
    /// The lanes this pool carries, e.g. `"5-9"`.
    pub lanes: LaneSet,
    /// Source addresses to bind, used in turn.
    #[serde(default)]
    pub source: Vec<IpAddr>,
    /// EHLO name for this pool. Default `[outbound] helo_name`.
    #[serde(default)]
    pub helo_name: Option<String>,
    /// An IP warm-up for new addresses: `{ start = "2026-12-01", rates =
    /// ["500/day", "1000/day", …] }`, the day's rate for each site.
    #[serde(default)]
    pub warmup: Option<super::Warmup>,
}

/// `[[destination]]`: limits for the site a domain's mail goes to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// Recipient domain, `.example.com` (every subdomain) or `*` (every
    /// domain); the most specific match wins (exact, longest suffix, `*`).
    /// The limits apply to the whole next-hop site it resolves to (every
    /// domain sharing those MX hosts); `hold` holds every matching domain.
    pub domain: String,
    /// Overrides `[outbound] connections_per_destination`.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Messages per period, e.g. `"50/s"`. Default unlimited.
    #[serde(default)]
    pub rate: Option<Rate>,
    /// Overrides `[outbound] messages_per_connection`.
    #[serde(default)]
    pub messages_per_connection: Option<usize>,
    /// Connections only lanes ≥ `reserved_min_lane` may use. Default 0.
    #[serde(default)]
    pub reserved_connections: usize,
    /// The lowest lane that may use reserved connections. Default 7.
    #[serde(default = "default_reserved_min_lane")]
    pub reserved_min_lane: Priority,
    /// Overrides `[outbound] tls`.
    #[serde(default)]
    pub tls: Option<OutboundTls>,
    /// Accept and queue mail for this domain but deliver none of it until
    /// `laneway queue resume DOMAIN` (like Postfix's hold queue, for a
    /// receiver under maintenance). Applied at start-up and on reload.
    /// Default false.
    #[serde(default)]
    pub hold: bool,
}

fn default_reserved_min_lane() -> Priority {
    Priority::new(7).expect("valid lane")
}

/// `[[route]]`: a static next hop for a domain, or `*` for a smarthost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Recipient domain, `.example.com` (every subdomain), or `"*"` for
    /// every domain without a more specific route (a smarthost).
    pub domain: String,
    /// `host:port`, `[ip]:port` or `host` (port `[outbound] port`).
    pub via: String,
    /// Overrides `[outbound] tls`.
    #[serde(default)]
    pub tls: Option<OutboundTls>,
    /// SMTP AUTH user at the next hop (only over TLS).
    #[serde(default)]
    pub auth_user: Option<String>,
    /// File holding the AUTH password.
    #[serde(default)]
    pub auth_password_file: Option<PathBuf>,
}

/// `[dns]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// Name servers (`ip:port`). Default: the system resolver (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Per-query timeout. Default `"5s"`.
    #[serde(deserialize_with = "units::duration")]
    pub timeout: Duration,
    /// Attempts per query. Default 2.
    pub attempts: usize,
    /// Trust the AD bit of the first name server (a local validating
    /// resolver) for DANE. Needs `nameservers`. Default false.
    pub dnssec: bool,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(5),
            attempts: 2,
            dnssec: false,
        }
    }
}
