//! SMTP TLS reporting (RFC 8460): outcomes of connections made under a
//! recipient domain's DANE or MTA-STS policy are counted per policy domain,
//! and once per reporting period each domain that publishes
//! `_smtp._tls.<domain>` TXT `v=TLSRPTv1; rua=mailto:…` gets an aggregate
//! JSON report, gzipped (`application/tlsrpt+gzip`), as an ordinary message
//! in a low lane. Only `mailto:` destinations are served; `https:` ones are
//! skipped (and logged). Counts are kept in memory: a restart starts a new
//! period.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use laneway_common::envelope::{Envelope, Recipient};
use laneway_common::{Ingest, LaneRequest, Priority, Submission};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use serde_json::{Value, json};

use crate::dispatch::Dispatcher;

/// How TLS reports are sent.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// The reporting period.
    pub interval: Duration,
    /// The organisation and submitter: our host name.
    pub hostname: String,
    /// Sender and contact address.
    pub from: String,
    /// The lane reports travel in.
    pub lane: Priority,
}

impl Dispatcher {
    /// Sends the TLS reports of each period (RFC 8460) until shutdown.
    pub async fn tls_reports(self: Arc<Self>, ingest: Arc<dyn Ingest>, r: ReportSettings) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(r.interval) => {}
                _ = self.lifecycle.shutdown_requested() => return,
            }
            let now = laneway_common::envelope::now_ms() / 1000;
            let (start, domains) = self.reports.take(now);
            for d in domains {
                let lookup = self.lookup.load_full();
                let Some(to) = lookup.tlsrpt_rua(&d.domain).await else {
                    continue;
                };
                if to.is_empty() {
                    tracing::info!(domain = %d.domain, "TLS report not sent: only https destinations, which are not supported");
                    continue;
                }
                let id = format!("{start}.{}.{}", d.domain, rand::random::<u32>());
                let contact = format!("mailto:{}", r.from);
                let v = json(&r.hostname, &contact, &id, start, now, &d);
                let Some(message) =
                    message(&r.hostname, &r.from, &to, &v, (start, now), now as i64)
                else {
                    continue;
                };
                let envelope = Envelope::local(
                    r.from.clone(),
                    to.iter().cloned().map(Recipient::new).collect(),
                    "tls-report",
                );
                let sub = Submission {
                    envelope,
                    message,
                    lane: LaneRequest::fixed(r.lane),
                };
                match ingest.submit(sub).await {
                    Ok(acc) => {
                        tracing::info!(domain = %d.domain, id = %acc.id, to = ?to, "TLS report queued");
                        for rcpt in &to {
                            let mut e = laneway_common::events::Event::new(
                                laneway_common::events::EventType::TlsReportSent,
                                acc.id,
                                acc.lane.get(),
                                &r.from,
                                rcpt,
                            );
                            e.description = Some(format!("TLS report for {}", d.domain));
                            self.events.record(e);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(domain = %d.domain, error = %e, "cannot queue the TLS report")
                    }
                }
            }
        }
    }
}

/// The policy a connection was made under, as the report describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRef {
    /// `sts` or `tlsa`.
    pub kind: &'static str,
    /// The policy as text lines (the MTA-STS policy fields, or the TLSA
    /// records in presentation form).
    pub strings: Vec<String>,
    /// MTA-STS `mx` patterns.
    pub mx: Vec<String>,
}

#[derive(Debug, Default, Clone)]
struct DomainStats {
    policy: Option<PolicyRef>,
    success: u64,
    /// (result type, receiving MX host, receiving IP) → sessions
    failures: BTreeMap<(String, String, Option<IpAddr>), u64>,
}

#[derive(Debug, Default)]
struct Period {
    start: u64,
    domains: BTreeMap<String, DomainStats>,
}

/// The counts of the current period.
#[derive(Debug, Default)]
pub struct Reports {
    period: Mutex<Period>,
}

/// One policy domain's counts for a finished period.
#[derive(Debug, Clone)]
pub struct DomainReport {
    /// The policy domain.
    pub domain: String,
    policy: Option<PolicyRef>,
    success: u64,
    failures: BTreeMap<(String, String, Option<IpAddr>), u64>,
}

impl Reports {
    /// Starts counting at `now_secs`.
    pub fn new(now_secs: u64) -> Reports {
        Reports {
            period: Mutex::new(Period {
                start: now_secs,
                domains: BTreeMap::new(),
            }),
        }
    }

    fn with(&self, domain: &str, policy: &PolicyRef, f: impl FnOnce(&mut DomainStats)) {
        let mut p = self.period.lock().unwrap_or_else(|e| e.into_inner());
        let d = p.domains.entry(domain.to_ascii_lowercase()).or_default();
        d.policy = Some(policy.clone());
        f(d);
    }

    /// A session that met the policy.
    pub fn success(&self, domain: &str, policy: &PolicyRef) {
        self.with(domain, policy, |d| d.success += 1);
    }

    /// A session that failed it: an RFC 8460 §4.3 result type, the MX host
    /// and its address if one was reached.
    pub fn failure(
        &self,
        domain: &str,
        policy: &PolicyRef,
        result: &str,
        mx: &str,
        ip: Option<IpAddr>,
    ) {
        self.with(domain, policy, |d| {
            *d.failures
                .entry((result.to_string(), mx.to_string(), ip))
                .or_default() += 1;
        });
    }

    /// Ends the period at `now_secs`: its start, and every domain's counts.
    pub fn take(&self, now_secs: u64) -> (u64, Vec<DomainReport>) {
        let mut p = self.period.lock().unwrap_or_else(|e| e.into_inner());
        let start = std::mem::replace(&mut p.start, now_secs);
        let domains = std::mem::take(&mut p.domains)
            .into_iter()
            .map(|(domain, s)| DomainReport {
                domain,
                policy: s.policy,
                success: s.success,
                failures: s.failures,
            })
            .collect();
        (start, domains)
    }
}

/// The RFC 8460 §4.4 JSON report for one domain.
pub fn json(
    organization: &str,
    contact: &str,
    report_id: &str,
    start: u64,
    end: u64,
    r: &DomainReport,
) -> Value {
    let failures: u64 = r.failures.values().sum();
    let policy = r.policy.clone().unwrap_or(PolicyRef {
        kind: "no-policy-found",
        strings: Vec::new(),
        mx: Vec::new(),
    });
    let mut p = json!({
        "policy-type": policy.kind,
        "policy-string": policy.strings,
        "policy-domain": r.domain,
    });
    if !policy.mx.is_empty() {
        p["mx-host"] = json!(policy.mx);
    }
    let details: Vec<Value> = r
        .failures
        .iter()
        .map(|((result, mx, ip), n)| {
            let mut d = json!({
                "result-type": result,
                "receiving-mx-hostname": mx,
                "failed-session-count": n,
            });
            if let Some(ip) = ip {
                d["receiving-ip"] = json!(ip.to_string());
            }
            d
        })
        .collect();
    json!({
        "organization-name": organization,
        "date-range": {
            "start-datetime": laneway_common::headers::rfc3339_secs(start),
            "end-datetime": laneway_common::headers::rfc3339_secs(end),
        },
        "contact-info": contact,
        "report-id": report_id,
        "policies": [{
            "policy": p,
            "summary": {
                "total-successful-session-count": r.success,
                "total-failure-session-count": failures,
            },
            "failure-details": details,
        }],
    })
}

/// The `mailto:` addresses of a `_smtp._tls` TXT record
/// (`v=TLSRPTv1; rua=mailto:a@b,https://…`); `None` if it is not one.
pub fn rua(record: &str) -> Option<Vec<String>> {
    let mut fields = record.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next()? != "v=TLSRPTv1" {
        return None;
    }
    let value = fields
        .filter_map(|f| f.split_once('='))
        .find(|(k, _)| k.trim() == "rua")?
        .1;
    Some(
        value
            .split(',')
            .filter_map(|u| u.trim().strip_prefix("mailto:"))
            // percent-encoding is allowed in the URI (RFC 8460 §3)
            .map(|a| a.replace("%40", "@").replace("%2C", ","))
            .filter(|a| a.contains('@') && !a.contains(['\r', '\n', '<', '>', ' ']))
            .collect(),
    )
}

/// The report message (RFC 8460 §5.3): `multipart/report;
/// report-type="tlsrpt"`, the gzipped JSON attached; `period` is its
/// (start, end) in Unix seconds.
pub fn message(
    hostname: &str,
    from: &str,
    to: &[String],
    report: &Value,
    (start, end): (u64, u64),
    now_secs: i64,
) -> Option<Vec<u8>> {
    let domain = report["policies"][0]["policy"]["policy-domain"].as_str()?;
    let report_id = report["report-id"].as_str()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(report.to_string().as_bytes()).ok()?;
    let gz = gz.finish().ok()?;
    let filename = format!("{hostname}!{domain}!{start}!{end}!{report_id}.json.gz");
    let text = format!(
        "This is an aggregate TLS report (RFC 8460) from {hostname} for {domain}, covering {} to {}.\r\n",
        laneway_common::headers::rfc3339_secs(start),
        laneway_common::headers::rfc3339_secs(end)
    );
    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "tlsrpt"),
        vec![
            MimePart::new(ContentType::new("text/plain"), BodyPart::Text(text.into())),
            MimePart::new(
                ContentType::new("application/tlsrpt+gzip"),
                BodyPart::Binary(gz.into()),
            )
            .attachment(filename),
        ],
    );
    MessageBuilder::new()
        .from(Address::new_address(None::<&str>, from.to_string()))
        .to(to
            .iter()
            .map(|t| Address::new_address(None::<&str>, t.clone()))
            .collect::<Vec<_>>())
        .subject(format!(
            "Report Domain: {domain} Submitter: {hostname} Report-ID: <{report_id}>"
        ))
        .header("TLS-Report-Domain", Raw::new(domain.to_string()))
        .header("TLS-Report-Submitter", Raw::new(hostname.to_string()))
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .message_id(format!("{report_id}@{hostname}"))
        .date(now_secs)
        .body(body)
        .write_to_vec()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts() -> PolicyRef {
        PolicyRef {
            kind: "sts",
            strings: vec!["version: STSv1".into(), "mode: enforce".into()],
            mx: vec!["*.mail.example.com".into()],
        }
    }

    #[test]
    fn counts_per_domain_and_period() {
        let r = Reports::new(1_700_000_000);
        r.success("Example.com", &sts());
        r.success("example.com", &sts());
        let ip = Some("192.0.2.1".parse().unwrap());
        for _ in 0..2 {
            r.failure(
                "example.com",
                &sts(),
                "starttls-not-supported",
                "mx1.example.com",
                ip,
            );
        }
        let (start, domains) = r.take(1_700_086_400);
        assert_eq!(start, 1_700_000_000);
        assert_eq!(domains.len(), 1);
        let v = json(
            "Laneway",
            "mailto:pm@x",
            "id1",
            start,
            1_700_086_400,
            &domains[0],
        );
        let p = &v["policies"][0];
        assert_eq!(p["policy"]["policy-type"], "sts");
        assert_eq!(p["policy"]["policy-domain"], "example.com");
        assert_eq!(p["policy"]["mx-host"][0], "*.mail.example.com");
        assert_eq!(p["summary"]["total-successful-session-count"], 2);
        assert_eq!(p["summary"]["total-failure-session-count"], 2);
        assert_eq!(
            p["failure-details"][0]["result-type"],
            "starttls-not-supported"
        );
        assert_eq!(p["failure-details"][0]["receiving-ip"], "192.0.2.1");
        assert_eq!(p["failure-details"][0]["failed-session-count"], 2);
        assert_eq!(v["date-range"]["start-datetime"], "2023-11-14T22:13:20Z");
        assert_eq!(v["date-range"]["end-datetime"], "2023-11-15T22:13:20Z");
        // the next period starts empty
        assert!(r.take(1_700_100_000).1.is_empty());
    }

    #[test]
    fn rua_records() {
        assert_eq!(
            rua("v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.com/x"),
            Some(vec!["tls@example.com".to_string()])
        );
        assert_eq!(
            rua("v=TLSRPTv1;rua=mailto:a%40example.com"),
            Some(vec!["a@example.com".to_string()])
        );
        assert_eq!(rua("v=spf1 -all"), None);
        assert_eq!(rua("v=TLSRPTv1; rua=mailto:x@y\r\nBcc: z"), Some(vec![]));
    }

    #[test]
    fn the_message_carries_the_gzipped_report() {
        let r = Reports::new(0);
        r.failure("example.com", &sts(), "validation-failure", "mx", None);
        let (start, d) = r.take(86400);
        let v = json("Laneway", "mailto:pm@x", "rid", start, 86400, &d[0]);
        let m = message(
            "relay.test",
            "pm@relay.test",
            &["tls@example.com".into()],
            &v,
            (0, 86400),
            86400,
        )
        .unwrap();
        let text = String::from_utf8_lossy(&m);
        assert!(text.contains("report-type=\"tlsrpt\""), "{text}");
        assert!(text.contains("application/tlsrpt+gzip"), "{text}");
        assert!(text.contains("TLS-Report-Domain: example.com"), "{text}");
        assert!(
            text.contains("relay.test!example.com!0!86400!rid.json.gz"),
            "{text}"
        );
    }
}
