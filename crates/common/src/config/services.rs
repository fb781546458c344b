//! `[log]`, `[api]` with `[[api.key]]`, and `[metrics]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::inbound::{default_max_message_size, default_max_recipients};
use super::units::{self, Rate};
use crate::priority::Priority;

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
