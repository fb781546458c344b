//! REQUIRETLS (RFC 8689).

use std::time::{Duration, Instant};

use laneway_bench::sink::SinkConfig;
use laneway_tests::dns::TestDns;
use laneway_tests::smtp::Client;
use laneway_tests::tls::{TestCa, self_signed_server};
use laneway_tests::{DEADLINE, Daemon};

use super::*;

/// RFC 8689: a message that carries REQUIRETLS — the SMTP MAIL
/// parameter over STARTTLS, `"require_tls": true` in the API, or a
/// `[[domain]] require_tls` sender — leaves only over TLS with a verified
/// certificate to a host that offers REQUIRETLS, with the parameter passed
/// on; anything else bounces with 5.7.10, in a notice that returns only the
/// headers and travels with REQUIRETLS itself. Other mail is unaffected.
#[test]
fn requiretls_leaves_only_over_verified_tls_and_bounces_5_7_10_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let listener_cert = laneway_tests::tls::TestCert::generate(dir.path());
    let dns = TestDns::start();
    let good = sink(SinkConfig {
        tls: Some(ca.server_config("mx.good.test")),
        requiretls: true,
        ..Default::default()
    });
    let no_requiretls = sink_beside(
        &good,
        "127.0.0.2",
        SinkConfig {
            tls: Some(ca.server_config("mx.noreq.test")),
            ..Default::default()
        },
    );
    let plain = sink_beside(&good, "127.0.0.3", SinkConfig::default());
    let untrusted = sink_beside(
        &good,
        "127.0.0.4",
        SinkConfig {
            tls: Some(self_signed_server("mx.untrusted.test")),
            requiretls: true,
            ..Default::default()
        },
    );
    for (domain, host, ip) in [
        ("good.test", "mx.good.test", "127.0.0.1"),
        ("noreq.test", "mx.noreq.test", "127.0.0.2"),
        ("plain.test", "mx.plain.test", "127.0.0.3"),
        ("untrusted.test", "mx.untrusted.test", "127.0.0.4"),
    ] {
        dns.mx(domain, 10, host);
        dns.a(host, ip);
    }
    // the senders' own mail (the notices) goes to the good host
    dns.mx("sender.test", 10, "mx.good.test");
    dns.mx("health.test", 10, "mx.good.test");
    let (token, key_cfg) = crate::api::new_key("app", "send", "");
    let extra = format!(
        "{}[api]\nbind = \"127.0.0.1:0\"\n{key_cfg}[[domain]]\nname = \"health.test\"\nrequire_tls = true\n",
        listener_cert.config()
    );
    let outbound = format!("ca_file = \"{}\"\n", ca.ca_file.display());
    let d = Daemon::start(&relay_ob(&dns, good.addr.port(), &outbound, &extra));

    // SMTP: not offered and refused in plaintext; offered and taken over TLS
    let mut c = Client::hello(d.addr("in"));
    let ehlo = c.cmd("EHLO client.test", "250");
    assert!(!ehlo.contains("REQUIRETLS"), "{ehlo}");
    c.cmd("MAIL FROM:<a@sender.test> REQUIRETLS", "530 5.7.10");
    c.cmd("STARTTLS", "220");
    let mut c = c.start_tls(listener_cert.client_config());
    let ehlo = c.cmd("EHLO client.test", "250");
    assert!(ehlo.contains("REQUIRETLS"), "{ehlo}");
    c.cmd("MAIL FROM:<a@sender.test> REQUIRETLS", "250");
    for r in [
        "x@good.test",
        "x@noreq.test",
        "x@plain.test",
        "x@untrusted.test",
    ] {
        c.cmd(&format!("RCPT TO:<{r}>"), "250");
    }
    c.cmd("DATA", "354");
    c.send(b"From: a@sender.test\r\nSubject: lab results\r\n\r\nconfidential body\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("250"), "{r}");

    // the API field
    let (st, v) = laneway_tests::http::api(
        d.addr("api"),
        "POST",
        "/api/v1/messages",
        &token,
        Some(&serde_json::json!({
            "from": "app@sender.test", "to": ["y@good.test", "y@plain.test"],
            "subject": "api", "text": "confidential body", "require_tls": true
        })),
    );
    assert_eq!(st, 202, "{v}");
    // a require_tls sender domain, submitted in plaintext by a trusted client
    submit(
        &d,
        "a@health.test",
        &["z@good.test", "z@plain.test"],
        4,
        "confidential body\r\n",
    );
    // and ordinary mail still goes to the plaintext host
    submit(&d, "a@sender.test", &["w@plain.test"], 4, "ordinary\r\n");

    let failed = [
        "x@noreq.test",
        "x@plain.test",
        "x@untrusted.test",
        "y@plain.test",
        "z@plain.test",
    ];
    let ev = wait_events(&d, "every REQUIRETLS outcome", |e| {
        let done = |rcpt: &str, result: &str| {
            e.iter()
                .any(|e| e["recipient"] == rcpt && e["type"] == result)
        };
        failed.iter().all(|r| done(r, "bounce"))
            && ["x@good.test", "y@good.test", "z@good.test", "w@plain.test"]
                .iter()
                .all(|r| done(r, "delivery"))
    });
    for r in failed {
        let e = ev
            .iter()
            .find(|e| e["recipient"] == r && e["type"] == "bounce")
            .unwrap();
        assert!(
            e["description"].as_str().unwrap().starts_with("5.7.10"),
            "{e}"
        );
    }
    assert!(
        !ev.iter().any(|e| e["type"] == "transient_failure"
            && e["recipient"]
                .as_str()
                .is_some_and(|r| r.starts_with(['x', 'y', 'z']))),
        "no deferral on the way: {ev:?}"
    );
    for r in ["x@good.test", "y@good.test", "z@good.test"] {
        let e = ev
            .iter()
            .find(|e| e["recipient"] == r && e["type"] == "delivery")
            .unwrap();
        assert_eq!(e["tls"]["policy"], "requiretls", "{e}");
        assert!(
            e["tls"]["version"].as_str().unwrap().starts_with("TLSv1."),
            "{e}"
        );
        let m = good
            .messages()
            .into_iter()
            .find(|m| m.rcpts.iter().any(|x| x == r))
            .unwrap();
        assert!(m.tls, "{r} went over TLS");
        assert!(m.mail_line.contains(" REQUIRETLS"), "{}", m.mail_line);
    }
    assert_eq!(no_requiretls.count(), 0, "nothing sent without REQUIRETLS");
    assert_eq!(untrusted.count(), 0, "nothing sent to an unverified host");
    let plain_msgs = plain.messages();
    assert_eq!(
        plain_msgs.len(),
        1,
        "only the ordinary message in plaintext"
    );
    assert_eq!(plain_msgs[0].rcpts, ["w@plain.test"]);
    assert!(!plain_msgs[0].mail_line.contains("REQUIRETLS"));

    // the notices: to the senders, REQUIRETLS themselves, headers only
    let notices_complete = || {
        let notices: Vec<String> = good
            .messages()
            .iter()
            .filter(|m| m.from.is_empty())
            .map(text)
            .collect();
        failed.iter().all(|r| notices.iter().any(|n| n.contains(r)))
    };
    let deadline = Instant::now() + DEADLINE;
    while !notices_complete() {
        // say what happened instead of only that it timed out
        assert!(
            Instant::now() < deadline,
            "no notice for every failed recipient; events: {:#?}\nlog: {:#?}",
            events(&d),
            d.logs()
                .iter()
                .filter(|l| l.contains("DSN") || l.contains("notice") || l.contains("WARN"))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for m in good.messages().iter().filter(|m| m.from.is_empty()) {
        let t = text(m);
        assert!(m.mail_line.contains(" REQUIRETLS"), "{}", m.mail_line);
        assert!(t.contains("5.7.10"), "{t}");
        assert!(t.contains("text/rfc822-headers"), "{t}");
        assert!(!t.contains("confidential body"), "{t}");
    }
}
