//! `[shaping]` and the shaping files: limits per mailbox provider, matched
//! by the suffix of the MX host names (MX rollup: the thousands of Google
//! Workspace domains share one provider site and one set of limits), and
//! per recipient domain. The default pack (`etc/shaping/default.toml`) is
//! embedded; `files` are read after it, in order, and an entry of a later
//! file replaces the entry of the same name. A `[[destination]]` in the main
//! configuration wins over both for its domains.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::outbound::OutboundTls;
use super::units::{self, Rate};
use crate::priority::Priority;

/// The rule pack shipped with Laneway.
pub const DEFAULT_PACK: &str = include_str!("../../../../etc/shaping/default.toml");

/// `[shaping]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShapingConfig {
    /// Use the embedded default pack. Default true.
    pub defaults: bool,
    /// More shaping files, read after the default pack (relative paths
    /// against the configuration's directory). Reloaded on SIGHUP.
    pub files: Vec<PathBuf>,
}

impl Default for ShapingConfig {
    fn default() -> Self {
        ShapingConfig {
            defaults: true,
            files: Vec::new(),
        }
    }
}

/// One `[provider.<name>]` or `[domain.<d>]` of a shaping file: the keys of
/// `[[destination]]` plus `idle_timeout` (and, for a provider, `mx_suffix`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapingEntry {
    /// MX host name suffixes, e.g. `[".google.com"]` (providers only).
    #[serde(default)]
    pub mx_suffix: Vec<String>,
    /// Most connections to the site.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Messages per period, e.g. `"50/s"`.
    #[serde(default)]
    pub rate: Option<Rate>,
    /// Messages per connection before it is closed.
    #[serde(default)]
    pub messages_per_connection: Option<usize>,
    /// Connections only lanes ≥ `reserved_min_lane` may use.
    #[serde(default)]
    pub reserved_connections: Option<usize>,
    /// The lowest lane that may use reserved connections.
    #[serde(default)]
    pub reserved_min_lane: Option<Priority>,
    /// TLS policy towards the site.
    #[serde(default)]
    pub tls: Option<OutboundTls>,
    /// How long an idle connection waits for more work.
    #[serde(default, deserialize_with = "units::opt_duration")]
    pub idle_timeout: Option<Duration>,
    /// `[[provider.<name>.automation]]`: back-off on what the site answers.
    #[serde(default)]
    pub automation: Vec<super::AutomationRule>,
    /// `[provider.<name>.pool.<pool>]`: limits of one egress pool's
    /// traffic to the site, beside the site's own.
    #[serde(default)]
    pub pool: BTreeMap<String, PoolShaping>,
}

/// `[provider.<name>.pool.<pool>]`: what one egress pool may send to the
/// provider (PowerMTA's per-VMTA domain limits, KumoMTA's source × site).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolShaping {
    /// Most connections from the pool to the site.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Messages per period from the pool to the site.
    #[serde(default)]
    pub rate: Option<Rate>,
    /// A warm-up of the pool's addresses for this provider, in place of
    /// the pool's own `[[outbound.pool]] warmup`.
    #[serde(default)]
    pub warmup: Option<Warmup>,
}

/// An IP warm-up: from `start` (a date, UTC), day n of the schedule allows
/// `rates[n]` to each site; after the last day, no warm-up limit. Before
/// `start`, the first day's rate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    /// The first day, `"2026-12-01"`.
    pub start: String,
    /// The rate of each day, e.g. `["500/day", "1000/day", "2000/day"]`.
    pub rates: Vec<Rate>,
}

impl Warmup {
    /// Days since the Unix epoch of `start`, if it is a date.
    pub fn start_day(&self) -> Option<i64> {
        let mut it = self.start.trim().splitn(3, '-');
        let (y, m, d): (i64, i64, i64) = (
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
        );
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        // days from civil (H. Hinnant's algorithm)
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Some(era * 146_097 + doe - 719_468)
    }

    /// The rate in force at `now_ms`, or `None` once the warm-up is over.
    pub fn rate_at(&self, now_ms: u64) -> Option<Rate> {
        let start = self.start_day()?;
        let today = (now_ms / 86_400_000) as i64;
        let day = (today - start).max(0) as usize;
        self.rates.get(day).copied()
    }

    /// Pushes the problems of the warm-up, named by `key`.
    pub fn check(&self, key: &str, errors: &mut Vec<String>) {
        if self.start_day().is_none() {
            errors.push(format!(
                "{key}: warmup start {:?} is not a date like \"2026-12-01\"",
                self.start
            ));
        }
        if self.rates.is_empty() {
            errors.push(format!("{key}: warmup rates names no day"));
        }
    }
}

/// The merged rules of the default pack and the files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShapingRules {
    /// Providers, by name.
    pub providers: BTreeMap<String, ShapingEntry>,
    /// Recipient domains (lower-case), by name.
    pub domains: BTreeMap<String, ShapingEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    provider: BTreeMap<String, ShapingEntry>,
    #[serde(default)]
    domain: BTreeMap<String, ShapingEntry>,
}

impl ShapingRules {
    /// Reads the default pack (if `c.defaults`) and then each file; every
    /// problem is pushed, naming the file and the key.
    pub fn load(c: &ShapingConfig, errors: &mut Vec<String>) -> ShapingRules {
        let mut rules = ShapingRules::default();
        if c.defaults {
            rules.add("the default shaping pack", DEFAULT_PACK, errors);
        }
        for f in &c.files {
            let at = format!("[shaping] files: {}", f.display());
            match std::fs::read_to_string(f) {
                Ok(text) => rules.add(&at, &text, errors),
                Err(e) => errors.push(format!("{at}: {e}")),
            }
        }
        rules
    }

    /// Adds one file's entries (later names replace earlier ones).
    fn add(&mut self, at: &str, text: &str, errors: &mut Vec<String>) {
        let file: File = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let e = e.to_string();
                errors.push(format!(
                    "{at}: {}",
                    e.split_whitespace().collect::<Vec<_>>().join(" ")
                ));
                return;
            }
        };
        for (name, p) in file.provider {
            let key = format!("{at}: [provider.{name}]");
            if p.mx_suffix.is_empty() {
                errors.push(format!("{key}: mx_suffix names no MX host suffix"));
            }
            for s in &p.mx_suffix {
                let ok = s.starts_with('.')
                    && s.len() > 1
                    && crate::domain::DomainPattern::parse(s).is_ok();
                if !ok {
                    errors.push(format!(
                        "{key}: mx_suffix {s:?} must be a suffix starting with a dot, e.g. \".google.com\""
                    ));
                }
            }
            check(&key, &p, errors);
            self.providers.insert(name, p);
        }
        for (name, d) in file.domain {
            let key = format!("{at}: [domain.{name}]");
            if !d.mx_suffix.is_empty() {
                errors.push(format!("{key}: mx_suffix is for [provider.<name>]"));
            }
            if crate::domain::DomainPattern::parse(&name).is_err()
                || name.starts_with('.')
                || name == "*"
            {
                errors.push(format!("{key}: not a domain name"));
            }
            check(&key, &d, errors);
            self.domains
                .insert(name.trim_end_matches('.').to_ascii_lowercase(), d);
        }
    }

    /// The provider whose suffix one of `mx_hosts` ends with (the longest
    /// suffix wins), and its entry.
    pub fn provider<'a>(
        &'a self,
        mx_hosts: impl IntoIterator<Item = &'a str>,
    ) -> Option<(&'a str, &'a ShapingEntry)> {
        let hosts: Vec<String> = mx_hosts
            .into_iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        self.providers
            .iter()
            .flat_map(|(n, p)| p.mx_suffix.iter().map(move |s| (n, p, s)))
            .filter(|(_, _, s)| {
                let s = s.to_ascii_lowercase();
                hosts.iter().any(|h| h.ends_with(&s))
            })
            .max_by_key(|(_, _, s)| s.len())
            .map(|(n, p, _)| (n.as_str(), p))
    }
}

fn check(key: &str, e: &ShapingEntry, errors: &mut Vec<String>) {
    if e.max_connections == Some(0) {
        errors.push(format!("{key}: max_connections must be at least 1"));
    }
    if e.messages_per_connection == Some(0) {
        errors.push(format!("{key}: messages_per_connection must be at least 1"));
    }
    if let (Some(r), Some(m)) = (e.reserved_connections, e.max_connections)
        && r >= m
    {
        errors.push(format!(
            "{key}: reserved_connections ({r}) must be below max_connections ({m})"
        ));
    }
    if e.idle_timeout.is_some_and(|d| d.is_zero()) {
        errors.push(format!("{key}: idle_timeout must be above zero"));
    }
    for (i, rule) in e.automation.iter().enumerate() {
        rule.check(&format!("{key} automation #{}", i + 1), errors);
    }
    for (name, p) in &e.pool {
        let key = format!("{key} pool.{name}");
        if p.max_connections == Some(0) {
            errors.push(format!("{key}: max_connections must be at least 1"));
        }
        if let Some(w) = &p.warmup {
            w.check(&key, errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pack_loads_and_covers_the_big_providers() {
        let mut errors = Vec::new();
        let r = ShapingRules::load(&ShapingConfig::default(), &mut errors);
        assert!(errors.is_empty(), "{errors:#?}");
        for (mx, provider) in [
            ("gmail-smtp-in.l.google.com", "google"),
            ("aspmx.l.google.com", "google"),
            ("mta7.am0.yahoodns.net", "yahoo"),
            ("hotmail-com.olc.protection.outlook.com", "outlook"),
            ("example-com.mail.protection.outlook.com", "office365"),
            ("mx01.mail.icloud.com", "apple"),
            ("mx00.gmx.net", "gmx"),
            ("mx-ha03.web.de", "gmx"),
            ("mx2c1.comcast.net", "comcast"),
        ] {
            assert_eq!(r.provider([mx]).map(|p| p.0), Some(provider), "{mx}");
        }
        assert!(r.provider(["mx.example.net"]).is_none());
    }

    /// The default pack's automation rules match the providers' own texts
    /// (as `Reply::joined` gives them), and only the IP rules hold lane 9.
    #[test]
    fn the_default_rules_match_the_providers_texts() {
        let mut errors = Vec::new();
        let r = ShapingRules::load(&ShapingConfig::default(), &mut errors);
        assert!(errors.is_empty(), "{errors:#?}");
        let fired = |provider: &str, reply: &str| -> Vec<usize> {
            r.providers[provider]
                .automation
                .iter()
                .enumerate()
                .filter(|(_, a)| {
                    a.regex
                        .iter()
                        .any(|x| regex::Regex::new(x).unwrap().is_match(reply))
                })
                .map(|(i, _)| i + 1)
                .collect()
        };
        for (provider, reply, want) in [
            (
                "google",
                "421 4.7.28 [192.0.2.1] Our system has detected an unusual rate of\n421 4.7.28 unsolicited mail originating from your IP address.",
                vec![1],
            ),
            (
                "google",
                "421 4.7.0 [192.0.2.1] Our system has detected that this message is\n421 4.7.0 suspicious due to the very low reputation of the sending IP address.",
                vec![2],
            ),
            (
                "google",
                "550 5.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail",
                vec![],
            ),
            (
                "yahoo",
                "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1",
                vec![1],
            ),
            (
                "yahoo",
                "554 5.7.9 [TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed.",
                vec![2],
            ),
            (
                "outlook",
                "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation. (S775)",
                vec![1],
            ),
            (
                "outlook",
                "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).",
                vec![2],
            ),
            (
                "office365",
                "451 4.7.500 Server busy. Please try again later from [192.0.2.1].",
                vec![1],
            ),
            (
                "office365",
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found",
                vec![],
            ),
        ] {
            assert_eq!(fired(provider, reply), want, "{provider}: {reply}");
        }
        for (name, p) in &r.providers {
            for a in &p.automation {
                let all = a.lanes.is_some_and(|l| l.contains(Priority::MAX));
                let ip = a
                    .regex
                    .iter()
                    .any(|x| x.contains("IP") || x.contains("TSS09") || x.contains("S3150"));
                assert_eq!(all, ip, "{name}: only IP rules hold every lane: {a:?}");
            }
        }
    }

    #[test]
    fn later_files_replace_entries_and_problems_name_their_key() {
        let dir = std::env::temp_dir().join(format!("lw-shaping-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("mine.toml");
        std::fs::write(
            &f,
            "[provider.google]\nmx_suffix = [\".google.com\"]\nmax_connections = 2\n[domain.\"Example.NET\"]\nrate = \"5/s\"\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        let c = ShapingConfig {
            defaults: true,
            files: vec![f.clone()],
        };
        let r = ShapingRules::load(&c, &mut errors);
        assert!(errors.is_empty(), "{errors:#?}");
        let g = &r.providers["google"];
        assert_eq!(g.max_connections, Some(2));
        assert_eq!(g.messages_per_connection, None, "replaced, not merged");
        assert!(r.domains.contains_key("example.net"));
        std::fs::write(
            &f,
            "[provider.x]\nmx_suffix = [\"google.com\"]\nmax_connections = 0\n[domain.y]\nmx_suffix = [\".y\"]\nbogus = 1\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        ShapingRules::load(&c, &mut errors);
        assert!(
            errors.iter().any(|e| e.contains("unknown field `bogus`")),
            "{errors:#?}"
        );
        let mut errors = Vec::new();
        std::fs::write(
            &f,
            "[provider.x]\nmx_suffix = [\"google.com\"]\nmax_connections = 0\n",
        )
        .unwrap();
        ShapingRules::load(&c, &mut errors);
        for want in [
            "[provider.x]: mx_suffix \"google.com\"",
            "[provider.x]: max_connections",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "{want}: {errors:#?}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
