//! A real DNS server on loopback for tests (UDP, hickory-proto for the wire
//! format): Laneway's resolver talks to it exactly as to any name server.
//! Answers MX, A and AAAA from a table the test fills; names not in the
//! table are NXDOMAIN, names with records of other types get NODATA, names
//! marked so get the response code they were given (SERVFAIL, REFUSED,
//! NOTIMP, FORMERR) or no answer at all (the client times out).

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, TLSA, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

#[derive(Default)]
struct Zone {
    records: Vec<(String, RData)>,
    rcodes: HashMap<String, ResponseCode>,
    silent: HashSet<String>,
    /// Names answered with the AD bit, as a validating resolver does for
    /// DNSSEC-secure data.
    secure: HashSet<String>,
}

/// A test DNS server.
#[derive(Clone)]
pub struct TestDns {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
}

fn key(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

impl TestDns {
    /// Starts a server on 127.0.0.1, port chosen by the system.
    pub fn start() -> TestDns {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind dns");
        let addr = sock.local_addr().unwrap();
        let zone = Arc::new(Mutex::new(Zone::default()));
        let z = zone.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(resp) = answer(&buf[..n], &z) {
                    let _ = sock.send_to(&resp, from);
                }
            }
        });
        TestDns { addr, zone }
    }

    fn add(&self, name: &str, data: RData) {
        self.zone.lock().unwrap().records.push((key(name), data));
    }

    /// An MX record.
    pub fn mx(&self, domain: &str, preference: u16, host: &str) {
        self.add(
            domain,
            RData::MX(MX::new(preference, Name::from_ascii(key(host)).unwrap())),
        );
    }

    /// A null MX (RFC 7505): `MX 0 .`.
    pub fn null_mx(&self, domain: &str) {
        self.add(domain, RData::MX(MX::new(0, Name::root())));
    }

    /// An A record.
    pub fn a(&self, host: &str, ip: &str) {
        self.add(host, RData::A(A(ip.parse().unwrap())));
    }

    /// An AAAA record.
    pub fn aaaa(&self, host: &str, ip: &str) {
        self.add(host, RData::AAAA(AAAA(ip.parse().unwrap())));
    }

    /// A TXT record (split into strings of at most 255 octets).
    pub fn txt(&self, name: &str, value: &str) {
        let parts: Vec<String> = value
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        self.add(name, RData::TXT(TXT::new(parts)));
    }

    /// A PTR record for `ip` (its `in-addr.arpa` / `ip6.arpa` name).
    pub fn ptr(&self, ip: &str, host: &str) {
        let ip: std::net::IpAddr = ip.parse().expect("an IP address");
        let name = Name::from(ip).to_ascii();
        self.add(&name, RData::PTR(PTR(Name::from_ascii(key(host)).unwrap())));
    }

    /// A CNAME record (answered to CNAME queries only: no chasing).
    pub fn cname(&self, name: &str, target: &str) {
        self.add(
            name,
            RData::CNAME(CNAME(Name::from_ascii(key(target)).unwrap())),
        );
    }

    /// Forgets every record of `name`.
    pub fn remove(&self, name: &str) {
        let k = key(name);
        self.zone.lock().unwrap().records.retain(|(n, _)| *n != k);
    }

    /// A TLSA record (RFC 6698): usage, selector, matching type, data.
    pub fn tlsa(&self, name: &str, usage: u8, selector: u8, matching: u8, data: &[u8]) {
        self.add(
            name,
            RData::TLSA(TLSA::new(
                usage.into(),
                selector.into(),
                matching.into(),
                data.to_vec(),
            )),
        );
    }

    /// Answers for `name` carry the AD bit: this server then plays the
    /// local validating resolver that vouches for DNSSEC-secure data.
    pub fn secure(&self, name: &str) {
        self.zone.lock().unwrap().secure.insert(key(name));
    }

    /// Every query for `name` gets SERVFAIL.
    pub fn servfail(&self, name: &str) {
        self.rcode(name, ResponseCode::ServFail);
    }

    /// Every query for `name` gets this response code and no records.
    pub fn rcode(&self, name: &str, code: ResponseCode) {
        self.zone.lock().unwrap().rcodes.insert(key(name), code);
    }

    /// Queries for `name` are never answered (the resolver times out).
    pub fn silent(&self, name: &str) {
        self.zone.lock().unwrap().silent.insert(key(name));
    }

    /// Forgets every record and failure.
    pub fn clear(&self) {
        let mut z = self.zone.lock().unwrap();
        z.records.clear();
        z.rcodes.clear();
        z.silent.clear();
        z.secure.clear();
    }

    /// `[dns]` lines for a configuration.
    pub fn config(&self) -> String {
        format!(
            "[dns]\nnameservers = [\"{}\"]\ntimeout = \"1s\"\nattempts = 1\n",
            self.addr
        )
    }
}

fn answer(query: &[u8], zone: &Mutex<Zone>) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let mut resp = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    resp.metadata.recursion_desired = q.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    let question = q.queries.first()?.clone();
    resp.add_query(question.clone());
    let name = key(&question.name().to_ascii());
    let z = zone.lock().unwrap();
    if z.silent.contains(&name) {
        return None;
    }
    if let Some(code) = z.rcodes.get(&name) {
        resp.metadata.response_code = *code;
        return resp.to_vec().ok();
    }
    let known: Vec<&RData> = z
        .records
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, d)| d)
        .collect();
    if known.is_empty() {
        resp.metadata.response_code = ResponseCode::NXDomain;
        return resp.to_vec().ok();
    }
    let qtype = question.query_type();
    for d in known {
        let matches = matches!(
            (qtype, d),
            (RecordType::MX, RData::MX(_))
                | (RecordType::A, RData::A(_))
                | (RecordType::AAAA, RData::AAAA(_))
                | (RecordType::TXT, RData::TXT(_))
                | (RecordType::TLSA, RData::TLSA(_))
                | (RecordType::PTR, RData::PTR(_))
                | (RecordType::CNAME, RData::CNAME(_))
        );
        if matches {
            resp.add_answer(Record::from_rdata(question.name().clone(), 1, d.clone()));
        }
    }
    resp.metadata.authentic_data = z.secure.contains(&name);
    resp.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::Resolver;
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;

    #[test]
    fn answers_txt_mx_and_nxdomain() {
        let dns = TestDns::start();
        dns.txt(
            "sel._domainkey.example.com",
            &format!("v=DKIM1; k=rsa; p={}", "A".repeat(400)),
        );
        dns.mx("example.com", 10, "mx.example.com");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut ns = NameServerConfig::udp(dns.addr.ip());
            for c in &mut ns.connections {
                c.port = dns.addr.port();
            }
            let r = Resolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            )
            .build()
            .unwrap();
            let txt = r.txt_lookup("sel._domainkey.example.com.").await.unwrap();
            let joined: Vec<u8> = txt
                .answers()
                .iter()
                .filter_map(|a| match &a.data {
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .flat_map(|s| s.to_vec())
                            .collect::<Vec<u8>>(),
                    ),
                    _ => None,
                })
                .next()
                .unwrap();
            assert!(joined.starts_with(b"v=DKIM1") && joined.len() > 400);
            assert_eq!(
                r.mx_lookup("example.com.").await.unwrap().answers().len(),
                1
            );
            assert!(
                r.mx_lookup("nope.example.com.")
                    .await
                    .unwrap_err()
                    .is_nx_domain()
            );
        });
    }
}
