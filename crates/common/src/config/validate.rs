//! Checking a whole configuration: every problem reported at once, each
//! naming its key; relative paths resolved against the file's directory.

use std::path::{Path, PathBuf};

use super::*;
use crate::domain::DomainPattern;
use crate::priority::LaneSet;

/// A key that takes one domain (not a pattern): its normal form.
fn exact_domain(d: &str) -> Result<String, String> {
    match DomainPattern::parse(d)? {
        DomainPattern::Exact(n) => Ok(n),
        _ => Err(format!(
            "{d:?}: this key takes a domain name, not a pattern (patterns such as \"*\" and \".example.com\" are for [[destination]] and [[route]] domain)"
        )),
    }
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
        if let Some(p) = self.cluster.as_mut().and_then(|c| c.redis_ca.as_mut()) {
            fix(p);
        }
        for w in &mut self.webhooks {
            fix(&mut w.secret_file);
        }
        for f in &mut self.shaping.files {
            fix(f);
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
            if let Some(u) = &d.unsubscribe {
                if let Err(e) = crate::http::Url::parse(&u.base_url) {
                    errors.push(format!("{at}: unsubscribe.base_url: {e}"));
                }
                if u.lanes.is_empty() {
                    errors.push(format!("{at}: unsubscribe.lanes is empty"));
                }
                if self.auth.bounce_secret_file.is_none() {
                    errors.push(format!(
                        "{at}: unsubscribe needs [auth] bounce_secret_file (it signs the links)"
                    ));
                }
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
        self.shaping_rules = ShapingRules::load(&self.shaping, errors);
        // pool overrides name pools of [[outbound.pool]] (or the implicit
        // "default" pool of the lanes none names)
        let pools: Vec<&str> = self.outbound.pool.iter().map(|p| p.name.as_str()).collect();
        let entries = self
            .shaping_rules
            .providers
            .iter()
            .map(|(n, e)| (format!("[provider.{n}]"), e))
            .chain(
                self.shaping_rules
                    .domains
                    .iter()
                    .map(|(n, e)| (format!("[domain.{n}]"), e)),
            );
        for (key, e) in entries {
            for name in e.pool.keys() {
                if !pools.contains(&name.as_str()) && name != "default" {
                    errors.push(format!(
                        "shaping {key} pool.{name}: no [[outbound.pool]] is named {name:?} (known: {})",
                        if pools.is_empty() { "default".to_string() } else { format!("{}, default", pools.join(", ")) }
                    ));
                }
            }
        }
        for p in &self.outbound.pool {
            if let Some(w) = &p.warmup {
                w.check(&format!("[[outbound.pool]] {:?}", p.name), errors);
            }
        }
        let mut hooks = std::collections::HashSet::new();
        for w in &self.webhooks {
            let at = format!("[[webhook]] {}", w.name);
            if w.name.is_empty() || !hooks.insert(w.name.clone()) {
                errors.push(format!("{at}: every webhook needs a name of its own"));
            }
            if !(w.url.starts_with("http://") || w.url.starts_with("https://"))
                || w.url.split_once("://").is_some_and(|(_, r)| r.is_empty())
            {
                errors.push(format!(
                    "{at}: url = {:?}: an http:// or https:// URL",
                    w.url
                ));
            }
            if w.batch_size == 0 {
                errors.push(format!("{at}: batch_size must be at least 1"));
            }
            if w.events.as_ref().is_some_and(Vec::is_empty) {
                errors.push(format!(
                    "{at}: events = []: name at least one type, or leave it out for all"
                ));
            }
            if w.lanes.is_empty() {
                errors.push(format!("{at}: lanes names no lane"));
            }
            if w.retry_initial > w.retry_max {
                errors.push(format!("{at}: retry_initial is longer than retry_max"));
            }
            if w.timeout.is_zero() {
                errors.push(format!("{at}: timeout must be longer than 0s"));
            }
            if let Err(e) = w.secrets() {
                errors.push(e);
            }
        }
        if self.events.history.is_zero() {
            errors.push("[events] history must be longer than 0s".into());
        }
        if self.events.max_size < 1 << 20 {
            errors.push("[events] max_size must be at least \"1MiB\"".into());
        }
        if let Some(c) = &self.cluster {
            let scheme = c.redis.split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("redis" | "rediss")) {
                errors.push(format!(
                    "[cluster] redis = {:?}: a redis:// or rediss:// URL",
                    c.redis
                ));
            }
            if c.lease < std::time::Duration::from_secs(1) {
                errors.push("[cluster] lease must be at least \"1s\"".into());
            }
            if c.prefix.is_empty() || c.prefix.contains(char::is_whitespace) {
                errors.push("[cluster] prefix must be non-empty, without spaces".into());
            }
            if let Some(n) = &c.node_id
                && (n.is_empty()
                    || !n
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)))
            {
                errors.push(format!(
                    "[cluster] node_id = {n:?}: letters, digits, '-', '_' and '.' only"
                ));
            }
            if let Some(p) = &c.redis_ca
                && let Err(e) = std::fs::metadata(p)
            {
                errors.push(format!("[cluster] redis_ca {}: {e}", p.display()));
            }
        }
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
