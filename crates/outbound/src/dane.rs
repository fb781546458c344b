//! DANE for SMTP (RFC 7672, with RFC 6698/7671): when a domain's MX answer
//! is DNSSEC-secure, each MX host's `_<port>._tcp.<host>` TLSA records
//! decide how its certificate is checked. DANE-EE(3) records match the
//! server's own certificate or public key, whatever its name or expiry;
//! DANE-TA(2) records match a certificate of the chain the server sends,
//! which then anchors an ordinary chain and name check. A host with usable
//! records is only reached over TLS that passes them; a failed TLSA lookup
//! makes the host unusable (never plaintext instead).
//!
//! Laneway does not validate DNSSEC itself: with `[dns] dnssec = true` it
//! trusts the AD bit of its configured name server, which must be a local
//! validating resolver (as Postfix does with `smtp_dns_support_level =
//! dnssec`). The queries here are raw, with the DO and AD bits set.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// 2 DANE-TA, 3 DANE-EE (0 and 1 are not used for SMTP, RFC 7672 §3.1.3).
    pub usage: u8,
    /// 0 full certificate, 1 SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0 exact, 1 SHA-256, 2 SHA-512.
    pub matching: u8,
    /// The association data.
    pub data: Vec<u8>,
}

impl Tlsa {
    /// Whether RFC 7672 lets SMTP use this record.
    pub fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3) && self.selector <= 1 && self.matching <= 2
    }

    /// Whether the record matches this certificate.
    pub fn matches(&self, cert: &[u8]) -> bool {
        let selected = match self.selector {
            0 => cert,
            1 => match spki(cert) {
                Some(s) => s,
                None => return false,
            },
            _ => return false,
        };
        match self.matching {
            0 => selected == self.data.as_slice(),
            1 => ring::digest::digest(&ring::digest::SHA256, selected).as_ref() == self.data,
            2 => ring::digest::digest(&ring::digest::SHA512, selected).as_ref() == self.data,
            _ => false,
        }
    }
}

/// One DER TLV: (tag, contents, the whole TLV, what follows).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// Reads the DER TLV at the start of `b`.
fn tlv(b: &[u8]) -> Option<Tlv<'_>> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    Some((tag, &b[head..end], &b[..end], &b[end..]))
}

/// The DER SubjectPublicKeyInfo of an X.509 certificate.
pub fn spki(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, cert, ..) = tlv(cert)? else {
        return None;
    };
    let (0x30, tbs, ..) = tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // [0] version, if present
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.3;
    }
    // serialNumber, signature, issuer, validity, subject
    for _ in 0..5 {
        rest = tlv(rest)?.3;
    }
    let (0x30, _, whole, _) = tlv(rest)? else {
        return None;
    };
    Some(whole)
}

/// What DANE says about one MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostDane {
    /// Secure TLSA records, at least one usable: TLS checked against them.
    Tlsa(Vec<Tlsa>),
    /// Secure TLSA records, none usable: TLS mandatory, not authenticated
    /// (RFC 7672 §2.2).
    EncryptOnly,
    /// The TLSA lookup failed (bogus or no answer): the host is unusable.
    Failed(String),
}

/// What a DNSSEC-aware query found.
#[derive(Debug)]
pub struct Answer {
    /// The response code.
    pub rcode: ResponseCode,
    /// The resolver vouched for it (AD bit).
    pub secure: bool,
    /// Answer records of the asked type.
    pub records: Vec<RData>,
}

/// Asks `server` for `name`/`rtype` with DO and AD set; TCP when the UDP
/// answer is truncated.
pub async fn query(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Answer, String> {
    let qname = Name::from_ascii(name).map_err(|e| format!("{name}: {e}"))?;
    let id: u16 = rand::random();
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.metadata.authentic_data = true;
    msg.add_query(Query::query(qname, rtype));
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    edns.set_max_payload(1232);
    msg.set_edns(edns);
    let wire = msg.to_vec().map_err(|e| e.to_string())?;
    let ask = async {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("addr")
        } else {
            "[::]:0".parse().expect("addr")
        };
        let sock = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| e.to_string())?;
        sock.connect(server).await.map_err(|e| e.to_string())?;
        sock.send(&wire).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4096];
        let resp = loop {
            let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
            if let Ok(m) = Message::from_vec(&buf[..n])
                && m.metadata.id == id
            {
                break m;
            }
        };
        if !resp.metadata.truncation {
            return Ok(resp);
        }
        let mut tcp = tokio::net::TcpStream::connect(server)
            .await
            .map_err(|e| e.to_string())?;
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&wire);
        tcp.write_all(&framed).await.map_err(|e| e.to_string())?;
        let len = tcp.read_u16().await.map_err(|e| e.to_string())? as usize;
        let mut body = vec![0u8; len];
        tcp.read_exact(&mut body).await.map_err(|e| e.to_string())?;
        Message::from_vec(&body).map_err(|e| e.to_string())
    };
    let resp = tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| format!("{name} {rtype}: no answer from {server}"))??;
    Ok(Answer {
        rcode: resp.metadata.response_code,
        secure: resp.metadata.authentic_data,
        records: resp
            .answers
            .into_iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| r.data)
            .collect(),
    })
}

/// Whether `domain`'s MX answer (or its denial) is DNSSEC-secure.
pub async fn mx_secure(server: SocketAddr, domain: &str, timeout: Duration) -> bool {
    let name = format!("{}.", domain.trim_end_matches('.'));
    matches!(
        query(server, &name, RecordType::MX, timeout).await,
        Ok(Answer {
            rcode: ResponseCode::NoError,
            secure: true,
            ..
        })
    )
}

/// The DANE state of `host` on `port`: `None` when there are no secure
/// TLSA records (the host gets the ordinary policy).
pub async fn host(
    server: SocketAddr,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Option<HostDane> {
    let name = format!("_{port}._tcp.{}.", host.trim_end_matches('.'));
    match query(server, &name, RecordType::TLSA, timeout).await {
        Err(e) => Some(HostDane::Failed(e)),
        Ok(a) if a.rcode == ResponseCode::NXDomain => None,
        Ok(a) if a.rcode != ResponseCode::NoError => Some(HostDane::Failed(format!(
            "TLSA lookup for {name} answered {}",
            a.rcode
        ))),
        Ok(a) if !a.secure || a.records.is_empty() => None,
        Ok(a) => {
            let records: Vec<Tlsa> = a
                .records
                .iter()
                .filter_map(|r| match r {
                    RData::TLSA(t) => Some(Tlsa {
                        usage: t.cert_usage.into(),
                        selector: t.selector.into(),
                        matching: t.matching.into(),
                        data: t.cert_data.clone(),
                    }),
                    _ => None,
                })
                .filter(Tlsa::usable)
                .collect();
            Some(if records.is_empty() {
                HostDane::EncryptOnly
            } else {
                HostDane::Tlsa(records)
            })
        }
    }
}

/// Checks a server's chain against TLSA records.
#[derive(Debug)]
struct DaneVerifier {
    records: Vec<Tlsa>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // DANE-EE: the server's own certificate or key; names and dates
        // do not matter (RFC 7672 §3.1.1)
        if self
            .records
            .iter()
            .any(|t| t.usage == 3 && t.matches(end_entity))
        {
            return Ok(ServerCertVerified::assertion());
        }
        // DANE-TA: a certificate the server sends anchors the chain, and
        // the name is checked (§3.1.2)
        for ta in intermediates {
            if !self.records.iter().any(|t| t.usage == 2 && t.matches(ta)) {
                continue;
            }
            let mut roots = RootCertStore::empty();
            if roots.add(ta.clone().into_owned()).is_err() {
                continue;
            }
            let Ok(v) =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                    .build()
            else {
                continue;
            };
            let rest: Vec<CertificateDer<'_>> = intermediates
                .iter()
                .filter(|c| c.as_ref() != ta.as_ref())
                .cloned()
                .collect();
            if v.verify_server_cert(end_entity, &rest, server_name, &[], now)
                .is_ok()
            {
                return Ok(ServerCertVerified::assertion());
            }
        }
        Err(rustls::Error::General(
            "no TLSA record matches the certificate chain (DANE)".into(),
        ))
    }

    crate::tls::signature_checks!(self => &self.provider.signature_verification_algorithms);
}

/// A client configuration that accepts a server only if its chain matches
/// `records`.
pub fn client_config(records: Vec<Tlsa>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(DaneVerifier { records, provider }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;

    fn sha256(b: &[u8]) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA256, b)
            .as_ref()
            .to_vec()
    }

    #[test]
    fn spki_is_found_in_certificates() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(
            spki(cert.der()).unwrap(),
            key.subject_public_key_info().as_slice()
        );
        assert_eq!(spki(b"\x30\x03\x02\x01"), None, "truncated");
        assert_eq!(spki(b""), None);
    }

    /// (CA cert, leaf cert, leaf key) for `name`.
    fn chain(
        name: &str,
    ) -> (
        CertificateDer<'static>,
        CertificateDer<'static>,
        rcgen::KeyPair,
    ) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (ca.der().clone(), leaf.der().clone(), key)
    }

    fn verify(
        records: Vec<Tlsa>,
        ee: &CertificateDer<'_>,
        chain: &[CertificateDer<'_>],
        name: &str,
    ) -> bool {
        let v = DaneVerifier {
            records,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        v.verify_server_cert(
            ee,
            chain,
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .is_ok()
    }

    #[test]
    fn dane_ee_matches_the_certificate_or_key_by_every_method() {
        let (_, leaf, key) = chain("mx.test");
        let spki = key.subject_public_key_info();
        for (selector, matching, data) in [
            (0, 0, leaf.to_vec()),
            (0, 1, sha256(&leaf)),
            (1, 0, spki.clone()),
            (1, 1, sha256(&spki)),
            (
                1,
                2,
                ring::digest::digest(&ring::digest::SHA512, &spki)
                    .as_ref()
                    .to_vec(),
            ),
        ] {
            let t = Tlsa {
                usage: 3,
                selector,
                matching,
                data,
            };
            // names do not matter for DANE-EE
            assert!(verify(vec![t.clone()], &leaf, &[], "other.test"), "{t:?}");
        }
        let wrong = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: sha256(b"other"),
        };
        assert!(!verify(vec![wrong], &leaf, &[], "mx.test"));
    }

    #[test]
    fn dane_ta_anchors_the_chain_and_checks_the_name() {
        let (ca, leaf, _) = chain("mx.test");
        let ta = Tlsa {
            usage: 2,
            selector: 0,
            matching: 1,
            data: sha256(&ca),
        };
        assert!(verify(
            vec![ta.clone()],
            &leaf,
            std::slice::from_ref(&ca),
            "mx.test"
        ));
        assert!(
            !verify(
                vec![ta.clone()],
                &leaf,
                std::slice::from_ref(&ca),
                "evil.test"
            ),
            "DANE-TA checks the name"
        );
        assert!(
            !verify(vec![ta.clone()], &leaf, &[], "mx.test"),
            "TA must be sent"
        );
        let (other_ca, ..) = chain("mx.test");
        let wrong = Tlsa {
            usage: 2,
            selector: 0,
            matching: 1,
            data: sha256(&other_ca),
        };
        assert!(!verify(
            vec![wrong],
            &leaf,
            std::slice::from_ref(&ca),
            "mx.test"
        ));
        // a DANE-TA record never matches the end entity as if it were EE
        let ee_as_ta = Tlsa {
            usage: 2,
            selector: 0,
            matching: 1,
            data: sha256(&leaf),
        };
        assert!(!verify(vec![ee_as_ta], &leaf, &[], "mx.test"));
    }

    #[test]
    fn pkix_usages_are_not_usable_for_smtp() {
        for usage in [0, 1] {
            assert!(
                !Tlsa {
                    usage,
                    selector: 0,
                    matching: 1,
                    data: vec![]
                }
                .usable()
            );
        }
        assert!(
            Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: vec![]
            }
            .usable()
        );
        assert!(
            !Tlsa {
                usage: 3,
                selector: 2,
                matching: 1,
                data: vec![]
            }
            .usable()
        );
    }
}
