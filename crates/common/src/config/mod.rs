//! The configuration schema (one TOML file, DESIGN §5) and its loader.
//!
//! Every table is strict (`deny_unknown_fields`), every absent key takes
//! the default documented on its field and in `etc/laneway.toml`, and the
//! loader reports every problem it can find at once rather than stopping at
//! the first: each table is read on its own, then the whole is validated.

mod automation;
mod cluster;
mod events;
mod inbound;
mod outbound;
mod queue;
mod sender;
mod services;
mod shaping;
pub mod units;
mod validate;

use std::path::Path;

pub use automation::*;
pub use cluster::*;
pub use events::*;
pub use inbound::*;
pub use outbound::*;
pub use queue::*;
pub use sender::*;
pub use services::*;
pub use shaping::*;

use serde::de::DeserializeOwned;

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
    /// `[cluster]`: absent means one node on its own.
    pub cluster: Option<Cluster>,
    /// `[events]`: the kept history.
    pub events: EventsConfig,
    /// `[[webhook]]`: endpoints events are sent to.
    pub webhooks: Vec<Webhook>,
    /// `[shaping]`: which shaping files.
    pub shaping: ShapingConfig,
    /// The rules of those files, read when the configuration is loaded.
    pub shaping_rules: ShapingRules,
}

/// Every problem found in a configuration, one line each.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A loaded configuration plus the warnings that did not stop it loading.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Things worth telling the operator (e.g. SPF alignment); never fatal.
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![format!("cannot read {}: {e}", path.display())]))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, base)
    }

    /// Parses and validates configuration text. Relative file paths in it
    /// are resolved against `base` (the directory of the file).
    pub fn from_toml(text: &str, base: &Path) -> Result<Loaded, ConfigErrors> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigErrors(vec![format!("TOML syntax: {e}")]))?;
        let mut errors = Vec::new();
        let mut cfg = Config::default();
        for (key, value) in table {
            match key.as_str() {
                "server" => cfg.server = section(&mut errors, "[server]", value),
                "listener" => cfg.listeners = array(&mut errors, "listener", value),
                "tls" => cfg.tls = Some(section(&mut errors, "[tls]", value)),
                "relay" => cfg.relay = section(&mut errors, "[relay]", value),
                "smtp_user" => cfg.smtp_users = array(&mut errors, "smtp_user", value),
                "queue" => cfg.queue = section(&mut errors, "[queue]", value),
                "spool" => cfg.spool = section(&mut errors, "[spool]", value),
                "outbound" => cfg.outbound = section(&mut errors, "[outbound]", value),
                "destination" => cfg.destinations = array(&mut errors, "destination", value),
                "route" => cfg.routes = array(&mut errors, "route", value),
                "dns" => cfg.dns = section(&mut errors, "[dns]", value),
                "log" => cfg.log = section(&mut errors, "[log]", value),
                "api" => cfg.api = Some(section(&mut errors, "[api]", value)),
                "metrics" => cfg.metrics = Some(section(&mut errors, "[metrics]", value)),
                "auth" => cfg.auth = section(&mut errors, "[auth]", value),
                "domain" => cfg.domains = array(&mut errors, "domain", value),
                "cluster" => cfg.cluster = Some(section(&mut errors, "[cluster]", value)),
                "events" => cfg.events = section(&mut errors, "[events]", value),
                "webhook" => cfg.webhooks = array(&mut errors, "webhook", value),
                "shaping" => cfg.shaping = section(&mut errors, "[shaping]", value),
                other => errors.push(format!(
                    "unknown table or key `{other}` (known: server, listener, tls, relay, smtp_user, queue, spool, outbound, destination, route, dns, log, api, metrics, auth, domain, cluster, events, webhook, shaping)"
                )),
            }
        }
        cfg.resolve_paths(base);
        let mut warnings = Vec::new();
        cfg.validate(&mut errors, &mut warnings);
        if errors.is_empty() {
            Ok(Loaded {
                config: cfg,
                warnings,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

fn section<T: DeserializeOwned + Default>(
    errors: &mut Vec<String>,
    name: &str,
    value: toml::Value,
) -> T {
    match value.try_into::<T>() {
        Ok(v) => v,
        Err(e) => {
            errors.push(format!("{name}: {}", one_line(&e.to_string())));
            T::default()
        }
    }
}

fn array<T: DeserializeOwned>(errors: &mut Vec<String>, name: &str, value: toml::Value) -> Vec<T> {
    let toml::Value::Array(items) = value else {
        errors.push(format!(
            "`{name}` must be an array of tables, written [[{name}]]"
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item.try_into::<T>() {
            Ok(v) => out.push(v),
            Err(e) => errors.push(format!(
                "[[{name}]] #{}: {}",
                i + 1,
                one_line(&e.to_string())
            )),
        }
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
