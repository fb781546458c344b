//! What each DNS answer means for delivery (RFC 5321 §5.1, RFC 7505): permanent only for NXDOMAIN of the domain, a null MX, no MX and no address, no MX host with an address, and a loop back to Laneway; every other trouble defers.

use laneway_bench::sink::SinkConfig;
use laneway_tests::dns::TestDns;
use laneway_tests::{DEADLINE, Daemon, eventually};

use super::*;

#[test]
fn null_mx_and_nxdomain_bounce_but_servfail_defers() {
    let dns = TestDns::start();
    let home = sink(SinkConfig::default());
    dns.null_mx("null.test");
    dns.servfail("broken.test");
    let routes = format!(
        "[[route]]\ndomain = \"sender.test\"\nvia = \"{}\"\n",
        home.addr
    );
    let d = Daemon::start(&relay(&dns, 25, &routes));
    submit(&d, "alice@sender.test", &["a@null.test"], 4, "x\r\n");
    submit(&d, "alice@sender.test", &["a@nowhere.test"], 4, "x\r\n");
    let kept = submit(&d, "alice@sender.test", &["a@broken.test"], 4, "x\r\n");
    assert_eq!(home.wait_blocking(2, DEADLINE), 2);
    let all: String = home.messages().iter().map(text).collect();
    assert!(all.contains("Status: 5.1.10"), "{all}");
    assert!(all.contains("Status: 5.1.2"), "{all}");
    let ev = wait_events(&d, "a deferral for broken.test", |e| {
        e.iter()
            .any(|e| e["recipient"] == "a@broken.test" && e["type"] == "transient_failure")
    });
    let e = ev
        .iter()
        .find(|e| e["recipient"] == "a@broken.test")
        .unwrap();
    assert!(
        e["description"].as_str().unwrap().starts_with("4.4.3"),
        "{e}"
    );
    assert!(
        ev.iter()
            .all(|e| e["recipient"] != "a@broken.test" || e["type"] == "transient_failure"),
        "DNS trouble never bounces"
    );
    // the bounced ones leave the spool once their DSNs are written
    eventually("only the deferred message queued", || {
        d.spooled_ids(4) == [kept.clone()]
    });
}

#[test]
fn mail_that_would_loop_back_bounces() {
    let dns = TestDns::start();
    let home = sink(SinkConfig::default());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    dns.mx("loop.test", 10, "mx.loop.test");
    dns.a("mx.loop.test", "127.0.0.1");
    let cfg = format!(
        "{}[[route]]\ndomain = \"sender.test\"\nvia = \"{}\"\n",
        relay(&dns, port, "").replace(
            "bind = \"127.0.0.1:0\"",
            &format!("bind = \"127.0.0.1:{port}\"")
        ),
        home.addr
    );
    let d = Daemon::start(&cfg);
    submit(&d, "a@sender.test", &["x@loop.test"], 4, "x\r\n");
    assert_eq!(home.wait_blocking(1, DEADLINE), 1);
    let t = text(&home.messages()[0]);
    assert!(
        t.contains("Status: 5.4.6") && t.contains("loops back to myself"),
        "{t}"
    );
}

/// Every DNS answer that has no test above, one recipient each: the
/// permanent ones bounce with their status (DSN to the sender), the rest
/// defer with 4.4.3 at stage `dns` and stay queued, never bounced.
#[test]
fn every_dns_answer_has_its_outcome() {
    use hickory_resolver::proto::op::ResponseCode;
    let dns = TestDns::start();
    let home = sink(SinkConfig::default());
    // the domain exists (a TXT record) but has no MX and no address
    dns.txt("nodata.test", "v=spf1 -all");
    // MX hosts without an address: one NODATA, one NXDOMAIN
    dns.mx("hostless.test", 10, "mx.hostless.test");
    dns.txt("mx.hostless.test", "no address here");
    dns.mx("dangling.test", 10, "mx.nowhere-at-all.test");
    dns.rcode("refused.test", ResponseCode::Refused);
    dns.rcode("notimp.test", ResponseCode::NotImp);
    dns.rcode("formerr.test", ResponseCode::FormErr);
    dns.silent("silent.test");
    let routes = format!(
        "[[route]]\ndomain = \"sender.test\"\nvia = \"{}\"\n",
        home.addr
    );
    let d = Daemon::start(&relay(&dns, 25, &routes));
    let bounces = [
        ("a@nodata.test", "5.1.2"),
        ("a@hostless.test", "5.4.4"),
        ("a@dangling.test", "5.4.4"),
    ];
    let defers = [
        "a@refused.test",
        "a@notimp.test",
        "a@formerr.test",
        "a@silent.test",
    ];
    for (r, _) in bounces {
        submit(&d, "alice@sender.test", &[r], 4, "x\r\n");
    }
    let mut kept: Vec<String> = defers
        .iter()
        .map(|r| submit(&d, "alice@sender.test", &[r], 4, "x\r\n"))
        .collect();
    assert_eq!(home.wait_blocking(bounces.len(), DEADLINE), bounces.len());
    let dsns: Vec<String> = home.messages().iter().map(text).collect();
    for (rcpt, status) in bounces {
        let dsn = dsns
            .iter()
            .find(|t| t.contains(&format!("Final-Recipient: rfc822; {rcpt}")))
            .unwrap_or_else(|| panic!("no DSN for {rcpt}: {dsns:#?}"));
        assert!(
            dsn.contains(&format!("Action: failed\r\nStatus: {status}")),
            "{rcpt} bounces with {status}: {dsn}"
        );
        assert!(
            dsn.contains("Diagnostic-Code: X-Laneway;"),
            "Laneway's own verdict: {dsn}"
        );
    }
    let ev = wait_events(&d, "a deferral for each DNS failure", |e| {
        defers.iter().all(|r| {
            e.iter()
                .any(|e| e["recipient"] == *r && e["type"] == "transient_failure")
        })
    });
    for r in defers {
        for e in ev.iter().filter(|e| e["recipient"] == r) {
            assert_eq!(e["type"], "transient_failure", "{r} never bounces: {e}");
            assert_eq!(e["stage"], "dns", "{e}");
            assert_eq!(e["status"], "4.4.3", "{e}");
        }
    }
    for (r, status) in bounces {
        let e = ev.iter().find(|e| e["recipient"] == r).expect("an event");
        assert_eq!(
            (&e["type"], &e["stage"]),
            (&"bounce".into(), &"dns".into()),
            "{e}"
        );
        assert_eq!(e["status"], status, "{e}");
    }
    kept.sort();
    // the deferred mail stays queued; the bounced leaves once its DSN is written
    eventually("only the deferred mail queued", || d.spooled_ids(4) == kept);
}
