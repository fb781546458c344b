//! Outbound delivery end to end: a real DNS server and SMTP sinks on
//! loopback, the real daemon in between.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use laneway_bench::sink::{Event, Sink, SinkConfig};
use laneway_tests::dns::TestDns;
use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::tls::{TestCa, self_signed_server};
use laneway_tests::{DEADLINE, Daemon, eventually};

/// A relay with a trusted gateway listener, fast retries and an event log,
/// delivering to `port` on whatever the DNS server says.
fn relay(dns: &TestDns, port: u16, extra: &str) -> String {
    relay_ob(dns, port, "", extra)
}

/// [`relay`] with extra `[outbound]` lines.
fn relay_ob(dns: &TestDns, port: u16, outbound: &str, extra: &str) -> String {
    format!(
        r#"
[[listener]]
name = "in"
bind = "127.0.0.1:0"
trust_priority = true
[relay]
trusted_networks = ["127.0.0.1/32"]
[queue]
retry_base = "200ms"
retry_max = "1s"
[outbound]
port = {port}
idle_timeout = "300ms"
connect_timeout = "2s"
{outbound}
[log]
events = "{{dir}}/events.jsonl"
{}
{extra}
"#,
        dns.config()
    )
}

fn sink(cfg: SinkConfig) -> Sink {
    Sink::spawn(cfg)
}

/// A sink on `ip` and the same port as `other` (so one `[outbound] port` serves both).
fn sink_beside(other: &Sink, ip: &str, mut cfg: SinkConfig) -> Sink {
    cfg.bind = Some(SocketAddr::new(ip.parse().unwrap(), other.addr.port()));
    sink(cfg)
}

fn reply(
    f: impl Fn(&Event<'_>) -> Option<String> + Send + Sync + 'static,
) -> Option<laneway_bench::sink::ReplyFn> {
    Some(Arc::new(f))
}

/// Submits one message through the trusted listener; returns its queue id.
fn submit(d: &Daemon, from: &str, to: &[&str], lane: u8, body: &str) -> String {
    let mut c = Client::hello(d.addr("in"));
    let content = format!(
        "From: {from}\r\nSubject: lane {lane}\r\nX-Priority-Queue: {lane}\r\nX-Bench-Lane: {lane}\r\n\r\n{body}"
    );
    let r = c.send_mail(from, to, &content);
    queued_id(&r)
}

fn events(d: &Daemon) -> Vec<serde_json::Value> {
    std::fs::read_to_string(d.dir().join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("event JSON"))
        .collect()
}

fn wait_events(
    d: &Daemon,
    what: &str,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    eventually(what, || pred(&events(d)));
    events(d)
}

fn text(m: &laneway_bench::sink::Message) -> String {
    String::from_utf8_lossy(&m.data).into_owned()
}

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
        e.iter().any(|e| e["result"] == "delivered")
    });
    let e = ev.iter().find(|e| e["result"] == "delivered").unwrap();
    assert_eq!(e["id"], id);
    assert!(
        e["next_hop"]
            .as_str()
            .unwrap()
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
    assert_eq!(ev[0]["result"], "deferred");
    assert_eq!(ev[0]["attempt"], 1);
    assert!(ev[0]["reply"].as_str().unwrap().starts_with("451 4.3.0"));
    assert!(ev[0]["next_attempt_ms"].as_u64().is_some());
    assert_eq!(ev[1]["result"], "delivered");
    assert_eq!(ev[1]["attempt"], 2);
    for e in &ev[..2] {
        assert_eq!(e["id"], id);
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
        d.logs()
            .iter()
            .any(|l| l.contains("DSN queued") && l.contains("lane=2")),
        "the DSN stays in the bulk lane"
    );
    eventually("spool empty", || d.spool_stats()["total"] == 0);
}

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
            .any(|e| e["rcpt"] == "a@broken.test" && e["result"] == "deferred")
    });
    let e = ev.iter().find(|e| e["rcpt"] == "a@broken.test").unwrap();
    assert!(e["reply"].as_str().unwrap().starts_with("4.4.3"), "{e}");
    assert!(
        ev.iter()
            .all(|e| e["rcpt"] != "a@broken.test" || e["result"] == "deferred"),
        "DNS trouble never bounces"
    );
    assert_eq!(d.spooled_ids(4), vec![kept]);
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
            .any(|e| e["rcpt"] == "x@untrusted.test" && e["result"] == "deferred")
            && e.iter()
                .any(|e| e["rcpt"] == "x@plain-required.test" && e["result"] == "deferred")
    });
    let r = |rcpt: &str| {
        ev.iter()
            .find(|e| e["rcpt"] == rcpt && e["result"] == "deferred")
            .map(|e| e["reply"].as_str().unwrap().to_string())
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
        .find(|e| e["rcpt"] == "x@good.test" && e["result"] == "delivered")
        .unwrap();
    assert!(
        delivered_tls["tls"].as_str().unwrap().starts_with("TLSv1."),
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
        e.iter().any(|e| e["result"] == "deferred")
    });
    d.kill9();
    d.restart();
    let ev = wait_events(&d, "delivery", |e| {
        e.iter().any(|e| e["result"] == "delivered")
    });
    let delivered = ev.iter().find(|e| e["result"] == "delivered").unwrap();
    assert_eq!(delivered["id"], id);
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

/// The product's promise, measured: behind a backlog of bulk mail to one
/// slow destination, an urgent message waits for at most the transaction
/// in flight on each connection; with a reserved slot it waits for none.
#[test]
fn an_urgent_message_overtakes_a_bulk_backlog() {
    for reserved in [false, true] {
        let dns = TestDns::start();
        let delay = if reserved { 200 } else { 20 };
        let s = sink(SinkConfig {
            delay: Duration::from_millis(delay),
            ..Default::default()
        });
        dns.mx("example.test", 10, "mx.example.test");
        dns.a("mx.example.test", "127.0.0.1");
        let dest = if reserved {
            "[[destination]]\ndomain = \"example.test\"\nmax_connections = 3\nreserved_connections = 1\nreserved_min_lane = 7\n"
        } else {
            "[[destination]]\ndomain = \"example.test\"\nmax_connections = 2\n"
        };
        let d = Daemon::start(&relay(&dns, s.addr.port(), dest));
        let addr = d.addr("in");
        let threads: Vec<_> = (0..10)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut c = Client::hello(addr);
                    for i in 0..500 {
                        c.send(format!("MAIL FROM:<bulk@sender.test>\r\nRCPT TO:<n{t}-{i}@example.test>\r\nDATA\r\n").as_bytes());
                        for _ in 0..3 {
                            c.reply();
                        }
                        c.send(b"Subject: news\r\nX-Priority-Queue: 0\r\nX-Bench-Lane: 0\r\n\r\nnewsletter\r\n.\r\n");
                        assert!(c.reply().starts_with("250"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let queued: u64 = d.spool_stats()["lanes"]["0"].as_u64().unwrap();
        assert!(queued > 4000, "the backlog is there: {queued}");
        let t0 = Instant::now();
        submit(
            &d,
            "reset@sender.test",
            &["user@example.test"],
            9,
            "your password reset code\r\n",
        );
        // queued: bulk transactions starting before this instant may
        // legitimately be in flight
        let tq = Instant::now();
        eventually("the urgent message arrives", || {
            s.messages().iter().any(|m| m.lane == Some(9))
        });
        let msgs = s.messages();
        let urgent = msgs.iter().find(|m| m.lane == Some(9)).unwrap();
        let latency = urgent.at.duration_since(t0);
        let bulk_done_after: Vec<_> = msgs
            .iter()
            .filter(|m| m.lane == Some(0) && m.at > tq && m.at < urgent.at)
            .collect();
        eprintln!(
            "reserved={reserved}: lane-9 latency {latency:?} behind {queued} lane-0; {} lane-0 completed meanwhile",
            bulk_done_after.len()
        );
        let detail = |list: &[&laneway_bench::sink::Message]| -> String {
            list.iter()
                .map(|m| {
                    let rel = |t: Instant| {
                        t.checked_duration_since(tq)
                            .map(|d| format!("+{d:?}"))
                            .unwrap_or_else(|| format!("-{:?}", tq - t))
                    };
                    format!(
                        "[mail {} done {} port {}]",
                        rel(m.mail_at),
                        rel(m.at),
                        m.peer.port()
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        if reserved {
            // it went on a connection of its own (reserved slots carry only
            // high lanes), not behind a bulk transaction
            assert!(
                msgs.iter()
                    .filter(|m| m.lane == Some(0))
                    .all(|m| m.peer != urgent.peer),
                "the urgent message shared a connection with bulk mail"
            );
            // bulk connections go on beside it, but it never waits for a
            // bulk transaction that began after it was queued to end
            assert!(
                bulk_done_after
                    .iter()
                    .filter(|m| m.mail_at >= tq)
                    .all(|m| urgent.mail_at < m.at),
                "it waited for a bulk transaction that started after it: urgent mail {:?} after queueing; {}",
                urgent.mail_at.checked_duration_since(tq),
                detail(&bulk_done_after)
            );
        } else {
            // Before the urgent transaction starts, each connection finishes
            // at most the one bulk transaction it had in flight; after that
            // the next free connection takes the urgent message. (Bulk
            // transactions that run beside it on the other connection may
            // end first: it takes a sink transaction time itself.)
            let before: Vec<&laneway_bench::sink::Message> = msgs
                .iter()
                .filter(|m| m.lane == Some(0) && m.at > tq && m.at < urgent.mail_at)
                .collect();
            let mut per_conn = std::collections::HashMap::new();
            for m in &before {
                *per_conn.entry(m.peer.port()).or_insert(0) += 1;
            }
            assert!(
                per_conn.values().all(|&n| n <= 1) && before.len() <= 2,
                "at most one more bulk completion per connection before the urgent one starts: {}",
                detail(&before)
            );
            assert!(
                before.iter().all(|m| m.mail_at < tq),
                "a bulk transaction started after the urgent one was queued and ended before it started: {}",
                detail(&before)
            );
        }
    }
}

/// RFC 8689 (issue 8): a message that carries REQUIRETLS — the SMTP MAIL
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
        let done =
            |rcpt: &str, result: &str| e.iter().any(|e| e["rcpt"] == rcpt && e["result"] == result);
        failed.iter().all(|r| done(r, "failed"))
            && ["x@good.test", "y@good.test", "z@good.test", "w@plain.test"]
                .iter()
                .all(|r| done(r, "delivered"))
    });
    for r in failed {
        let e = ev
            .iter()
            .find(|e| e["rcpt"] == r && e["result"] == "failed")
            .unwrap();
        assert!(e["reply"].as_str().unwrap().starts_with("5.7.10"), "{e}");
    }
    assert!(
        !ev.iter().any(|e| e["result"] == "deferred"
            && e["rcpt"]
                .as_str()
                .is_some_and(|r| r.starts_with(['x', 'y', 'z']))),
        "no deferral on the way: {ev:?}"
    );
    for r in ["x@good.test", "y@good.test", "z@good.test"] {
        let e = ev
            .iter()
            .find(|e| e["rcpt"] == r && e["result"] == "delivered")
            .unwrap();
        assert_eq!(e["tls_policy"], "requiretls", "{e}");
        assert!(e["tls"].as_str().unwrap().starts_with("TLSv1."), "{e}");
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

/// MTA-STS (RFC 8461, issue 8): policies fetched over HTTPS from a policy
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
        let seen =
            |rcpt: &str, result: &str| e.iter().any(|e| e["rcpt"] == rcpt && e["result"] == result);
        seen("x@enforce-ok.test", "delivered")
            && seen("x@testing.test", "delivered")
            && seen("x@testing-untrusted.test", "delivered")
            && seen("x@nopolicy.test", "delivered")
            && seen("x@enforce-bad.test", "deferred")
            && seen("x@enforce-untrusted.test", "deferred")
    });
    let first = |rcpt: &str| ev.iter().find(|e| e["rcpt"] == rcpt).unwrap().clone();
    let ok = first("x@enforce-ok.test");
    assert_eq!(ok["tls_policy"], "mta-sts", "{ok}");
    assert!(ok["tls"].as_str().unwrap().starts_with("TLSv1."), "{ok}");
    assert_eq!(secure.count(), 1);
    assert!(secure.messages()[0].tls);
    let bad = first("x@enforce-bad.test");
    assert!(bad["reply"].as_str().unwrap().starts_with("4.7.5"), "{bad}");
    let untrusted_ev = first("x@enforce-untrusted.test");
    assert!(
        untrusted_ev["reply"].as_str().unwrap().starts_with("4.7.5"),
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
    assert_eq!(testing["tls_policy"], "mta-sts-testing", "{testing}");
    assert!(d.logs().iter().any(|l| l.contains("MTA-STS (testing)")));
    // testing mode with a certificate the policy would refuse: delivered
    // (without the check), the failure reported below
    let e = first("x@testing-untrusted.test");
    assert_eq!(e["result"], "delivered", "{e}");
    assert_eq!(e["tls_policy"], "mta-sts-testing", "{e}");
    let nopolicy = first("x@nopolicy.test");
    assert_eq!(nopolicy["tls_policy"], "opportunistic", "{nopolicy}");
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

/// DANE (RFC 7672, issue 8). The test DNS server plays the local
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
        let seen =
            |rcpt: &str, result: &str| e.iter().any(|e| e["rcpt"] == rcpt && e["result"] == result);
        seen("x@dane-ok.test", "delivered")
            && seen("x@insecure.test", "delivered")
            && seen("y@dane-bad.test", "delivered")
            && seen("x@dane-bad.test", "deferred")
            && seen("x@dane-bogus.test", "deferred")
    });
    let first = |rcpt: &str| ev.iter().find(|e| e["rcpt"] == rcpt).unwrap().clone();
    let e = first("x@dane-ok.test");
    assert_eq!(e["tls_policy"], "dane", "{e}");
    assert!(e["tls"].as_str().unwrap().starts_with("TLSv1."), "{e}");
    assert!(ok.messages()[0].tls);
    for rcpt in ["x@dane-bad.test", "x@dane-bogus.test"] {
        let e = first(rcpt);
        assert!(e["reply"].as_str().unwrap().starts_with("4.7.5"), "{e}");
    }
    let e = first("y@dane-bad.test");
    assert_eq!(e["tls_policy"], "tls-required-no", "{e}");
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
    assert_eq!(e["tls_policy"], "opportunistic", "{e}");
    assert_eq!(insecure.count(), 1);
}
