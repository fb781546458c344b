//! DKIM tests: every signature is checked by mail-auth's verifier with the
//! public keys injected as TXT answers (no DNS), and fixed vectors pin the
//! exact bytes.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey as TxtKey;
use mail_auth::dkim::DkimSigner;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};
use ring::digest;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use laneway_common::config::{DkimAlgorithm, DkimKey, SenderDomain};

use super::*;

const MSG: &str = "From: Alice <alice@example.com>\r\n\
To: bob@example.net\r\n\
Subject: Your password reset\r\n\
Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <reset-1@example.com>\r\n\
X-Mailer: test\r\n\
\r\n\
Click the link.\r\n";

/// The fixed `t=` of the vectors (2023-11-14T22:13:20Z).
const NOW: u64 = 1_700_000_000;

fn res(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/resources")
        .join(name)
}

fn key(selector: &str, file: &str, algorithm: DkimAlgorithm) -> DkimKey {
    DkimKey {
        selector: selector.into(),
        key: res(file),
        algorithm,
    }
}

fn domain(name: &str, dkim: Vec<DkimKey>) -> SenderDomain {
    SenderDomain {
        name: name.into(),
        bounce_domain: None,
        require_tls: false,
        unsubscribe: None,
        dkim,
    }
}

fn rsa() -> DkimKey {
    key("rsa2026", "rsa2048_pkcs8.pem", DkimAlgorithm::RsaSha256)
}

fn ed() -> DkimKey {
    key("ed2026", "ed25519_pkcs8.pem", DkimAlgorithm::Ed25519Sha256)
}

/// TXT answers that mail-auth consults before DNS.
/// Keys are lower-case FQDNs with the trailing dot.
#[derive(Default)]
struct StaticTxt(Mutex<HashMap<Box<str>, Txt>>);

impl StaticTxt {
    fn add(&self, selector: &str, domain: &str, record: &str) {
        let txt: Txt = TxtKey::parse(record.as_bytes()).into();
        let name = format!("{selector}._domainkey.{domain}.").to_ascii_lowercase();
        self.0.lock().unwrap().insert(name.into(), txt);
    }

    /// The public keys of the fixture files, as published for example.com.
    fn fixtures() -> StaticTxt {
        let t = StaticTxt::default();
        let pem = std::fs::read(res("rsa2048_pkcs8.pem")).unwrap();
        let k =
            RsaKey::<Sha256>::from_key_der(PrivateKeyDer::from_pem_slice(&pem).unwrap()).unwrap();
        t.add(
            "rsa2026",
            "example.com",
            &format!("v=DKIM1; k=rsa; p={}", B64.encode(k.public_key())),
        );
        let pem = std::fs::read(res("ed25519_pkcs8.pem")).unwrap();
        let PrivateKeyDer::Pkcs8(der) = PrivateKeyDer::from_pem_slice(&pem).unwrap() else {
            panic!()
        };
        let k = Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der()).unwrap();
        t.add(
            "ed2026",
            "example.com",
            &format!("v=DKIM1; k=ed25519; p={}", B64.encode(k.public_key())),
        );
        t
    }
}

impl ResolverCache<Box<str>, Txt> for StaticTxt {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }
    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }
    fn insert(&self, key: Box<str>, value: Txt, _valid_until: Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

/// Verifies every DKIM-Signature of `signed`; DNS is a dead local port, so
/// only injected keys can pass.
fn verify(signed: &[u8], txt: &StaticTxt) -> Vec<DkimResult> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ns = NameServerConfig::udp("127.0.0.1".parse().unwrap());
        ns.connections[0].port = 1;
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_millis(100);
        opts.attempts = 1;
        let auth =
            MessageAuthenticator::new(ResolverConfig::from_name_servers(vec![ns]), opts).unwrap();
        let msg = AuthenticatedMessage::parse(signed).expect("parsable");
        let out = auth
            .verify_dkim(Parameters::new(&msg).with_txt_cache(txt))
            .await;
        out.iter().map(|o| o.result().clone()).collect()
    })
}

fn sign(keys: Vec<DkimKey>, msg: &str) -> Vec<u8> {
    let s = Signer::load(&[domain("example.com", keys)]).unwrap();
    s.sign(msg.as_bytes(), "example.com", NOW)
        .unwrap()
        .expect("example.com signs")
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

/// `tag=` value of the first DKIM-Signature, unfolded, spaces removed.
fn tag(signed: &[u8], name: &str) -> String {
    let unfolded = text(signed).replace("\r\n\t", " ");
    let first = unfolded.lines().next().unwrap();
    let value = first.strip_prefix("DKIM-Signature:").unwrap();
    value
        .split(';')
        .find_map(|t| {
            let (k, v) = t.split_once('=')?;
            (k.trim() == name).then(|| v.split_whitespace().collect::<String>())
        })
        .unwrap_or_else(|| panic!("no {name}= in {first}"))
}

#[test]
fn rsa_and_ed25519_signatures_verify() {
    let txt = StaticTxt::fixtures();
    for k in [rsa(), ed()] {
        let signed = sign(vec![k.clone()], MSG);
        assert!(
            text(&signed).starts_with("DKIM-Signature: v=1; a="),
            "{}",
            text(&signed)
        );
        assert!(text(&signed).ends_with(MSG));
        assert_eq!(
            verify(&signed, &txt),
            vec![DkimResult::Pass],
            "{}",
            k.selector
        );
        assert_eq!(tag(&signed, "d"), "example.com");
        assert_eq!(tag(&signed, "s"), k.selector);
        assert_eq!(tag(&signed, "c"), "relaxed/relaxed");
        assert_eq!(tag(&signed, "t"), NOW.to_string());
    }
}

#[test]
fn dual_signing_adds_one_header_per_key_in_order() {
    let signed = sign(vec![rsa(), ed()], MSG);
    let s = text(&signed);
    assert_eq!(s.matches("DKIM-Signature:").count(), 2);
    assert!(s.find("a=rsa-sha256").unwrap() < s.find("a=ed25519-sha256").unwrap());
    assert_eq!(
        verify(&signed, &StaticTxt::fixtures()),
        vec![DkimResult::Pass, DkimResult::Pass]
    );
}

#[test]
fn changes_after_signing_fail() {
    let txt = StaticTxt::fixtures();
    let signed = text(&sign(vec![rsa(), ed()], MSG)).to_string();
    let subject = signed.replace(
        "Subject: Your password reset",
        "Subject: Your password RESET",
    );
    assert!(
        verify(subject.as_bytes(), &txt)
            .iter()
            .all(|r| matches!(r, DkimResult::Fail(_)))
    );
    // From is oversigned: a second From: added in transit breaks it.
    let extra_from = signed.replace("To: bob@", "From: Mallory <m@evil.test>\r\nTo: bob@");
    assert!(
        verify(extra_from.as_bytes(), &txt)
            .iter()
            .all(|r| matches!(r, DkimResult::Fail(_)))
    );
    // Body changes: mail-auth reports a body-hash mismatch as Neutral.
    let body = signed.replace("Click the link.", "Click this link.");
    assert!(
        verify(body.as_bytes(), &txt)
            .iter()
            .all(|r| matches!(r, DkimResult::Neutral(_)))
    );
    // An unsigned header may be added without harm.
    let unsigned = signed.replace("X-Mailer: test", "X-Mailer: other");
    assert_eq!(
        verify(unsigned.as_bytes(), &txt),
        vec![DkimResult::Pass, DkimResult::Pass]
    );
}

#[test]
fn signed_header_list() {
    let signed = sign(vec![ed()], MSG);
    // h= lists present headers bottom-up, then the absent oversigned From.
    assert_eq!(tag(&signed, "h"), "Message-ID:Date:Subject:To:From:From");
    let mut all = String::new();
    for h in SIGNED_HEADERS.iter().skip(1) {
        all.push_str(&format!("{h}: v\r\n"));
    }
    let signed = sign(
        vec![ed()],
        &format!(
            "{}From: a@example.com\r\n\r\nx\r\n",
            all.replace("From: v\r\n", "")
        ),
    );
    let h = tag(&signed, "h");
    for name in SIGNED_HEADERS {
        assert!(h.split(':').any(|x| x == *name), "{name} not in {h}");
    }
    assert_eq!(h.split(':').filter(|x| *x == "From").count(), 2);
    assert!(!h.contains("X-Mailer"));
}

/// RFC 6376 §3.4.4 relaxed body canonicalization, written from the RFC.
fn rfc_relaxed_body(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut lines: Vec<String> = text
        .split("\r\n")
        .map(|l| {
            let mut out = String::new();
            let mut ws = false;
            for c in l.chars() {
                if c == ' ' || c == '\t' {
                    ws = true;
                } else {
                    if ws {
                        out.push(' ');
                    }
                    ws = false;
                    out.push(c);
                }
            }
            out
        })
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .iter()
        .flat_map(|l| format!("{l}\r\n").into_bytes())
        .collect()
}

#[test]
fn body_hash_matches_the_rfc_after_normalisation() {
    let bodies = [
        "Hello\r\n",
        "Hello\r\n  \r\n",
        "Hello\r\n\t\r\n \r\n\r\n",
        "Hello\r\n   ",
        "Hello  \r\n",
        "Hello  world \t\r\n",
        "Hello",
        "Hello\r\n\r\n\r\n",
        "  \r\n\t\r\n",
        "",
        "a\r\n \r\nb\r\n",
        "a\r\n\r\n \r\n",
    ];
    let txt = StaticTxt::fixtures();
    for body in bodies {
        let msg = format!("From: a@example.com\r\nTo: b@example.net\r\n\r\n{body}");
        let signed = sign(vec![ed()], &msg);
        let want = B64.encode(digest::digest(
            &digest::SHA256,
            &rfc_relaxed_body(body.as_bytes()),
        ));
        assert_eq!(tag(&signed, "bh"), want, "body {body:?}");
        assert_eq!(
            verify(&signed, &txt),
            vec![DkimResult::Pass],
            "body {body:?}"
        );
    }
    // The relayed message lost exactly the whitespace-only tail.
    let signed = sign(
        vec![ed()],
        "From: a@example.com\r\n\r\nHello\r\n \r\n\t\r\n",
    );
    assert!(
        text(&signed).ends_with("\r\n\r\nHello\r\n"),
        "{}",
        text(&signed)
    );
}

#[test]
fn mail_auth_bug_62_is_still_there() {
    // Guards the work-around: when this fails, mail-auth canonicalizes
    // trailing whitespace-only lines correctly and normalize.rs can go.
    let pem = std::fs::read(res("rsa2048_pkcs8.pem")).unwrap();
    let k = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::from_pem_slice(&pem).unwrap()).unwrap();
    let sig = DkimSigner::from_key(k)
        .domain("example.com")
        .selector("x")
        .headers(["From"])
        .sign(b"From: a@example.com\r\n\r\na\r\n  \r\n")
        .unwrap();
    let rfc = B64.encode(digest::digest(&digest::SHA256, b"a\r\n"));
    assert_ne!(B64.encode(&sig.bh), rfc);
}

#[test]
fn injected_clock_reproduces_mail_auth_sign_byte_for_byte() {
    let pem = std::fs::read(res("rsa2048_pkcs1.pem")).unwrap();
    let load =
        || RsaKey::<Sha256>::from_key_der(PrivateKeyDer::from_pem_slice(&pem).unwrap()).unwrap();
    let parsed = AuthenticatedMessage::parse(MSG.as_bytes()).unwrap();
    let theirs = DkimSigner::from_key(load())
        .domain("example.com")
        .selector("rsa2026")
        .headers(headers_to_sign(&parsed))
        .sign(MSG.as_bytes())
        .unwrap();
    let ours = sign_at(
        &SigningKey::Rsa(load()),
        "example.com",
        "rsa2026",
        &parsed,
        theirs.t,
    )
    .unwrap();
    assert_eq!(ours.to_header(), theirs.to_header());
}

#[test]
fn fixed_vectors() {
    let rsa_pkcs1 = key("rsa2026", "rsa2048_pkcs1.pem", DkimAlgorithm::RsaSha256);
    assert_eq!(
        text(&sign(vec![rsa_pkcs1, ed()], MSG)),
        format!("{RSA_VECTOR}{ED_VECTOR}{MSG}")
    );
    // The PKCS#8 file holds the same RSA key: same signature.
    assert_eq!(text(&sign(vec![rsa()], MSG)), format!("{RSA_VECTOR}{MSG}"));
    let vector = format!("{RSA_VECTOR}{ED_VECTOR}{MSG}");
    assert_eq!(
        verify(vector.as_bytes(), &StaticTxt::fixtures()),
        vec![DkimResult::Pass, DkimResult::Pass]
    );
}

/// Signature of [`MSG`] at [`NOW`] with `rsa2048_pkcs1.pem`.
const RSA_VECTOR: &str = concat!(
    "DKIM-Signature: v=1; a=rsa-sha256; s=rsa2026; d=example.com; c=relaxed/relaxed;\r\n",
    "\th=Message-ID:Date:Subject:To:From:From; t=1700000000; bh=G/jtoDGO3RXdluALtw\r\n",
    "\t7yBcDL+t9urBgqbk2stoJakzk=; b=I0EQeE00aIojs7gaUNq6JS6cwmy9/VMm/CSLeUWU9AeD8\r\n",
    "\t4KpLaC5JAr2rY+TFiWZBjCAuY+rPiy4zcKiDt07thtcUQkmLEkBmN2BU5e+F8zwAau3ylmfYUlV\r\n",
    "\t/0eOrJxHxVHiMaTH9cVDQ8P1xtpzUjHZETApzl3JcaKeyG8pU+n7EuTqbpvpMiG5G06oUkmdrpF\r\n",
    "\tDe4qzEidIsVqu3/UoKMeDxcoFR86LWtFTG8Oc8su1yvrJ/VtdJczqDA4iWvEPGh9QBw3cVvgbS7\r\n",
    "\tUqHqqzMdlRnjaIdchOu39W7rZcrrkTU2f+mBIsck9rZslNsA0+jF1Vp60UDXSPAphoopR63w==;\r\n",
);
/// Signature of [`MSG`] at [`NOW`] with `ed25519_pkcs8.pem`.
const ED_VECTOR: &str = concat!(
    "DKIM-Signature: v=1; a=ed25519-sha256; s=ed2026; d=example.com; c=relaxed/relaxed;\r\n",
    "\th=Message-ID:Date:Subject:To:From:From; t=1700000000; bh=G/jtoDGO3RXdluALtw\r\n",
    "\t7yBcDL+t9urBgqbk2stoJakzk=; b=bW91gpwJ5TWZmc3meuKINmE1jpR+yC2X3xHnH7XykZ66P\r\n",
    "\tZYyWrgCnugma1bWpaOgbO8VYFONafDxcmwGyWLsAw==;\r\n",
);

#[test]
fn domains_match_case_insensitively_and_exactly() {
    let s = Signer::load(&[
        domain("Example.COM", vec![ed()]),
        domain("nokeys.example", vec![]),
    ])
    .unwrap();
    assert!(s.signs_for("example.com") && s.signs_for("EXAMPLE.com."));
    assert!(!s.signs_for("sub.example.com") && !s.signs_for("nokeys.example"));
    assert_eq!(s.sign(MSG.as_bytes(), "other.example", NOW), Ok(None));
    assert_eq!(s.sign(MSG.as_bytes(), "sub.example.com", NOW), Ok(None));
    let signed = s.sign(MSG.as_bytes(), "EXAMPLE.COM", NOW).unwrap().unwrap();
    assert_eq!(tag(&signed, "d"), "example.com");
    assert_eq!(
        s.sign(b"To: b@example.net\r\n\r\nhi\r\n", "example.com", NOW),
        Err(DkimError::MissingFrom)
    );
    fn shared<T: Send + Sync>(_: &T) {}
    shared(&s);
}

#[test]
fn load_reports_every_problem() {
    let problems = Signer::load(&[
        domain(
            "example.com",
            vec![
                rsa(),
                key("small", "rsa1024_pkcs8.pem", DkimAlgorithm::RsaSha256),
                key("wrong", "ed25519_pkcs8.pem", DkimAlgorithm::RsaSha256),
                key("gone", "nope.pem", DkimAlgorithm::Ed25519Sha256),
                key("text", "not_a_key.pem", DkimAlgorithm::Ed25519Sha256),
                key("rsa2026", "rsa2048_pkcs1.pem", DkimAlgorithm::RsaSha256),
                key("bad_sel", "rsa2048_pkcs1.pem", DkimAlgorithm::RsaSha256),
            ],
        ),
        domain("example.com.", vec![]),
    ])
    .unwrap_err();
    assert_eq!(problems.len(), 7, "{problems:#?}");
    for (p, want) in problems.iter().zip([
        "\"small\"",
        "\"wrong\"",
        "\"gone\"",
        "\"text\"",
        "used twice",
        "\"bad_sel\"",
        "listed twice",
    ]) {
        assert!(p.contains(want), "{p} lacks {want}");
    }
    assert!(problems[0].contains("rsa1024_pkcs8.pem") && problems[0].contains("1024 bits"));
}

/// The TXT value of a zone-file line: its quoted strings joined.
fn txt_value(line: &str) -> String {
    line.split('"').skip(1).step_by(2).collect()
}

#[test]
fn generated_keys_load_and_verify_against_their_record() {
    let dir = tempfile::tempdir().unwrap();
    let txt = StaticTxt::default();
    let mut keys = Vec::new();
    for (alg, sel) in [
        (DkimAlgorithm::RsaSha256, "gen-rsa"),
        (DkimAlgorithm::Ed25519Sha256, "gen-ed"),
    ] {
        let (pem, record) = keygen(alg, "example.com", sel).unwrap();
        let prefix = format!("{sel}._domainkey.example.com. IN TXT \"v=DKIM1; k=");
        assert!(record.starts_with(&prefix), "{record}");
        assert!(
            record.split('"').skip(1).step_by(2).all(|s| s.len() <= 255),
            "{record}"
        );
        let value = txt_value(&record);
        let p = value.split("p=").nth(1).unwrap();
        let public = B64.decode(p).unwrap();
        match alg {
            DkimAlgorithm::RsaSha256 => {
                assert!(
                    record.contains("k=rsa;") && record.contains("\" \""),
                    "split: {record}"
                );
                // SubjectPublicKeyInfo, rsaEncryption OID.
                assert!(
                    public
                        .windows(9)
                        .any(|w| w == [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01])
                );
            }
            DkimAlgorithm::Ed25519Sha256 => assert_eq!(public.len(), 32),
        }
        txt.add(sel, "example.com", &value);
        let path = dir.path().join(format!("{sel}.pem"));
        std::fs::write(&path, pem).unwrap();
        keys.push(DkimKey {
            selector: sel.into(),
            key: path,
            algorithm: alg,
        });
    }
    let signed = sign(keys, MSG);
    assert_eq!(
        verify(&signed, &txt),
        vec![DkimResult::Pass, DkimResult::Pass]
    );
}
