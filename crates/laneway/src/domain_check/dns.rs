//! The few lookups the domain check makes, each answered as records, none
//! (NXDOMAIN or no data: "missing"), or a failure that says why.

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

/// What a lookup found.
#[derive(Debug)]
pub(super) enum Answer {
    /// These records.
    Records(Vec<RData>),
    /// No such name, or no records of the type.
    None,
    /// The lookup failed (timeout, SERVFAIL): say so, do not guess.
    Failed(String),
}

/// A lookup with a resolver of its own (no cache from the daemon's).
pub(super) struct Dns(pub(super) TokioResolver);

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

impl Dns {
    pub(super) async fn query(&self, name: &str, t: RecordType) -> Answer {
        match self.0.lookup(fqdn(name).as_str(), t).await {
            Ok(l) => {
                let v: Vec<RData> = l
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == t)
                    .map(|r| r.data.clone())
                    .collect();
                if v.is_empty() {
                    Answer::None
                } else {
                    Answer::Records(v)
                }
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Answer::None,
            Err(e) => Answer::Failed(format!("looking up {t} {name}: {e}")),
        }
    }

    /// The TXT records of `name`, each as one string.
    pub(super) async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        match self.query(name, RecordType::TXT).await {
            Answer::Records(v) => Ok(v
                .iter()
                .filter_map(|d| match d {
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .map(|b| String::from_utf8_lossy(b))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()),
            Answer::None => Ok(Vec::new()),
            Answer::Failed(e) => Err(e),
        }
    }

    /// Host names (lower case, no trailing dot) of MX, CNAME or PTR records.
    pub(super) async fn names(&self, name: &str, t: RecordType) -> Result<Vec<String>, String> {
        let clean = |n: &Name| n.to_ascii().trim_end_matches('.').to_ascii_lowercase();
        match self.query(name, t).await {
            Answer::Records(v) => Ok(v
                .iter()
                .filter_map(|d| match d {
                    RData::MX(m) => Some(clean(&m.exchange)),
                    RData::CNAME(c) => Some(clean(&c.0)),
                    RData::PTR(p) => Some(clean(&p.0)),
                    _ => None,
                })
                .collect()),
            Answer::None => Ok(Vec::new()),
            Answer::Failed(e) => Err(e),
        }
    }

    /// The A and AAAA addresses of `host`.
    pub(super) async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let mut out = Vec::new();
        for t in [RecordType::A, RecordType::AAAA] {
            match self.query(host, t).await {
                Answer::Records(v) => out.extend(v.iter().filter_map(|d| match d {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Answer::None => {}
                Answer::Failed(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The reverse name of `ip` (`4.3.2.1.in-addr.arpa`).
    pub(super) fn reverse(ip: IpAddr) -> String {
        Name::from(ip).to_ascii()
    }
}
