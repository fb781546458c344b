//! A real DNS server on loopback for tests (UDP, hickory-proto for the wire
//! format): Laneway's resolver talks to it exactly as to any name server.
//! Answers MX, A and AAAA from a table the test fills; names not in the
//! table are NXDOMAIN, names with records of other types get NODATA, and
//! names marked so get SERVFAIL.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

#[derive(Default)]
struct Zone {
    records: Vec<(String, RData)>,
    servfail: HashSet<String>,
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

    /// Every query for `name` gets SERVFAIL.
    pub fn servfail(&self, name: &str) {
        self.zone.lock().unwrap().servfail.insert(key(name));
    }

    /// Forgets every record and failure.
    pub fn clear(&self) {
        let mut z = self.zone.lock().unwrap();
        z.records.clear();
        z.servfail.clear();
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
    if z.servfail.contains(&name) {
        resp.metadata.response_code = ResponseCode::ServFail;
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
        );
        if matches {
            resp.add_answer(Record::from_rdata(question.name().clone(), 1, d.clone()));
        }
    }
    resp.to_vec().ok()
}
