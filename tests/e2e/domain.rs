//! `laneway domain check`: a sender domain's DNS checked against a real DNS
//! server on loopback, with a right, a wrong and a missing case of each
//! record. The egress addresses are TEST-NET-1 (RFC 5737) ones, seen only
//! as DNS data: nothing is sent (hickory answers reverse lookups of
//! loopback addresses itself, as `localhost`, so they cannot be used).

use std::collections::BTreeMap;
use std::process::Command;

use laneway_tests::dns::TestDns;
use laneway_tests::{Daemon, laneway_bin};

/// A DKIM key made by `laneway dkim keygen`; its TXT record value.
fn keygen(dir: &std::path::Path, selector: &str) -> String {
    let out = Command::new(laneway_bin())
        .args([
            "dkim",
            "keygen",
            "--domain",
            "shop.test",
            "--selector",
            selector,
        ])
        .args(["--algorithm", "ed25519-sha256", "--out"])
        .arg(dir.join(format!("{selector}.pem")))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split('"')
        .skip(1)
        .step_by(2)
        .collect()
}

fn config(dns: &TestDns, dir: &std::path::Path) -> String {
    let secret = dir.join("bounce.secret");
    std::fs::write(&secret, "a secret of at least thirty-two bytes, for VERP").unwrap();
    format!(
        r#"
[server]
hostname = "relay.test"
spool_dir = "{{dir}}/spool"
[[listener]]
name = "in"
bind = "127.0.0.1:0"
[[outbound.pool]]
name = "bulk"
lanes = "0-4"
source = ["192.0.2.10"]
helo_name = "bulk.relay.test"
[auth]
bounce_secret_file = "{}"
[[domain]]
name = "shop.test"
bounce_domain = "bounces.shop.test"
[[domain.dkim]]
selector = "s1"
key = "{}"
algorithm = "ed25519-sha256"
{}
"#,
        secret.display(),
        dir.join("s1.pem").display(),
        dns.config()
    )
}

/// Each check's status and expected record, by check.
type ByCheck = BTreeMap<String, (String, Option<String>)>;

/// Runs the check; the exit status and each check's status.
fn check(d: &Daemon) -> (bool, ByCheck, serde_json::Value) {
    let out = d.cli(&["domain", "check", "shop.test", "--json"]);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let by = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_string(),
                (
                    c["status"].as_str().unwrap().to_string(),
                    c["expected"].as_str().map(str::to_string),
                ),
            )
        })
        .collect();
    (out.status.success(), by, v)
}

const CHECKS: [&str; 8] = [
    "bounce_mx",
    "spf",
    "dkim:s1",
    "dmarc",
    "ptr:192.0.2.10",
    "ptr:192.0.2.11",
    "mta_sts",
    "tls_rpt",
];

#[test]
fn domain_check_tells_right_wrong_and_missing_records_apart() {
    let dns = TestDns::start();
    let dir = tempfile::tempdir().unwrap();
    let dkim = keygen(dir.path(), "s1");
    let d = Daemon::start(&config(&dns, dir.path()));
    // the default pool (lanes 5-9) names no source: it sends from relay.test's address
    let base = |dns: &TestDns| {
        dns.a("relay.test", "192.0.2.11");
    };

    // right
    base(&dns);
    dns.mx("bounces.shop.test", 10, "relay.test");
    dns.txt(
        "bounces.shop.test",
        "v=spf1 ip4:192.0.2.10 a:relay.test -all",
    );
    dns.txt("s1._domainkey.shop.test", &dkim);
    dns.txt("_dmarc.shop.test", "v=DMARC1; p=reject; adkim=s");
    dns.ptr("192.0.2.10", "bulk.relay.test");
    dns.a("bulk.relay.test", "192.0.2.10");
    dns.ptr("192.0.2.11", "relay.test");
    dns.txt("_mta-sts.shop.test", "v=STSv1; id=20261202");
    dns.txt(
        "_smtp._tls.shop.test",
        "v=TLSRPTv1; rua=mailto:tls@shop.test",
    );
    let (ok, by, v) = check(&d);
    for c in CHECKS {
        assert_eq!(by.get(c).map(|s| s.0.as_str()), Some("ok"), "{c}: {v:#}");
    }
    assert_eq!(by.len(), CHECKS.len(), "{v:#}");
    assert!(ok, "every check ok: exit status 0");
    assert_eq!(
        (&v["ok"], &v["wrong"], &v["missing"]),
        (&8.into(), &0.into(), &0.into())
    );
    // a CNAME to the relay serves as well as an MX
    dns.remove("bounces.shop.test");
    dns.cname("bounces.shop.test", "relay.test");
    dns.txt(
        "bounces.shop.test",
        "v=spf1 ip4:192.0.2.10 a:relay.test -all",
    );
    assert_eq!(check(&d).1["bounce_mx"].0, "ok");

    // wrong
    dns.clear();
    base(&dns);
    dns.mx("bounces.shop.test", 10, "mx.elsewhere.test");
    dns.txt("bounces.shop.test", "v=spf1 ip4:192.0.2.10 -all");
    dns.txt(
        "s1._domainkey.shop.test",
        "v=DMARC1; k=ed25519; p=AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAA",
    );
    dns.txt("_dmarc.shop.test", "v=DMARC1; p=none; aspf=s");
    dns.ptr("192.0.2.10", "bulk.relay.test");
    dns.a("bulk.relay.test", "192.0.2.99");
    dns.ptr("192.0.2.11", "other.test");
    dns.a("other.test", "192.0.2.11");
    dns.txt("_mta-sts.shop.test", "v=STSv1; id=not valid!");
    dns.txt("_smtp._tls.shop.test", "v=TLSRPTv1; rua=ftp://shop.test/");
    let (ok, by, v) = check(&d);
    for c in CHECKS {
        let (status, expected) = &by[c];
        assert_eq!(status, "wrong", "{c}: {v:#}");
        assert!(expected.is_some(), "{c} says what would be right: {v:#}");
    }
    assert!(!ok, "exit status 1");
    assert!(
        by["spf"].1.as_ref().unwrap().contains("ip4:192.0.2.11"),
        "{v:#}"
    );
    assert!(by["dkim:s1"].1.as_ref().unwrap().contains(&dkim), "{v:#}");
    assert!(
        by["bounce_mx"]
            .1
            .as_ref()
            .unwrap()
            .contains("MX 10 relay.test.")
    );

    // missing (the relay's own address stays, or no egress address is known)
    dns.clear();
    base(&dns);
    let (ok, by, v) = check(&d);
    for c in CHECKS {
        assert_eq!(by[c].0, "missing", "{c}: {v:#}");
    }
    assert!(!ok);
    assert_eq!(
        (&v["ok"], &v["wrong"], &v["missing"]),
        (&0.into(), &0.into(), &8.into())
    );
    // MTA-STS and TLS-RPT are optional: only they missing is a pass
    let human = d.cli(&["domain", "check", "shop.test"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("missing (optional)") && text.contains("records that would be right:"),
        "{text}"
    );

    // not a [[domain]]: a clear error
    let out = d.cli(&["domain", "check", "other.test"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("404") && err.contains("not a [[domain]]"),
        "{err}"
    );
}
