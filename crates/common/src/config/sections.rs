//! The tables of the configuration file. Each field's doc gives its unit
//! and default; `etc/laneway.toml` documents the same for operators.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::units::{self, Rate};
use crate::domain::DomainPattern;
use crate::priority::{LaneSet, Priority};

/// A key that takes one domain (not a pattern): its normal form.
fn exact_domain(d: &str) -> Result<String, String> {
    match DomainPattern::parse(d)? {
        DomainPattern::Exact(n) => Ok(n),
        _ => Err(format!(
            "{d:?}: this key takes a domain name, not a pattern (patterns such as \"*\" and \".example.com\" are for [[destination]] and [[route]] domain)"
        )),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `[server]`
    pub server: Server,
    /// `[[listener]]`: the SMTP listeners. None means no SMTP front door.
    pub listeners: Vec<Listener>,
    /// `[tls]`: the certificate for STARTTLS and implicit-TLS listeners.
    pub tls: Option<Tls>,
    /// `[relay]`
    pub relay: Relay,
    /// `[[smtp_user]]`
    pub smtp_users: Vec<SmtpUser>,
    /// `[queue]`
    pub queue: Queue,
    /// `[spool]`
    pub spool: Spool,
    /// `[outbound]`
    pub outbound: Outbound,
    /// `[[destination]]`
    pub destinations: Vec<Destination>,
    /// `[[route]]`
    pub routes: Vec<Route>,
    /// `[dns]`
    pub dns: Dns,
    /// `[log]`
    pub log: Log,
    /// `[api]`: absent means no HTTP API.
    pub api: Option<Api>,
    /// `[metrics]`: absent means no metrics listener.
    pub metrics: Option<Metrics>,
    /// `[auth]`
    pub auth: Auth,
    /// `[[domain]]`: sender domains Laneway signs and rewrites for.
    pub domains: Vec<SenderDomain>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// The name Laneway gives in its greeting, EHLO and `Received:` headers.
    /// Default: the machine's host name.
    pub hostname: String,
    /// Where the spool lives. Default `/var/spool/laneway` (the embedded
    /// default configuration uses `./spool`).
    pub spool_dir: PathBuf,
    /// How long SIGTERM waits for transactions and deliveries in progress.
    /// Default `"30s"`.
    #[serde(deserialize_with = "units::duration")]
    pub grace_period: Duration,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            hostname: system_hostname(),
            spool_dir: PathBuf::from("/var/spool/laneway"),
            grace_period: Duration::from_secs(30),
        }
    }
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// How a listener does TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerTls {
    /// Plain SMTP only.
    None,
    /// STARTTLS offered (RFC 3207).
    Starttls,
    /// TLS from the first byte (RFC 8314, port 465).
    Implicit,
}

/// What a listener does with a bare LF or bare CR in message content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareLf {
    /// Read the message to its real end, then refuse it with `550 5.6.0`.
    #[default]
    Reject,
    /// Turn bare LF into CRLF (for legacy applications). The data still
    /// ends only at `CRLF.CRLF`.
    Normalize,
}

/// `[[listener]]`: one SMTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Name used in logs and metrics. Default `"smtp"`; must be unique.
    #[serde(default = "default_listener_name")]
    pub name: String,
    /// Address and port; port 0 picks a free port (logged).
    pub bind: SocketAddr,
    /// `"none"`, `"starttls"` or `"implicit"`. Default: `"starttls"` when
    /// `[tls]` is configured, else `"none"`.
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// Refuse MAIL until the client has authenticated. Default false.
    #[serde(default)]
    pub require_auth: bool,
    /// Let trusted or authenticated clients choose the lane with
    /// `X-Priority-Queue` or `MT-PRIORITY`. Default false.
    #[serde(default)]
    pub trust_priority: bool,
    /// `"reject"` (default) or `"normalize"`.
    #[serde(default)]
    pub bare_lf: BareLf,
    /// Largest message in bytes (advertised in SIZE). Default 25 MiB.
    #[serde(default = "default_max_message_size", deserialize_with = "units::size")]
    pub max_message_size: u64,
    /// Recipients per message; at least 100 (RFC 5321). Default 1000.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Concurrent connections; more get `421 4.3.2`. Default 1000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Concurrent connections from one client address. Default 50.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Wait for the next command (RFC 5321 §4.5.3.2.7). Default `"5m"`.
    #[serde(
        default = "default_command_timeout",
        deserialize_with = "units::duration"
    )]
    pub command_timeout: Duration,
    /// Wait for each block of message data (§4.5.3.2.6 asks the client for
    /// 3 min; the server waits as long). Default `"3m"`.
    #[serde(default = "default_data_timeout", deserialize_with = "units::duration")]
    pub data_timeout: Duration,
    /// Slowest message data accepted, in bytes per second, like Postfix's
    /// `smtpd_min_data_rate`: once DATA or BDAT begins, the client has
    /// `data_timeout` plus one second per this many bytes it has sent;
    /// slower clients get `421 4.4.2`. Default 500; 0 turns it off.
    #[serde(default = "default_min_data_rate")]
    pub min_data_rate: u64,
    /// Whole-transaction deadline from MAIL to the end of data. Default `"30m"`.
    #[serde(
        default = "default_transaction_timeout",
        deserialize_with = "units::duration"
    )]
    pub transaction_timeout: Duration,
    /// Time allowed for a TLS handshake. Default `"30s"`.
    #[serde(
        default = "default_tls_handshake_timeout",
        deserialize_with = "units::duration"
    )]
    pub tls_handshake_timeout: Duration,
    /// Errors (4xx/5xx replies to commands) before the session is closed
    /// with `421`. Default 20.
    #[serde(default = "default_max_errors")]
    pub max_errors: u32,
}

impl Listener {
    /// The TLS mode in force, applying the default.
    pub fn tls_mode(&self, tls_configured: bool) -> ListenerTls {
        self.tls.unwrap_or(if tls_configured {
            ListenerTls::Starttls
        } else {
            ListenerTls::None
        })
    }
}

fn default_listener_name() -> String {
    "smtp".into()
}
fn default_max_message_size() -> u64 {
    25 << 20
}
fn default_max_recipients() -> usize {
    1000
}
fn default_max_connections() -> usize {
    1000
}
fn default_max_connections_per_ip() -> usize {
    50
}
fn default_command_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_data_timeout() -> Duration {
    Duration::from_secs(180)
}
fn default_min_data_rate() -> u64 {
    500
}
fn default_transaction_timeout() -> Duration {
    Duration::from_secs(1800)
}
fn default_tls_handshake_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_errors() -> u32 {
    20
}

/// `[tls]`: the server certificate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain file.
    pub cert: PathBuf,
    /// PEM private key file (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[relay]`: who may relay where.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Relay {
    /// Clients that may relay to any domain (and speak for their senders).
    /// Default: loopback only (`127.0.0.0/8`, `::1/128`).
    pub trusted_networks: Vec<IpNet>,
    /// Domains anyone may send to (Laneway is their MX and forwards them by
    /// `[[route]]`). Default none.
    pub local_domains: Vec<String>,
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            trusted_networks: vec![
                "127.0.0.0/8".parse().expect("valid net"),
                "::1/128".parse().expect("valid net"),
            ],
            local_domains: Vec::new(),
        }
    }
}

impl Relay {
    /// Whether `ip` is in `trusted_networks` (IPv4-mapped IPv6 addresses
    /// count as their IPv4 address).
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.trusted_networks.iter().any(|n| n.contains(&ip))
    }
}

/// `[[smtp_user]]`: an account for SMTP AUTH.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpUser {
    /// The user name given in AUTH.
    pub name: String,
    /// The password as an argon2 PHC string (`laneway hash-password` makes one).
    pub password_hash: String,
    /// Sender domains this user may send as (MAIL FROM and From:). Absent: any.
    #[serde(default)]
    pub allowed_from_domains: Option<Vec<String>>,
}

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

/// Outbound TLS policy (issue 3).
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

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Plain text, one event per line (default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A tracing filter such as `"info"` or `"info,laneway_outbound=debug"`.
    /// `RUST_LOG` overrides it. Default `"info"`.
    pub level: String,
    /// `"text"` (default) or `"json"`.
    pub format: LogFormat,
    /// Also write delivery events as JSON lines to this file.
    pub events: Option<PathBuf>,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            format: LogFormat::Text,
            events: None,
        }
    }
}

/// `[api]`: the HTTP submission and admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// Address and port. Port 0 picks a free port (logged).
    pub bind: SocketAddr,
    /// Largest message in bytes. Default 25 MiB.
    #[serde(default = "default_max_message_size", deserialize_with = "units::size")]
    pub max_message_size: u64,
    /// Most recipients per submission. Default 1000.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// `[[api.key]]`
    #[serde(default)]
    pub key: Vec<ApiKey>,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            bind: SocketAddr::from(([127, 0, 0, 1], 8025)),
            max_message_size: default_max_message_size(),
            max_recipients: default_max_recipients(),
            key: Vec::new(),
        }
    }
}

/// A scope an API key may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Submit messages.
    Send,
    /// Queue and suppression administration.
    Admin,
}

/// `[[api.key]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Name in logs.
    pub name: String,
    /// Lower-case hex SHA-256 of the bearer token.
    pub sha256: String,
    /// `"send"` and/or `"admin"`.
    pub scopes: Vec<Scope>,
    /// Sender domains this key may use. Absent: any.
    #[serde(default)]
    pub allowed_from_domains: Option<Vec<String>>,
    /// Lane when the request names none. Default `[queue] default_priority`.
    #[serde(default)]
    pub default_priority: Option<Priority>,
    /// Submissions per period, e.g. `"100/s"`. Default unlimited.
    #[serde(default)]
    pub rate: Option<Rate>,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Address and port serving `GET /metrics`. Port 0 picks a free port.
    pub bind: SocketAddr,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            bind: SocketAddr::from(([127, 0, 0, 1], 9325)),
        }
    }
}

/// `[auth]`: sender authentication settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// File whose bytes (trailing whitespace trimmed, ≥ 16 bytes) key the
    /// bounce-address HMAC. Required when any `[[domain]]` has a bounce domain.
    pub bounce_secret_file: Option<PathBuf>,
    /// One envelope sender (and transaction) per recipient. Default true.
    pub verp: bool,
    /// How long bounce tokens stay decodable. Default `"30d"`.
    #[serde(deserialize_with = "units::duration")]
    pub bounce_window: Duration,
    /// Bounce domain for trusted senders whose domain has no `[[domain]]`.
    pub default_bounce_domain: Option<String>,
    /// Also forward returned bounces to the original sender. Default false.
    pub forward_bounces: bool,
    /// Lanes at or above this are transactional: complaints do not suppress
    /// them. Default 5.
    pub transactional_min_lane: Priority,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            bounce_secret_file: None,
            verp: true,
            bounce_window: Duration::from_secs(30 * 86400),
            default_bounce_domain: None,
            forward_bounces: false,
            transactional_min_lane: Priority::new(5).expect("valid lane"),
        }
    }
}

/// DKIM signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DkimAlgorithm {
    /// RSA with SHA-256 (RFC 8301), 2048 bits or more.
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    /// Ed25519 with SHA-256 (RFC 8463).
    #[serde(rename = "ed25519-sha256")]
    Ed25519Sha256,
}

/// `[[domain]]`: a sender domain Laneway signs and rewrites for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderDomain {
    /// The sender domain (From / MAIL FROM).
    pub name: String,
    /// Where bounces for this domain's mail go (envelope sender domain).
    #[serde(default)]
    pub bounce_domain: Option<String>,
    /// Only relay this domain's mail over verified TLS (RFC 8689 semantics).
    #[serde(default)]
    pub require_tls: bool,
    /// `[[domain.dkim]]`: signing keys; two entries sign twice.
    #[serde(default)]
    pub dkim: Vec<DkimKey>,
}

/// `[[domain.dkim]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKey {
    /// The selector (`s=`).
    pub selector: String,
    /// PEM private key file.
    pub key: PathBuf,
    /// `"rsa-sha256"` or `"ed25519-sha256"`.
    pub algorithm: DkimAlgorithm,
}

impl Config {
    /// Makes relative file paths absolute against `base`.
    pub(super) fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        if let Some(t) = &mut self.tls {
            fix(&mut t.cert);
            fix(&mut t.key);
        }
        if let Some(p) = &mut self.outbound.ca_file {
            fix(p);
        }
        for r in &mut self.routes {
            if let Some(p) = &mut r.auth_password_file {
                fix(p);
            }
        }
        if let Some(p) = &mut self.auth.bounce_secret_file {
            fix(p);
        }
        for d in &mut self.domains {
            for k in &mut d.dkim {
                fix(&mut k.key);
            }
        }
        if let Some(p) = &mut self.log.events {
            fix(p);
        }
        // spool_dir stays relative to the working directory, as the
        // embedded default `./spool` promises.
    }

    /// Checks the whole configuration, pushing every problem found.
    pub(super) fn validate(&mut self, errors: &mut Vec<String>, warnings: &mut Vec<String>) {
        if self.server.hostname.trim().is_empty() {
            errors.push("[server] hostname must not be empty".into());
        }
        let mut names = std::collections::HashSet::new();
        let mut binds = std::collections::HashSet::new();
        for l in &self.listeners {
            let at = format!("[[listener]] {:?}", l.name);
            if l.name.is_empty() {
                errors.push("[[listener]]: name must not be empty".into());
            }
            if !names.insert(l.name.clone()) {
                errors.push(format!("{at}: duplicate listener name"));
            }
            if l.bind.port() != 0 && !binds.insert(l.bind) {
                errors.push(format!("{at}: bind {} is used twice", l.bind));
            }
            let mode = l.tls_mode(self.tls.is_some());
            if mode != ListenerTls::None && self.tls.is_none() {
                errors.push(format!("{at}: tls = {mode:?} needs a [tls] cert and key"));
            }
            if l.require_auth && mode == ListenerTls::None {
                errors.push(format!(
                    "{at}: require_auth needs TLS (AUTH is only offered over TLS)"
                ));
            }
            if l.require_auth && self.smtp_users.is_empty() {
                errors.push(format!(
                    "{at}: require_auth but no [[smtp_user]] is configured"
                ));
            }
            if l.max_recipients < 100 {
                errors.push(format!(
                    "{at}: max_recipients = {} is below the RFC 5321 minimum of 100",
                    l.max_recipients
                ));
            }
            if l.max_message_size < 65536 {
                errors.push(format!(
                    "{at}: max_message_size = {} is below the RFC 5321 minimum of 64 KiB",
                    l.max_message_size
                ));
            }
            if l.max_connections == 0 || l.max_connections_per_ip == 0 {
                errors.push(format!(
                    "{at}: max_connections and max_connections_per_ip must be at least 1"
                ));
            }
            if l.command_timeout.is_zero() || l.data_timeout.is_zero() {
                errors.push(format!("{at}: timeouts must be above zero"));
            }
        }
        if let Some(t) = &self.tls {
            for (what, p) in [("cert", &t.cert), ("key", &t.key)] {
                if let Err(e) = std::fs::metadata(p) {
                    errors.push(format!("[tls] {what} {}: {e}", p.display()));
                }
            }
        }
        let mut users = std::collections::HashSet::new();
        for u in &self.smtp_users {
            if !users.insert(u.name.clone()) {
                errors.push(format!("[[smtp_user]] {:?}: duplicate user", u.name));
            }
            if !u.password_hash.starts_with("$argon2") {
                errors.push(format!(
                    "[[smtp_user]] {:?}: password_hash must be an argon2 PHC string ($argon2id$…)",
                    u.name
                ));
            }
        }
        for d in &mut self.relay.local_domains {
            match exact_domain(d) {
                Ok(n) => *d = n,
                Err(e) => errors.push(format!("[relay] local_domains: {e}")),
            }
        }
        for u in &self.smtp_users {
            for d in u.allowed_from_domains.iter().flatten() {
                if let Err(e) = exact_domain(d) {
                    errors.push(format!(
                        "[[smtp_user]] {:?}: allowed_from_domains: {e}",
                        u.name
                    ));
                }
            }
        }
        for d in &self.domains {
            let at = format!("[[domain]] {:?}", d.name);
            if let Err(e) = exact_domain(&d.name) {
                errors.push(format!("{at}: name: {e}"));
            }
            if let Some(b) = &d.bounce_domain
                && let Err(e) = exact_domain(b)
            {
                errors.push(format!("{at}: bounce_domain: {e}"));
            }
        }
        if let Some(b) = &self.auth.default_bounce_domain
            && let Err(e) = exact_domain(b)
        {
            errors.push(format!("[auth] default_bounce_domain: {e}"));
        }
        if !(1..=4096).contains(&self.spool.shards) {
            errors.push(format!(
                "[spool] shards = {} must be from 1 to 4096",
                self.spool.shards
            ));
        }
        if self.queue.retry_base.is_zero() {
            errors.push("[queue] retry_base must be above zero".into());
        }
        if self.queue.retry_max < self.queue.retry_base {
            errors.push("[queue] retry_max must not be below retry_base".into());
        }
        for (i, o) in self.queue.lane.iter().enumerate() {
            if o.lanes.is_empty() {
                errors.push(format!("[[queue.lane]] #{}: lanes is empty", i + 1));
            }
        }
        self.validate_outbound(errors, warnings);
        if let Some(api) = &self.api {
            let mut names = std::collections::HashSet::new();
            for k in &api.key {
                let at = format!("[[api.key]] {:?}", k.name);
                for d in k.allowed_from_domains.iter().flatten() {
                    if let Err(e) = exact_domain(d) {
                        errors.push(format!("{at}: allowed_from_domains: {e}"));
                    }
                }
                if !names.insert(k.name.clone()) {
                    errors.push(format!("{at}: duplicate key name"));
                }
                if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    errors.push(format!(
                        "{at}: sha256 must be the 64 hex digits of the token's SHA-256 (laneway api-key new prints it)"
                    ));
                }
                if k.scopes.is_empty() {
                    errors.push(format!(
                        "{at}: scopes is empty (use \"send\" and/or \"admin\")"
                    ));
                }
            }
            if api.max_recipients == 0 || api.max_message_size == 0 {
                errors.push("[api] max_recipients and max_message_size must be above zero".into());
            }
        }
    }

    fn validate_outbound(&mut self, errors: &mut Vec<String>, _warnings: &mut Vec<String>) {
        let o = &self.outbound;
        if o.dane && !self.dns.dnssec {
            errors.push(
                "[outbound] dane = true needs [dns] dnssec = true (and a local validating resolver in [dns] nameservers)"
                    .into(),
            );
        }
        if self.dns.dnssec && self.dns.nameservers.is_empty() {
            errors.push(
                "[dns] dnssec = true needs [dns] nameservers: the local validating resolver whose AD bit Laneway trusts"
                    .into(),
            );
        }
        if o.max_connections == 0 || o.connections_per_destination == 0 {
            errors.push(
                "[outbound] max_connections and connections_per_destination must be at least 1"
                    .into(),
            );
        }
        if o.messages_per_connection == 0 || o.max_recipients_per_transaction == 0 {
            errors.push(
                "[outbound] messages_per_connection and max_recipients_per_transaction must be at least 1"
                    .into(),
            );
        }
        let mut covered = LaneSet::default();
        for p in &o.pool {
            if covered.overlaps(p.lanes) {
                errors.push(format!(
                    "[[outbound.pool]] {:?}: lanes {} overlap another pool",
                    p.name, p.lanes
                ));
            }
            covered = LaneSet::from_bits(covered.bits() | p.lanes.bits());
        }
        let mut seen = std::collections::HashSet::new();
        for d in &mut self.destinations {
            match DomainPattern::parse(&d.domain) {
                Ok(p) => d.domain = p.to_string(),
                Err(e) => errors.push(format!("[[destination]] domain: {e}")),
            }
            if !seen.insert(d.domain.clone()) {
                errors.push(format!("[[destination]] {:?}: listed twice", d.domain));
            }
            let max = d.max_connections.unwrap_or(o.connections_per_destination);
            if d.reserved_connections >= max && d.reserved_connections > 0 {
                errors.push(format!(
                    "[[destination]] {:?}: reserved_connections ({}) must be below its connection limit ({max})",
                    d.domain, d.reserved_connections
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for r in &mut self.routes {
            match DomainPattern::parse(&r.domain) {
                Ok(p) => r.domain = p.to_string(),
                Err(e) => errors.push(format!("[[route]] domain: {e}")),
            }
            if !seen.insert(r.domain.clone()) {
                errors.push(format!("[[route]] {:?}: listed twice", r.domain));
            }
            if r.via.trim().is_empty() {
                errors.push(format!("[[route]] {:?}: via must not be empty", r.domain));
            }
            if r.auth_user.is_some() != r.auth_password_file.is_some() {
                errors.push(format!(
                    "[[route]] {:?}: auth_user and auth_password_file go together",
                    r.domain
                ));
            }
        }
    }
}
