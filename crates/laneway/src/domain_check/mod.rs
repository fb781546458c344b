//! `laneway domain check <domain>` (`GET /api/v1/domains/{domain}/check`):
//! is a sender domain's DNS right for this relay? Looked up with the
//! configured resolver (`[dns]`), a fresh one per check so that a record
//! just fixed is seen. Each check is `ok`, `wrong` (with the record that
//! would be right) or `missing`:
//!
//! - `bounce_mx`: the bounce domain's MX (or CNAME) points at this relay's
//!   `[server] hostname`, so returned mail comes back here;
//! - `spf`: the SPF record of the envelope sender domain (the bounce
//!   domain, else the domain) authorises every egress address of every
//!   pool (a pool without `source` addresses sends from the system's
//!   address: the hostname's A/AAAA records stand for it);
//! - `dkim:<selector>`: each selector's TXT record carries the configured
//!   key's public half;
//! - `dmarc`: a DMARC record exists (at the domain, else at its
//!   organizational domain, taken as its last two labels) and, with this
//!   set-up, SPF and DKIM would both align (`aspf`/`adkim`);
//! - `ptr:<address>`: each egress address has a PTR whose name resolves
//!   back to it (FCrDNS) and is the pool's HELO name;
//! - `mta_sts`, `tls_rpt`: where published, the records parse (optional).

mod dns;
mod spf;

use std::net::IpAddr;

use arc_swap::ArcSwap;
use hickory_resolver::proto::rr::RecordType;
use laneway_common::Config;
use laneway_common::admin::{DomainCheck, DomainCheckItem};
use laneway_common::config::SenderDomain;

use dns::Dns;

/// Checks against the configuration in force (swapped on reload).
pub struct Checker {
    config: ArcSwap<Config>,
}

/// One egress address and the HELO name its pool uses.
struct Egress {
    ip: IpAddr,
    helo: String,
}

fn item(check: &str, name: &str) -> DomainCheckItem {
    DomainCheckItem {
        check: check.to_string(),
        status: "ok".into(),
        name: name.to_string(),
        found: Vec::new(),
        expected: None,
        detail: String::new(),
        optional: false,
    }
}

fn set(mut i: DomainCheckItem, status: &str, detail: String) -> DomainCheckItem {
    i.status = status.to_string();
    i.detail = detail;
    i
}

/// Tags of a `k=v; k=v` record, keys lower-cased.
fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The organizational domain, taken as the last two labels.
fn org(domain: &str) -> String {
    let labels: Vec<&str> = domain.trim_end_matches('.').split('.').collect();
    labels[labels.len().saturating_sub(2)..].join(".")
}

impl Checker {
    /// A checker of `config`.
    pub fn new(config: Config) -> Checker {
        Checker {
            config: ArcSwap::from_pointee(config),
        }
    }

    /// The configuration after a reload.
    pub fn set(&self, config: Config) {
        self.config.store(std::sync::Arc::new(config));
    }

    /// Checks `domain`; `None` if it is not a `[[domain]]`.
    pub async fn check(&self, domain: &str) -> Result<Option<DomainCheck>, String> {
        let config = self.config.load_full();
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        let Some(sd) = config
            .domains
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(&d))
        else {
            return Ok(None);
        };
        let dns = Dns(laneway_outbound::lookup::resolver(&config.dns)?);
        let hostname = config
            .server
            .hostname
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let egress = egress(&dns, &config, &hostname).await;
        let mut checks = Vec::new();
        checks.push(bounce_mx(&dns, sd, &hostname).await);
        checks.push(spf_check(&dns, sd, &d, &egress, &hostname).await);
        checks.extend(dkim(&dns, sd, &d).await);
        checks.push(dmarc(&dns, sd, &d).await);
        match &egress {
            Ok(list) => {
                for e in list {
                    checks.push(ptr(&dns, e).await);
                }
            }
            Err(e) => checks.push(set(
                item("ptr", &hostname),
                "missing",
                format!("no egress address known: {e}"),
            )),
        }
        checks.push(mta_sts(&dns, &d).await);
        checks.push(tls_rpt(&dns, &d).await);
        let n = |s: &str| checks.iter().filter(|c| c.status == s).count();
        Ok(Some(DomainCheck {
            domain: d.clone(),
            ok: n("ok"),
            wrong: n("wrong"),
            missing: n("missing"),
            checks,
        }))
    }
}

/// Every pool's source addresses, or the hostname's for a pool without.
async fn egress(dns: &Dns, config: &Config, hostname: &str) -> Result<Vec<Egress>, String> {
    let settings = laneway_outbound::Settings::from_config(config);
    let mut out: Vec<Egress> = Vec::new();
    for p in &settings.pools {
        let ips = if p.sources.is_empty() {
            dns.addresses(hostname)
                .await
                .map_err(|e| format!("pool {} has no source addresses and {e}", p.name))?
        } else {
            p.sources.clone()
        };
        for ip in ips {
            if !out.iter().any(|e| e.ip == ip) {
                out.push(Egress {
                    ip,
                    helo: p.helo.trim_end_matches('.').to_ascii_lowercase(),
                });
            }
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{hostname} has no A or AAAA record, and no pool names a source address"
        ));
    }
    Ok(out)
}

async fn bounce_mx(dns: &Dns, sd: &SenderDomain, hostname: &str) -> DomainCheckItem {
    let Some(b) = sd.bounce_domain.as_deref() else {
        return set(
            item("bounce_mx", &sd.name),
            "missing",
            format!(
                "[[domain]] {} names no bounce_domain: returned mail goes to the senders' own addresses and is not read here",
                sd.name
            ),
        );
    };
    let mut i = item("bounce_mx", b);
    i.expected = Some(format!("{b}. IN MX 10 {hostname}."));
    let mx = match dns.names(b, RecordType::MX).await {
        Ok(v) => v,
        Err(e) => return set(i, "missing", e),
    };
    if !mx.is_empty() {
        i.found = mx.iter().map(|m| format!("MX {m}")).collect();
        return if mx.iter().any(|m| m == hostname) {
            i.expected = None;
            set(i, "ok", format!("returned mail to {b} reaches {hostname}"))
        } else {
            set(
                i,
                "wrong",
                format!("the MX hosts of {b} are not {hostname}"),
            )
        };
    }
    match dns.names(b, RecordType::CNAME).await {
        Ok(c) if c.iter().any(|c| c == hostname) => {
            i.found = c.iter().map(|c| format!("CNAME {c}")).collect();
            i.expected = None;
            set(i, "ok", format!("{b} is an alias of {hostname}"))
        }
        Ok(c) if !c.is_empty() => {
            i.found = c.iter().map(|c| format!("CNAME {c}")).collect();
            set(i, "wrong", format!("{b} is an alias of another host"))
        }
        Ok(_) => set(i, "missing", format!("{b} has no MX or CNAME record")),
        Err(e) => set(i, "missing", e),
    }
}

async fn spf_check(
    dns: &Dns,
    sd: &SenderDomain,
    d: &str,
    egress: &Result<Vec<Egress>, String>,
    hostname: &str,
) -> DomainCheckItem {
    let env = sd.bounce_domain.as_deref().unwrap_or(d);
    let mut i = item("spf", env);
    let ips: Vec<IpAddr> = egress.iter().flatten().map(|e| e.ip).collect();
    let mechs: Vec<String> = ips
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(_) => format!("ip4:{ip}"),
            IpAddr::V6(_) => format!("ip6:{ip}"),
        })
        .collect();
    let right = if mechs.is_empty() {
        format!("v=spf1 a:{hostname} -all")
    } else {
        format!("v=spf1 {} -all", mechs.join(" "))
    };
    i.expected = Some(format!("{env}. IN TXT \"{right}\""));
    let record = match spf::record(dns, env).await {
        Ok(Some(r)) => r,
        Ok(None) => return set(i, "missing", format!("{env} has no SPF record")),
        Err(e) => return set(i, "wrong", e),
    };
    i.found = vec![record.clone()];
    let mut failing = Vec::new();
    for ip in &ips {
        match spf::check(dns, env, &record, *ip).await {
            spf::Verdict::Pass => {}
            spf::Verdict::NotPass(why) | spf::Verdict::Error(why) => failing.push(why),
        }
    }
    if let Err(e) = egress {
        return set(i, "wrong", format!("cannot tell: {e}"));
    }
    if failing.is_empty() {
        i.expected = None;
        let list: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
        set(i, "ok", format!("authorises {}", list.join(", ")))
    } else {
        set(
            i,
            "wrong",
            format!("does not authorise: {}", failing.join("; ")),
        )
    }
}

async fn dkim(dns: &Dns, sd: &SenderDomain, d: &str) -> Vec<DomainCheckItem> {
    if sd.dkim.is_empty() {
        return vec![set(
            item("dkim", d),
            "missing",
            format!("[[domain]] {d} has no [[domain.dkim]] key: mail is not signed"),
        )];
    }
    let mut out = Vec::new();
    for k in &sd.dkim {
        let name = format!("{}._domainkey.{d}", k.selector);
        let mut i = item(&format!("dkim:{}", k.selector), &name);
        let want = match laneway_auth::dkim::public_record(&k.key, k.algorithm) {
            Ok(w) => w,
            Err(e) => {
                out.push(set(i, "wrong", format!("the configured key: {e}")));
                continue;
            }
        };
        let want_p = tag(&tags(&want), "p").unwrap_or("").to_string();
        i.expected = Some(format!("{name}. IN TXT \"{want}\""));
        let found = match dns.txt(&name).await {
            Ok(f) => f,
            Err(e) => {
                out.push(set(i, "missing", e));
                continue;
            }
        };
        i.found = found.clone();
        let matching = found.iter().any(|r| {
            let p: String = tag(&tags(r), "p")
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            p == want_p
        });
        out.push(if found.is_empty() {
            set(i, "missing", format!("{name} has no TXT record"))
        } else if matching {
            i.expected = None;
            set(i, "ok", "publishes the configured key".into())
        } else {
            set(
                i,
                "wrong",
                "publishes another key (or a revoked one: empty p=)".into(),
            )
        });
    }
    out
}

async fn dmarc(dns: &Dns, sd: &SenderDomain, d: &str) -> DomainCheckItem {
    let mut names = vec![format!("_dmarc.{d}")];
    if org(d) != d {
        names.push(format!("_dmarc.{}", org(d)));
    }
    let mut i = item("dmarc", &names[0]);
    i.expected = Some(format!(
        "_dmarc.{d}. IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@{d}\""
    ));
    let mut record = None;
    for n in &names {
        match dns.txt(n).await {
            Ok(f) => {
                if let Some(r) = f
                    .into_iter()
                    .find(|r| r.trim_start().to_ascii_uppercase().starts_with("V=DMARC1"))
                {
                    i.name = n.clone();
                    record = Some(r);
                    break;
                }
            }
            Err(e) => return set(i, "missing", e),
        }
    }
    let Some(r) = record else {
        return set(
            i,
            "missing",
            format!("no DMARC record at {}", names.join(" or ")),
        );
    };
    i.found = vec![r.clone()];
    let t = tags(&r);
    if tag(&t, "p").is_none() {
        return set(i, "wrong", "the record has no p= policy".into());
    }
    let env = sd
        .bounce_domain
        .as_deref()
        .unwrap_or(d)
        .to_ascii_lowercase();
    let spf_aligned = match tag(&t, "aspf") {
        Some("s") => env == d,
        _ => org(&env) == org(d),
    };
    // Laneway signs with d= the domain itself: aligned in both modes
    let dkim_aligned = !sd.dkim.is_empty();
    let mut why = Vec::new();
    if !spf_aligned {
        why.push(format!(
            "SPF would not align: the envelope domain {env} is not {d} (aspf)"
        ));
    }
    if !dkim_aligned {
        why.push(format!(
            "DKIM would not align: no [[domain.dkim]] key signs for {d}"
        ));
    }
    if why.is_empty() {
        i.expected = None;
        set(i, "ok", "SPF and DKIM both align".into())
    } else {
        set(i, "wrong", why.join("; "))
    }
}

async fn ptr(dns: &Dns, e: &Egress) -> DomainCheckItem {
    let rev = Dns::reverse(e.ip);
    let mut i = item(&format!("ptr:{}", e.ip), rev.trim_end_matches('.'));
    i.expected = Some(format!(
        "{rev} IN PTR {}.  (and {} IN {} {})",
        e.helo,
        e.helo,
        if e.ip.is_ipv4() { "A" } else { "AAAA" },
        e.ip
    ));
    let names = match dns.names(&rev, RecordType::PTR).await {
        Ok(n) => n,
        Err(err) => return set(i, "missing", err),
    };
    if names.is_empty() {
        return set(i, "missing", format!("{} has no PTR record", e.ip));
    }
    i.found = names.iter().map(|n| format!("PTR {n}")).collect();
    let mut confirmed = Vec::new();
    for n in &names {
        if dns.addresses(n).await.unwrap_or_default().contains(&e.ip) {
            confirmed.push(n.clone());
        }
    }
    if confirmed.is_empty() {
        return set(
            i,
            "wrong",
            format!("no PTR name resolves back to {} (FCrDNS)", e.ip),
        );
    }
    if !confirmed.contains(&e.helo) {
        return set(
            i,
            "wrong",
            format!(
                "the PTR name {} is not the HELO name {}",
                confirmed.join(", "),
                e.helo
            ),
        );
    }
    i.expected = None;
    set(i, "ok", format!("{} ⇄ {} is the HELO name", e.ip, e.helo))
}

async fn optional_txt(
    dns: &Dns,
    check: &str,
    name: &str,
    version: &str,
    valid: impl Fn(&[(String, String)]) -> Result<(), String>,
) -> DomainCheckItem {
    let mut i = item(check, name);
    i.optional = true;
    let found = match dns.txt(name).await {
        Ok(f) => f,
        Err(e) => return set(i, "missing", e),
    };
    let records: Vec<String> = found
        .into_iter()
        .filter(|r| {
            r.trim_start()
                .to_ascii_lowercase()
                .starts_with(&format!("v={}", version.to_ascii_lowercase()))
        })
        .collect();
    i.found = records.clone();
    match records.as_slice() {
        [] => set(i, "missing", "not published (optional)".into()),
        [one] => match valid(&tags(one)) {
            Ok(()) => set(i, "ok", "parses".into()),
            Err(e) => set(i, "wrong", e),
        },
        _ => set(
            i,
            "wrong",
            "more than one record: receivers ignore them all".into(),
        ),
    }
}

async fn mta_sts(dns: &Dns, d: &str) -> DomainCheckItem {
    let name = format!("_mta-sts.{d}");
    let mut i = optional_txt(dns, "mta_sts", &name, "STSv1", |t| {
        let id = tag(t, "id").ok_or("no id= tag (RFC 8461 §3.1)")?;
        let ok = !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric());
        ok.then_some(())
            .ok_or_else(|| format!("id={id:?} is not 1 to 32 letters and digits"))
    })
    .await;
    if i.status == "wrong" {
        i.expected = Some(format!("{name}. IN TXT \"v=STSv1; id=20260101T000000\""));
    }
    i
}

async fn tls_rpt(dns: &Dns, d: &str) -> DomainCheckItem {
    let name = format!("_smtp._tls.{d}");
    let mut i = optional_txt(dns, "tls_rpt", &name, "TLSRPTv1", |t| {
        let rua = tag(t, "rua").ok_or("no rua= tag (RFC 8460 §3)")?;
        let bad: Vec<&str> = rua
            .split(',')
            .map(str::trim)
            .filter(|u| !(u.starts_with("mailto:") || u.starts_with("https://")))
            .collect();
        bad.is_empty()
            .then_some(())
            .ok_or_else(|| format!("rua= has URIs that are not mailto: or https: {bad:?}"))
    })
    .await;
    if i.status == "wrong" {
        i.expected = Some(format!(
            "{name}. IN TXT \"v=TLSRPTv1; rua=mailto:tls-reports@{d}\""
        ));
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_organizational_domains() {
        let t = tags("v=DMARC1; p=reject; ASPF=s");
        assert_eq!(tag(&t, "aspf"), Some("s"));
        assert_eq!(tag(&t, "p"), Some("reject"));
        assert_eq!(org("mail.shop.example.com"), "example.com");
        assert_eq!(org("example.com"), "example.com");
    }
}
