//! MTA-STS (RFC 8461) and TLS reporting (RFC 8460).

use laneway_bench::sink::SinkConfig;
use laneway_tests::dns::TestDns;
use laneway_tests::tls::{TestCa, self_signed_server};
use laneway_tests::{DEADLINE, Daemon, eventually};

use super::*;

/// MTA-STS (RFC 8461): policies fetched over HTTPS from a policy
/// host with a certificate of the test CA. Enforce: only the named MX
/// hosts, only over verified TLS, else deferred and nothing sent. Testing:
/// delivered as usual (and logged). A new TXT id fetches the policy again.
#[test]
fn mta_sts_policies_are_enforced_tested_and_refreshed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let dns = TestDns::start();
    let secure = sink(SinkConfig {
        tls: Some(ca.server_config("mx.secure.test")),
        ..Default::default()
    });
    let plain = sink_beside(&secure, "127.0.0.3", SinkConfig::default());
    let untrusted = sink_beside(
        &secure,
        "127.0.0.4",
        SinkConfig {
            tls: Some(self_signed_server("mx.untrusted.test")),
            ..Default::default()
        },
    );
    dns.a("mx.secure.test", "127.0.0.1");
    dns.a("mx.plain.test", "127.0.0.3");
    dns.a("mx.untrusted.test", "127.0.0.4");
    let policy = |mode: &str, mx: &str| {
        format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
    };
    // (recipient domain, its MX host, policy mode, policy mx pattern)
    let domains = [
        (
            "enforce-ok.test",
            "mx.secure.test",
            "enforce",
            "*.secure.test",
        ),
        (
            "enforce-bad.test",
            "mx.plain.test",
            "enforce",
            "mx.secure.test",
        ),
        (
            "enforce-untrusted.test",
            "mx.untrusted.test",
            "enforce",
            "mx.untrusted.test",
        ),
        ("testing.test", "mx.plain.test", "testing", "mx.secure.test"),
        (
            "testing-untrusted.test",
            "mx.untrusted.test",
            "testing",
            "mx.untrusted.test",
        ),
    ];
    let mut servers = Vec::new();
    let mut port = 0;
    for (i, (domain, mx, mode, pattern)) in domains.iter().enumerate() {
        dns.mx(domain, 10, mx);
        dns.txt(&format!("_mta-sts.{domain}"), "v=STSv1; id=1;");
        let ip = format!("127.0.0.{}", 10 + i);
        dns.a(&format!("mta-sts.{domain}"), &ip);
        let s = laneway_tests::https::HttpsServer::start(
            format!("{ip}:{port}").parse().unwrap(),
            ca.server_config(&format!("mta-sts.{domain}")),
            200,
            &policy(mode, pattern),
        );
        port = s.addr.port();
        servers.push(s);
    }
    // a domain whose policy host answers 404 has no policy
    dns.mx("nopolicy.test", 10, "mx.plain.test");
    dns.txt("_mta-sts.nopolicy.test", "v=STSv1; id=1;");
    dns.a("mta-sts.nopolicy.test", "127.0.0.20");
    let missing = laneway_tests::https::HttpsServer::start(
        format!("127.0.0.20:{port}").parse().unwrap(),
        ca.server_config("mta-sts.nopolicy.test"),
        404,
        "not here",
    );
    // TLS reports (RFC 8460) for the two enforce domains and the testing
    // one go to a report mailbox
    let reports = sink_beside(&secure, "127.0.0.30", SinkConfig::default());
    dns.mx("reports.test", 10, "mx.reports.test");
    dns.a("mx.reports.test", "127.0.0.30");
    for domain in [
        "enforce-bad.test",
        "enforce-ok.test",
        "testing.test",
        "testing-untrusted.test",
    ] {
        dns.txt(
            &format!("_smtp._tls.{domain}"),
            "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test",
        );
    }
    let outbound = format!(
        "ca_file = \"{}\"\nmta_sts_port = {port}\ntls_reports = true\ntls_report_interval = \"1s\"\n",
        ca.ca_file.display()
    );
    let d = Daemon::start(&relay_ob(&dns, secure.addr.port(), &outbound, ""));
    for (domain, ..) in &domains {
        submit(&d, "a@sender.test", &[&format!("x@{domain}")], 4, "sts\r\n");
    }
    submit(&d, "a@sender.test", &["x@nopolicy.test"], 4, "sts\r\n");

    let ev = wait_events(&d, "MTA-STS outcomes", |e| {
        let seen = |rcpt: &str, result: &str| {
            e.iter()
                .any(|e| e["recipient"] == rcpt && e["type"] == result)
        };
        seen("x@enforce-ok.test", "delivery")
            && seen("x@testing.test", "delivery")
            && seen("x@testing-untrusted.test", "delivery")
            && seen("x@nopolicy.test", "delivery")
            && seen("x@enforce-bad.test", "transient_failure")
            && seen("x@enforce-untrusted.test", "transient_failure")
    });
    let first = |rcpt: &str| ev.iter().find(|e| e["recipient"] == rcpt).unwrap().clone();
    let ok = first("x@enforce-ok.test");
    assert_eq!(ok["tls"]["policy"], "mta-sts", "{ok}");
    assert!(
        ok["tls"]["version"].as_str().unwrap().starts_with("TLSv1."),
        "{ok}"
    );
    assert_eq!(secure.count(), 1);
    assert!(secure.messages()[0].tls);
    let bad = first("x@enforce-bad.test");
    assert!(
        bad["description"].as_str().unwrap().starts_with("4.7.5"),
        "{bad}"
    );
    let untrusted_ev = first("x@enforce-untrusted.test");
    assert!(
        untrusted_ev["description"]
            .as_str()
            .unwrap()
            .starts_with("4.7.5"),
        "{untrusted_ev}"
    );
    let to_untrusted: Vec<Vec<String>> = untrusted
        .messages()
        .iter()
        .map(|m| m.rcpts.clone())
        .collect();
    assert_eq!(
        to_untrusted,
        vec![vec!["x@testing-untrusted.test".to_string()]],
        "only the testing-mode message reached the host failing verification"
    );
    let testing = first("x@testing.test");
    assert_eq!(testing["tls"]["policy"], "mta-sts-testing", "{testing}");
    assert!(d.wait_log(|l| l.contains("MTA-STS (testing)")));
    // testing mode with a certificate the policy would refuse: delivered
    // (without the check), the failure reported below
    let e = first("x@testing-untrusted.test");
    assert_eq!(e["type"], "delivery", "{e}");
    assert_eq!(e["tls"]["policy"], "mta-sts-testing", "{e}");
    let nopolicy = first("x@nopolicy.test");
    assert_eq!(nopolicy["tls"]["policy"], "opportunistic", "{nopolicy}");
    assert!(missing.hits() >= 1, "the policy host was asked");
    // testing.test and nopolicy.test went to the plaintext host; the
    // enforce-bad message did not
    let plain_rcpts: Vec<String> = plain
        .messages()
        .iter()
        .flat_map(|m| m.rcpts.clone())
        .collect();
    assert!(!plain_rcpts.contains(&"x@enforce-bad.test".to_string()));
    assert!(plain_rcpts.contains(&"x@testing.test".to_string()));

    // the policy of enforce-bad.test changes to mode none under a new id:
    // fetched again, and the deferred message is delivered
    let hits = servers[1].hits();
    servers[1].set(200, "version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n");
    dns.remove("_mta-sts.enforce-bad.test");
    dns.txt("_mta-sts.enforce-bad.test", "v=STSv1; id=2;");
    assert!(
        plain.wait_blocking(3, DEADLINE) >= 3,
        "the deferred message arrives"
    );
    assert!(servers[1].hits() > hits, "fetched again for the new id");
    // the unchanged policies were fetched once each
    assert_eq!(servers[0].hits(), 1);

    // the TLS reports: gzipped RFC 8460 JSON, one per policy domain
    let report_for = |domain: &str| -> Option<serde_json::Value> {
        reports.messages().iter().map(text).find_map(|t| {
            if !t.contains(&format!("TLS-Report-Domain: {domain}")) {
                return None;
            }
            assert!(t.contains("report-type=\"tlsrpt\""), "{t}");
            let part = t.split("Content-Type: application/tlsrpt+gzip").nth(1)?;
            let b64: String = part
                .split("\r\n\r\n")
                .nth(1)?
                .lines()
                .take_while(|l| !l.starts_with("--") && !l.is_empty())
                .collect();
            use base64::Engine;
            let gz = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64");
            let mut json = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut json)
                .expect("gzip");
            Some(serde_json::from_str(&json).expect("JSON"))
        })
    };
    eventually("TLS reports for the three policy domains", || {
        ["enforce-bad.test", "enforce-ok.test", "testing.test"]
            .iter()
            .all(|d| report_for(d).is_some())
    });
    let bad = report_for("enforce-bad.test").unwrap();
    let p = &bad["policies"][0];
    assert_eq!(p["policy"]["policy-type"], "sts", "{bad}");
    assert_eq!(p["policy"]["policy-domain"], "enforce-bad.test");
    assert_eq!(p["policy"]["mx-host"][0], "mx.secure.test");
    assert!(
        p["summary"]["total-failure-session-count"]
            .as_u64()
            .unwrap()
            >= 1,
        "{bad}"
    );
    assert_eq!(
        p["failure-details"][0]["result-type"], "validation-failure",
        "{bad}"
    );
    assert_eq!(
        p["failure-details"][0]["receiving-mx-hostname"],
        "mx.plain.test"
    );
    for key in ["organization-name", "contact-info", "report-id"] {
        assert!(bad[key].is_string(), "{key}: {bad}");
    }
    assert!(
        bad["date-range"]["start-datetime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let ok = report_for("enforce-ok.test").unwrap();
    assert!(
        ok["policies"][0]["summary"]["total-successful-session-count"]
            .as_u64()
            .unwrap()
            >= 1,
        "{ok}"
    );
    let testing = report_for("testing.test").unwrap();
    assert!(
        testing["policies"][0]["summary"]["total-failure-session-count"]
            .as_u64()
            .unwrap()
            >= 1,
        "testing mode reports the host outside its policy: {testing}"
    );
    eventually("the testing-mode certificate failure reported", || {
        report_for("testing-untrusted.test").is_some()
    });
    let cert = report_for("testing-untrusted.test").unwrap();
    assert_eq!(
        cert["policies"][0]["failure-details"][0]["result-type"], "certificate-not-trusted",
        "{cert}"
    );
}
