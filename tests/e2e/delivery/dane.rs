//! DANE (RFC 7672).

use laneway_bench::sink::SinkConfig;
use laneway_tests::Daemon;
use laneway_tests::dns::TestDns;
use laneway_tests::smtp::Client;

use super::*;

/// DANE (RFC 7672). The test DNS server plays the local
/// validating resolver: it sets the AD bit on the names marked secure, and
/// Laneway (`[dns] dnssec = true`) trusts that bit, as Postfix does.
#[test]
fn dane_tlsa_records_decide_and_never_fall_back_to_plaintext() {
    use rcgen::PublicKeyData;
    let dns = TestDns::start();
    // a self-signed certificate no CA vouches for: only DANE-EE makes it good
    let self_signed = |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().clone();
        let config = laneway_tests::tls::server_config(der.clone(), key.serialize_der());
        (config, der.to_vec(), key.subject_public_key_info())
    };
    let (ok_tls, _, ok_spki) = self_signed("mx.dane.test");
    let (bad_tls, ..) = self_signed("mx.danebad.test");
    let (insecure_tls, ..) = self_signed("mx.insecure.test");
    let (_, other_cert, _) = self_signed("elsewhere.test");
    let ok = sink(SinkConfig {
        tls: Some(ok_tls),
        ..Default::default()
    });
    let port = ok.addr.port();
    let bad = sink_beside(
        &ok,
        "127.0.0.2",
        SinkConfig {
            tls: Some(bad_tls),
            ..Default::default()
        },
    );
    let bogus = sink_beside(&ok, "127.0.0.3", SinkConfig::default());
    let insecure = sink_beside(
        &ok,
        "127.0.0.4",
        SinkConfig {
            tls: Some(insecure_tls),
            ..Default::default()
        },
    );
    // (domain, MX host, address, MX answer secure)
    for (domain, host, ip, secure) in [
        ("dane-ok.test", "mx.dane.test", "127.0.0.1", true),
        ("dane-bad.test", "mx.danebad.test", "127.0.0.2", true),
        ("dane-bogus.test", "mx.bogus.test", "127.0.0.3", true),
        ("insecure.test", "mx.insecure.test", "127.0.0.4", false),
    ] {
        dns.mx(domain, 10, host);
        dns.a(host, ip);
        if secure {
            dns.secure(domain);
        }
    }
    let tlsa = |host: &str| format!("_{port}._tcp.{host}");
    // DANE-EE by public key, exact match
    dns.tlsa(&tlsa("mx.dane.test"), 3, 1, 0, &ok_spki);
    dns.secure(&tlsa("mx.dane.test"));
    // a record for some other certificate
    dns.tlsa(&tlsa("mx.danebad.test"), 3, 0, 0, &other_cert);
    dns.secure(&tlsa("mx.danebad.test"));
    // the resolver cannot validate the TLSA answer
    dns.servfail(&tlsa("mx.bogus.test"));
    // a TLSA record behind an insecure MX answer does not count
    dns.tlsa(&tlsa("mx.insecure.test"), 3, 0, 0, &other_cert);
    dns.secure(&tlsa("mx.insecure.test"));
    let cfg =
        relay_ob(&dns, port, "dane = true\n", "").replace("[dns]\n", "[dns]\ndnssec = true\n");
    let d = Daemon::start(&cfg);
    for domain in [
        "dane-ok.test",
        "dane-bad.test",
        "dane-bogus.test",
        "insecure.test",
    ] {
        submit(
            &d,
            "a@sender.test",
            &[&format!("x@{domain}")],
            4,
            "dane\r\n",
        );
    }
    // RFC 8689 §5: a trusted sender may waive the recipient's policy
    let mut c = Client::hello(d.addr("in"));
    let r = c.send_mail(
        "a@sender.test",
        &["y@dane-bad.test"],
        "From: a@sender.test\r\nTLS-Required: No\r\nSubject: not secret\r\n\r\nnewsletter\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    let ev = wait_events(&d, "DANE outcomes", |e| {
        let seen = |rcpt: &str, result: &str| {
            e.iter()
                .any(|e| e["recipient"] == rcpt && e["type"] == result)
        };
        seen("x@dane-ok.test", "delivery")
            && seen("x@insecure.test", "delivery")
            && seen("y@dane-bad.test", "delivery")
            && seen("x@dane-bad.test", "transient_failure")
            && seen("x@dane-bogus.test", "transient_failure")
    });
    let first = |rcpt: &str| ev.iter().find(|e| e["recipient"] == rcpt).unwrap().clone();
    let e = first("x@dane-ok.test");
    assert_eq!(e["tls"]["policy"], "dane", "{e}");
    assert!(
        e["tls"]["version"].as_str().unwrap().starts_with("TLSv1."),
        "{e}"
    );
    assert!(ok.messages()[0].tls);
    for rcpt in ["x@dane-bad.test", "x@dane-bogus.test"] {
        let e = first(rcpt);
        assert!(
            e["description"].as_str().unwrap().starts_with("4.7.5"),
            "{e}"
        );
    }
    let e = first("y@dane-bad.test");
    assert_eq!(e["tls"]["policy"], "tls-required-no", "{e}");
    let waived: Vec<Vec<String>> = bad.messages().iter().map(|m| m.rcpts.clone()).collect();
    assert_eq!(
        waived,
        vec![vec!["y@dane-bad.test".to_string()]],
        "only the TLS-Required: No message reached the host whose certificate fails TLSA"
    );
    assert_eq!(
        bogus.count(),
        0,
        "nothing to a host whose TLSA lookup failed"
    );
    let e = first("x@insecure.test");
    assert_eq!(e["tls"]["policy"], "opportunistic", "{e}");
    assert_eq!(insecure.count(), 1);
}
