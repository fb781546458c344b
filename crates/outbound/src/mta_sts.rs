//! MTA-STS (RFC 8461): a recipient domain publishes `_mta-sts.<domain>`
//! TXT `v=STSv1; id=…` and a policy at
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt`, fetched with a
//! verified WebPKI certificate. In `enforce` mode only MX hosts matching
//! the policy's `mx` patterns are used, and only over TLS with a verified
//! certificate; in `testing` mode delivery goes on as usual and failures
//! are only logged. Policies are cached for their `max_age` and fetched
//! again when the TXT `id` changes; a cached policy outlives a missing TXT
//! record or a failed fetch (§5.1), so an attacker who blocks them cannot
//! switch a known policy off.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::ClientConfig;

/// RFC 8461 §3.2: `max_age` is at most a year.
const MAX_AGE_LIMIT: u64 = 31_557_600;
/// A policy body larger than this is refused (real ones are a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;
/// After a failed fetch, no new attempt for the domain this long: a policy
/// host that does not answer must not slow every resolution down.
pub const RETRY_FETCH: Duration = Duration::from_secs(300);
/// The longest a policy fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The policy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only matching MX hosts, only over verified TLS.
    Enforce,
    /// Deliver as usual; failures are logged.
    Testing,
    /// No policy.
    None,
}

/// A fetched policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The TXT record's `id` it was fetched for.
    pub id: String,
    /// Its mode.
    pub mode: Mode,
    /// `mx` patterns: host names, or `*.` and a name for one more label.
    pub mx: Vec<String>,
    /// How long it may be cached.
    pub max_age: Duration,
}

impl Policy {
    /// Parses the policy text (RFC 8461 §3.2): `key: value` lines, CRLF or
    /// LF; `version: STSv1`, `mode`, `max_age` and (unless mode is none)
    /// at least one `mx` are required; unknown keys are ignored.
    pub fn parse(id: &str, text: &str) -> Result<Policy, String> {
        let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| format!("not a key: value line: {line:?}"))?;
            let v = v.trim();
            match k.trim() {
                "version" => version = Some(v.to_string()),
                "mode" => {
                    mode = Some(match v {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("unknown mode {other:?}")),
                    })
                }
                "max_age" => {
                    let n: u64 = v
                        .parse()
                        .map_err(|_| format!("max_age {v:?} is not a number"))?;
                    max_age = Some(n.min(MAX_AGE_LIMIT));
                }
                "mx" => mx.push(v.trim_end_matches('.').to_ascii_lowercase()),
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("version is not STSv1".into());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mx.is_empty() && mode != Mode::None {
            return Err("no mx patterns".into());
        }
        Ok(Policy {
            id: id.to_string(),
            mode,
            mx,
            max_age: Duration::from_secs(max_age),
        })
    }

    /// Whether an MX host name matches one of the patterns (RFC 8461
    /// §4.1: a `*.` pattern stands for exactly one leftmost label).
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => *p == host,
        })
    }
}

/// The `id` of an `_mta-sts` TXT record (`v=STSv1; id=…;`), if it is one.
pub fn txt_id(record: &str) -> Option<String> {
    let mut fields = record.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next()? != "v=STSv1" {
        return None;
    }
    fields
        .filter_map(|f| f.split_once('='))
        .find(|(k, _)| k.trim() == "id")
        .map(|(_, v)| v.trim().to_string())
        .filter(|id| {
            !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric())
        })
}

/// What the DNS said about `_mta-sts.<domain>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txt {
    /// A record with this id.
    Id(String),
    /// No (valid) record: no policy, unless one is cached.
    Absent,
    /// The lookup failed: keep what is cached.
    Failed,
}

struct Cached {
    policy: Arc<Policy>,
    expires: Instant,
}

/// The policy cache. Lives as long as the daemon (policies are fetched
/// again after a restart).
#[derive(Default)]
pub struct Cache {
    entries: Mutex<HashMap<String, Cached>>,
    /// Domains whose last fetch failed, and when.
    failed: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mta_sts::Cache")
    }
}

impl Cache {
    /// The policy in force for `domain`, given its TXT answer; fetches a
    /// new one with `fetch` when the id changed or nothing is cached.
    pub async fn policy<F, Fut>(&self, domain: &str, txt: Txt, fetch: F) -> Option<Arc<Policy>>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<Policy, String>>,
    {
        let now = Instant::now();
        let cached = {
            let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            m.retain(|_, c| c.expires > now);
            m.get(domain).map(|c| c.policy.clone())
        };
        let id = match txt {
            Txt::Id(id) => id,
            Txt::Absent | Txt::Failed => return cached,
        };
        if let Some(c) = &cached
            && c.id == id
        {
            return cached;
        }
        {
            let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            failed.retain(|_, at| now.duration_since(*at) < RETRY_FETCH);
            if failed.contains_key(domain) {
                return cached;
            }
        }
        match fetch(id).await {
            Ok(p) => {
                let p = Arc::new(p);
                tracing::info!(domain, id = %p.id, mode = ?p.mode, mx = ?p.mx, max_age = p.max_age.as_secs(), "MTA-STS policy fetched");
                self.entries
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        domain.to_string(),
                        Cached {
                            policy: p.clone(),
                            expires: now + p.max_age,
                        },
                    );
                Some(p)
            }
            Err(e) => {
                tracing::warn!(domain, error = %e, cached = cached.is_some(), "MTA-STS policy fetch failed");
                self.failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(domain.to_string(), now);
                cached
            }
        }
    }
}

/// Fetches `https://mta-sts.<domain>/.well-known/mta-sts.txt` from
/// `addrs` (the policy host's addresses, port included) with a verified
/// certificate. Only a `200` counts; redirects are not followed (§3.3).
pub async fn fetch(
    domain: &str,
    id: &str,
    addrs: &[SocketAddr],
    tls: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<Policy, String> {
    use laneway_common::http::{Endpoint, Request, request};
    let host = format!("mta-sts.{domain}");
    let mut last = format!("{host} has no address");
    for addr in addrs {
        let ep = Endpoint::Tls {
            addr: SocketAddr::new(addr.ip(), addr.port()),
            name: host.clone(),
            config: tls.clone(),
        };
        // RFC 8461 §3.3: no redirects followed, 200 only
        let r = match request(
            &ep,
            &host,
            &Request::get("/.well-known/mta-sts.txt"),
            MAX_BODY,
            timeout,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                last = format!("{host} ({addr}): {e}");
                continue;
            }
        };
        if r.status != 200 {
            return Err(format!("{host}: HTTP status {}, not 200", r.status));
        }
        let body = String::from_utf8_lossy(&r.body);
        return Policy::parse(id, &body).map_err(|e| format!("{host}: invalid policy: {e}"));
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.mail.example.net\r\nmax_age: 86400\r\n";

    #[test]
    fn parses_and_matches() {
        let p = Policy::parse("a1", GOOD).unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, Duration::from_secs(86400));
        assert!(p.matches("mx1.example.com"));
        assert!(p.matches("MX1.Example.Com."));
        assert!(p.matches("a.mail.example.net"));
        assert!(!p.matches("mail.example.net"), "* needs one label");
        assert!(!p.matches("a.b.mail.example.net"), "* is one label only");
        assert!(!p.matches("mx2.example.com"));
        assert!(!p.matches("evil-mx1.example.com"));
        // LF only, unknown keys, max_age capped at a year
        let p = Policy::parse(
            "b",
            "version: STSv1\nmode: testing\nmx: m.test\nmax_age: 99999999\nfuture: x\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Testing);
        assert_eq!(p.max_age, Duration::from_secs(MAX_AGE_LIMIT));
        assert!(Policy::parse("c", "version: STSv1\nmode: none\nmax_age: 1\n").is_ok());
    }

    #[test]
    fn refuses_bad_policies() {
        for bad in [
            "mode: enforce\nmx: m.test\nmax_age: 1\n",
            "version: STSv2\nmode: enforce\nmx: m.test\nmax_age: 1\n",
            "version: STSv1\nmode: strict\nmx: m.test\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: m.test\n",
            "version: STSv1\nmode: enforce\nmx: m.test\nmax_age: soon\n",
            "<html>not a policy</html>",
        ] {
            assert!(Policy::parse("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn txt_records() {
        assert_eq!(
            txt_id("v=STSv1; id=20260101T000000;"),
            Some("20260101T000000".into())
        );
        assert_eq!(txt_id("v=STSv1;id=abc"), Some("abc".into()));
        assert_eq!(txt_id("v=spf1 -all"), None);
        assert_eq!(txt_id("v=STSv1;"), None);
        assert_eq!(txt_id("v=STSv1; id=a-b"), None);
    }

    #[tokio::test]
    async fn the_cache_keeps_a_policy_the_dns_forgets_and_refetches_on_a_new_id() {
        let cache = Cache::default();
        let fetches = std::sync::atomic::AtomicUsize::new(0);
        let fetch = |id: String| {
            fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { Policy::parse(&id, GOOD) }
        };
        let p = cache
            .policy("d.test", Txt::Id("1".into()), fetch)
            .await
            .unwrap();
        assert_eq!(p.id, "1");
        assert_eq!(
            cache
                .policy("d.test", Txt::Id("1".into()), fetch)
                .await
                .unwrap()
                .id,
            "1"
        );
        assert_eq!(
            fetches.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "same id: cached"
        );
        assert_eq!(
            cache.policy("d.test", Txt::Absent, fetch).await.unwrap().id,
            "1"
        );
        assert_eq!(
            cache.policy("d.test", Txt::Failed, fetch).await.unwrap().id,
            "1"
        );
        assert_eq!(
            cache
                .policy("d.test", Txt::Id("2".into()), fetch)
                .await
                .unwrap()
                .id,
            "2"
        );
        assert_eq!(
            fetches.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "new id: fetched"
        );
        // a failed fetch keeps the cached policy; nothing cached, nothing in force
        let failing = |_id: String| async { Err::<Policy, String>("down".into()) };
        assert_eq!(
            cache
                .policy("d.test", Txt::Id("3".into()), failing)
                .await
                .unwrap()
                .id,
            "2"
        );
        assert!(
            cache
                .policy("e.test", Txt::Id("1".into()), failing)
                .await
                .is_none()
        );
        assert!(cache.policy("e.test", Txt::Absent, fetch).await.is_none());
        // and no new attempt right after a failure
        let before = fetches.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            cache
                .policy("e.test", Txt::Id("1".into()), fetch)
                .await
                .is_none()
        );
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), before);
    }
}
