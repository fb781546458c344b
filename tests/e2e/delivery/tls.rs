//! Outbound TLS policies: opportunistic, verify, required, none.

use laneway_bench::sink::SinkConfig;
use laneway_tests::dns::TestDns;
use laneway_tests::tls::{TestCa, self_signed_server};
use laneway_tests::{DEADLINE, Daemon};

use super::*;

#[test]
fn tls_policies() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let dns = TestDns::start();
    let good = sink(SinkConfig {
        tls: Some(ca.server_config("mx.good.test")),
        ..Default::default()
    });
    let untrusted = sink_beside(
        &good,
        "127.0.0.2",
        SinkConfig {
            tls: Some(self_signed_server("mx.untrusted.test")),
            ..Default::default()
        },
    );
    let plain = sink_beside(&good, "127.0.0.3", SinkConfig::default());
    dns.mx("good.test", 10, "mx.good.test");
    dns.a("mx.good.test", "127.0.0.1");
    dns.mx("untrusted.test", 10, "mx.untrusted.test");
    dns.a("mx.untrusted.test", "127.0.0.2");
    dns.mx("plain.test", 10, "mx.plain.test");
    dns.a("mx.plain.test", "127.0.0.3");
    dns.mx("plain-required.test", 10, "mx.plain.test");
    dns.mx("plain-none.test", 10, "mx.plain.test");
    // opportunistic by default; verify for good.test (our CA) and for
    // untrusted.test (unknown CA); required for a plaintext-only host.
    let outbound = format!("ca_file = \"{}\"\n", ca.ca_file.display());
    let dests = r#"
[[destination]]
domain = "good.test"
tls = "verify"
[[destination]]
domain = "untrusted.test"
tls = "verify"
[[destination]]
domain = "plain-required.test"
tls = "required"
[[destination]]
domain = "plain-none.test"
tls = "none"
"#;
    let cfg = relay_ob(&dns, good.addr.port(), &outbound, dests);
    let d = Daemon::start(&cfg);
    submit(&d, "a@sender.test", &["x@good.test"], 4, "verified\r\n");
    submit(
        &d,
        "a@sender.test",
        &["x@untrusted.test"],
        4,
        "untrusted\r\n",
    );
    submit(
        &d,
        "a@sender.test",
        &["x@plain.test"],
        4,
        "opportunistic\r\n",
    );
    submit(
        &d,
        "a@sender.test",
        &["x@plain-required.test"],
        4,
        "required\r\n",
    );
    submit(&d, "a@sender.test", &["x@plain-none.test"], 4, "none\r\n");
    assert_eq!(good.wait_blocking(1, DEADLINE), 1);
    assert!(good.messages()[0].tls, "verify mode delivers over TLS");
    assert_eq!(plain.wait_blocking(2, DEADLINE), 2);
    assert!(plain.messages().iter().all(|m| !m.tls));
    let ev = wait_events(&d, "deferrals for the TLS failures", |e| {
        e.iter()
            .any(|e| e["recipient"] == "x@untrusted.test" && e["type"] == "transient_failure")
            && e.iter().any(|e| {
                e["recipient"] == "x@plain-required.test" && e["type"] == "transient_failure"
            })
    });
    let r = |rcpt: &str| {
        ev.iter()
            .find(|e| e["recipient"] == rcpt && e["type"] == "transient_failure")
            .map(|e| e["description"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(
        r("x@untrusted.test").starts_with("4.7.5"),
        "{}",
        r("x@untrusted.test")
    );
    assert!(
        r("x@plain-required.test").starts_with("4.7.4"),
        "{}",
        r("x@plain-required.test")
    );
    assert_eq!(
        untrusted.count(),
        0,
        "nothing sent to a host that failed verification"
    );
    let delivered_tls = ev
        .iter()
        .find(|e| e["recipient"] == "x@good.test" && e["type"] == "delivery")
        .unwrap();
    assert!(
        delivered_tls["tls"]["version"]
            .as_str()
            .unwrap()
            .starts_with("TLSv1."),
        "{delivered_tls}"
    );
}

#[test]
fn opportunistic_tls_falls_back_to_plaintext_when_the_handshake_fails() {
    let dns = TestDns::start();
    // offers STARTTLS but the handshake cannot succeed: it demands a client
    // certificate, which Laneway does not have
    let s = sink(SinkConfig {
        tls: Some(laneway_tests::tls::client_auth_server("mx.flaky.test")),
        ..Default::default()
    });
    dns.mx("flaky.test", 10, "mx.flaky.test");
    dns.a("mx.flaky.test", "127.0.0.1");
    let d = Daemon::start(&relay(&dns, s.addr.port(), ""));
    submit(&d, "a@sender.test", &["x@flaky.test"], 4, "x\r\n");
    assert_eq!(s.wait_blocking(1, DEADLINE), 1);
}
