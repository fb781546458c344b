//! `[server]`, `[[listener]]`, `[tls]`, `[relay]` and `[[smtp_user]]`: the
//! daemon and its SMTP front door. Each field's doc gives its unit and
//! default; `etc/laneway.toml` documents the same for operators.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::units::{self};

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
pub(super) fn default_max_message_size() -> u64 {
    25 << 20
}
pub(super) fn default_max_recipients() -> usize {
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
