//! Next hops, retries, bounces and DSNs: MX preference and failover, deferrals retried in their lane, permanent failures, expiry, attempts across restarts, egress pools, smarthosts.

use laneway_bench::sink::{Event, SinkConfig};
use laneway_tests::dns::TestDns;
use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::tls::self_signed_server;
use laneway_tests::{DEADLINE, Daemon, eventually};

use super::*;

#[test]
fn mx_preference_with_failover_to_the_next_host() {
    let dns = TestDns::start();
    let mx2 = sink(SinkConfig {
        bind: Some("127.0.0.3:0".parse().unwrap()),
        ..Default::default()
    });
    dns.mx("example.test", 10, "mx1.example.test");
    dns.mx("example.test", 20, "mx2.example.test");
    dns.a("mx1.example.test", "127.0.0.2"); // nothing listens there
    dns.a("mx2.example.test", "127.0.0.3");
    let d = Daemon::start(&relay(&dns, mx2.addr.port(), ""));
    let id = submit(
        &d,
        "alice@sender.test",
        &["bob@example.test"],
        4,
        "..dot line\r\nbody\r\n",
    );
    assert_eq!(mx2.wait_blocking(1, DEADLINE), 1);
    let m = &mx2.messages()[0];
    assert_eq!(m.from, "alice@sender.test");
    assert_eq!(m.rcpts, vec!["bob@example.test"]);
    let t = text(m);
    assert!(
        t.contains("\r\n..dot line\r\nbody\r\n"),
        "dot-stuffing must round-trip: {t}"
    );
    assert!(!t.to_ascii_lowercase().contains("x-priority-queue"));
    assert!(t.contains(&format!("by laneway.test (Laneway) with ESMTP id {id}")));
    let ev = wait_events(&d, "delivered event", |e| {
        e.iter().any(|e| e["type"] == "delivery")
    });
    let e = ev.iter().find(|e| e["type"] == "delivery").unwrap();
    assert_eq!(e["message_id"], id);
    assert!(
        format!(
            "{}[{}]",
            e["next_hop"]["host"].as_str().unwrap(),
            e["next_hop"]["ip"].as_str().unwrap()
        )
        .starts_with("mx2.example.test[127.0.0.3]"),
        "{e}"
    );
    eventually("spool empty", || d.spool_stats()["total"] == 0);
}

#[test]
fn a_deferral_is_retried_in_the_same_lane_and_delivered() {
    let dns = TestDns::start();
    let s = sink(SinkConfig {
        reply: reply(|e| match e {
            Event::Data(_, 0) => Some("451 4.3.0 try again later".into()),
            _ => None,
        }),
        ..Default::default()
    });
    dns.mx("example.test", 10, "mx.example.test");
    dns.a("mx.example.test", "127.0.0.1");
    let d = Daemon::start(&relay(&dns, s.addr.port(), ""));
    let id = submit(&d, "alice@sender.test", &["bob@example.test"], 7, "x\r\n");
    assert_eq!(s.wait_blocking(1, DEADLINE), 1);
    let ev = wait_events(&d, "two events", |e| e.len() >= 2);
    assert_eq!(ev[0]["type"], "transient_failure");
    assert_eq!(ev[0]["attempt"], 1);
    assert!(
        ev[0]["description"]
            .as_str()
            .unwrap()
            .starts_with("451 4.3.0")
    );
    assert!(
        ev[0]["next_attempt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(ev[1]["type"], "delivery");
    assert_eq!(ev[1]["attempt"], 2);
    for e in &ev[..2] {
        assert_eq!(e["message_id"], id);
        assert_eq!(e["lane"], 7, "retries keep their lane");
    }
}

#[test]
fn a_permanent_failure_bounces_to_the_sender_in_the_same_lane() {
    let dns = TestDns::start();
    let mx = sink(SinkConfig {
        reply: reply(|e| match e {
            Event::Rcpt(r) if r.starts_with("bad@") => {
                Some("550 5.1.1 <bad@example.test>: no such user".into())
            }
            _ => None,
        }),
        ..Default::default()
    });
    let home = sink(SinkConfig::default());
    dns.mx("example.test", 10, "mx.example.test");
    dns.a("mx.example.test", "127.0.0.1");
    let routes = format!(
        "[[route]]\ndomain = \"sender.test\"\nvia = \"{}\"\n",
        home.addr
    );
    let d = Daemon::start(&relay(&dns, mx.addr.port(), &routes));
    let id = submit(
        &d,
        "alice@sender.test",
        &["good@example.test", "bad@example.test"],
        2,
        "x\r\n",
    );
    assert_eq!(mx.wait_blocking(1, DEADLINE), 1);
    assert_eq!(mx.messages()[0].rcpts, vec!["good@example.test"]);
    assert_eq!(home.wait_blocking(1, DEADLINE), 1);
    let dsn = &home.messages()[0];
    assert!(dsn.mail_line.contains("FROM:<>"), "{}", dsn.mail_line);
    assert_eq!(dsn.rcpts, vec!["alice@sender.test"]);
    let t = text(dsn);
    assert!(t.contains("Content-Type: multipart/report"), "{t}");
    assert!(t.contains("delivery-status"));
    assert!(
        t.contains("Final-Recipient: rfc822; bad@example.test\r\nAction: failed\r\nStatus: 5.1.1"),
        "{t}"
    );
    assert!(t.contains("Diagnostic-Code: smtp; 550 5.1.1"));
    assert!(!t.contains("Final-Recipient: rfc822; good@example.test"));
    assert!(t.contains(&format!("X-Laneway-Queue-ID: {id}")));
    assert!(
        d.wait_log(|l| l.contains("DSN queued") && l.contains("lane=2")),
        "the DSN stays in the bulk lane"
    );
    eventually("spool empty", || d.spool_stats()["total"] == 0);
}

#[test]
fn a_restart_keeps_attempt_counts() {
    let dns = TestDns::start();
    let s = sink(SinkConfig {
        reply: reply(|e| match e {
            Event::Data(_, n) if *n < 2 => Some("451 4.3.0 not yet".into()),
            _ => None,
        }),
        ..Default::default()
    });
    dns.mx("example.test", 10, "mx.example.test");
    dns.a("mx.example.test", "127.0.0.1");
    let cfg =
        relay(&dns, s.addr.port(), "").replace("retry_base = \"200ms\"", "retry_base = \"400ms\"");
    let mut d = Daemon::start(&cfg);
    let id = submit(&d, "a@sender.test", &["x@example.test"], 3, "x\r\n");
    wait_events(&d, "first deferral", |e| {
        e.iter().any(|e| e["type"] == "transient_failure")
    });
    d.kill9();
    d.restart();
    let ev = wait_events(&d, "delivery", |e| {
        e.iter().any(|e| e["type"] == "delivery")
    });
    let delivered = ev.iter().find(|e| e["type"] == "delivery").unwrap();
    assert_eq!(delivered["message_id"], id);
    assert_eq!(delivered["attempt"], 3, "{ev:?}");
    assert_eq!(s.count(), 1);
}

#[test]
fn egress_pools_bind_their_source_address_per_lane() {
    let dns = TestDns::start();
    let s = sink(SinkConfig::default());
    dns.mx("example.test", 10, "mx.example.test");
    dns.a("mx.example.test", "127.0.0.1");
    let pools = "[[outbound.pool]]\nname = \"transactional\"\nlanes = \"5-9\"\nsource = [\"127.0.0.2\"]\nhelo_name = \"tx.laneway.test\"\n";
    let cfg = relay_ob(&dns, s.addr.port(), "", pools);
    let d = Daemon::start(&cfg);
    submit(&d, "a@sender.test", &["x@example.test"], 9, "urgent\r\n");
    submit(&d, "a@sender.test", &["y@example.test"], 1, "bulk\r\n");
    assert_eq!(s.wait_blocking(2, DEADLINE), 2);
    for m in s.messages() {
        match m.lane {
            Some(9) => {
                assert_eq!(m.peer.ip().to_string(), "127.0.0.2");
                assert_eq!(m.helo, "tx.laneway.test");
            }
            Some(1) => {
                assert_eq!(m.peer.ip().to_string(), "127.0.0.1");
                assert_eq!(m.helo, "laneway.test");
            }
            other => panic!("unexpected lane {other:?}"),
        }
    }
}

#[test]
fn smarthost_with_auth_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start();
    let s = sink(SinkConfig {
        tls: Some(self_signed_server("smarthost.test")),
        ..Default::default()
    });
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let routes = format!(
        "[[route]]\ndomain = \"*\"\nvia = \"{}\"\ntls = \"required\"\nauth_user = \"relay-user\"\nauth_password_file = \"{}\"\n",
        s.addr,
        pw.display()
    );
    let d = Daemon::start(&relay(&dns, 25, &routes));
    submit(&d, "a@sender.test", &["x@anywhere.test"], 4, "x\r\n");
    assert_eq!(s.wait_blocking(1, DEADLINE), 1);
    let m = &s.messages()[0];
    assert!(m.tls);
    assert_eq!(m.auth.as_deref(), Some("relay-user"));
}

#[test]
fn dsn_parameters_go_to_hops_that_take_them_and_relayed_notices_otherwise() {
    let dns = TestDns::start();
    let with_dsn = sink(SinkConfig {
        dsn: true,
        ..Default::default()
    });
    let without = sink_beside(&with_dsn, "127.0.0.2", SinkConfig::default());
    let home = sink(SinkConfig::default());
    dns.mx("dsn.test", 10, "mx.dsn.test");
    dns.a("mx.dsn.test", "127.0.0.1");
    dns.mx("plain.test", 10, "mx.plain.test");
    dns.a("mx.plain.test", "127.0.0.2");
    let routes = format!(
        "[[route]]\ndomain = \"sender.test\"\nvia = \"{}\"\n",
        home.addr
    );
    let d = Daemon::start(&relay(&dns, with_dsn.addr.port(), &routes));
    for to in ["x@dsn.test", "y@plain.test"] {
        let mut c = Client::hello(d.addr("in"));
        c.cmd("MAIL FROM:<a@sender.test> RET=HDRS ENVID=env+2Bid", "250");
        c.cmd(
            &format!("RCPT TO:<{to}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@sender.test"),
            "250",
        );
        c.cmd("DATA", "354");
        c.send(b"Subject: dsn\r\n\r\nx\r\n.\r\n");
        queued_id(&c.reply());
    }
    assert_eq!(with_dsn.wait_blocking(1, DEADLINE), 1);
    let m = &with_dsn.messages()[0];
    assert!(
        m.mail_line.contains("RET=HDRS") && m.mail_line.contains("ENVID=env+2Bid"),
        "{}",
        m.mail_line
    );
    assert!(
        m.rcpt_lines[0].contains("NOTIFY=SUCCESS,FAILURE"),
        "{}",
        m.rcpt_lines[0]
    );
    assert!(
        m.rcpt_lines[0].contains("ORCPT=rfc822;orig@sender.test"),
        "{}",
        m.rcpt_lines[0]
    );
    assert_eq!(without.wait_blocking(1, DEADLINE), 1);
    assert!(!without.messages()[0].mail_line.contains("RET="));
    // the hop without DSN cannot report success: we do ("relayed")
    assert_eq!(home.wait_blocking(1, DEADLINE), 1);
    let t = text(&home.messages()[0]);
    assert!(
        t.contains("Action: relayed") && t.contains("y@plain.test"),
        "{t}"
    );
    assert!(t.contains("Original-Envelope-Id: env+id"), "{t}");
}

#[test]
fn expiry_after_a_delay_warning_bounces() {
    let dns = TestDns::start();
    let mx = sink(SinkConfig {
        reply: reply(|e| {
            matches!(e, Event::Data(..)).then(|| "451 4.2.0 mailbox busy".to_string())
        }),
        ..Default::default()
    });
    let home = sink(SinkConfig::default());
    dns.mx("example.test", 10, "mx.example.test");
    dns.a("mx.example.test", "127.0.0.1");
    let extra = format!(
        "[[route]]\ndomain = \"sender.test\"\nvia = \"{}\"\n[[queue.lane]]\nlanes = \"0-9\"\nmax_age = \"2s\"\ndelay_warning = \"500ms\"\n",
        home.addr
    );
    let d = Daemon::start(&relay(&dns, mx.addr.port(), &extra));
    submit(&d, "alice@sender.test", &["bob@example.test"], 1, "x\r\n");
    assert_eq!(home.wait_blocking(2, DEADLINE), 2);
    let dsns: Vec<String> = home.messages().iter().map(text).collect();
    assert!(dsns[0].contains("Action: delayed"), "{}", dsns[0]);
    assert!(
        dsns[1].contains("Action: failed") && dsns[1].contains("Status: 4.4.7"),
        "{}",
        dsns[1]
    );
    assert!(dsns[1].contains("451 4.2.0 mailbox busy"));
    eventually("spool empty", || d.spool_stats()["total"] == 0);
}

/// `[[destination]] hold = true` with a pattern holds every domain it
/// matches (`*` all of them, `.example.test` every subdomain), and
/// `laneway queue resume` with the same pattern releases them.
#[test]
fn held_destination_patterns_hold_every_matching_domain() {
    let dns = TestDns::start();
    let mx = sink(SinkConfig::default());
    // holds are per site: other.test has MX hosts of its own
    dns.mx("a.example.test", 10, "mx.sink.test");
    dns.mx("b.example.test", 10, "mx.sink.test");
    dns.mx("other.test", 10, "mx.other.test");
    dns.a("mx.sink.test", "127.0.0.1");
    dns.a("mx.other.test", "127.0.0.1");
    let held = "[[destination]]\ndomain = \"*\"\nhold = true\n[[destination]]\ndomain = \".example.test\"\nhold = true\n";
    let d = Daemon::start(&relay(&dns, mx.addr.port(), held));
    let out = d.cli(&["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = submit(&d, "s@sender.test", &["x@a.example.test"], 4, "x\r\n");
    let b = submit(&d, "s@sender.test", &["x@b.example.test"], 4, "x\r\n");
    let o = submit(&d, "s@sender.test", &["x@other.test"], 4, "x\r\n");
    // resolved, but nothing leaves while the patterns hold
    eventually("both destinations resolved and held", || {
        let out = d.cli(&["queue", "stats", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["destinations"]
            .as_array()
            .is_some_and(|ds| !ds.is_empty() && ds.iter().all(|x| x["suspended"] == true))
    });
    assert_eq!(mx.count(), 0, "nothing delivered while held");
    // resuming `*` releases other.test; .example.test is still held
    let out = d.cli(&["queue", "resume", "*"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mx.wait_blocking(1, DEADLINE), 1);
    assert_eq!(mx.messages()[0].rcpts, vec!["x@other.test"]);
    let mut want = vec![a, b];
    want.sort();
    // other.test's message leaves the spool once its outcome is recorded
    eventually("only the .example.test mail left, held", || {
        let mut left = d.spooled_ids(4);
        left.sort();
        left == want
    });
    assert!(!d.spooled_ids(4).contains(&o));
    assert_eq!(mx.count(), 1, "the .example.test mail stays held");
    let out = d.cli(&["queue", "resume", ".example.test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mx.wait_blocking(3, DEADLINE), 3);
    eventually("spool empty", || d.spool_stats()["total"] == 0);
}
