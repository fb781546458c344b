//! Hostile remote peers: MX hosts that stall, flood or hang up, and null-sender failures that must not bounce.

use std::sync::Arc;

use laneway_bench::sink::{Event, Sink, SinkConfig};
use laneway_tests::dns::TestDns;
use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::{Daemon, eventually};

use super::*;

#[test]
fn hostile_mx_hosts_cannot_hurt_the_relay() {
    for how in [Hostile::EndlessGreeting, Hostile::HugeLine] {
        let dns = TestDns::start();
        let (port, _) = hostile_mx(how);
        dns.mx("example.test", 10, "mx.example.test");
        dns.a("mx.example.test", "127.0.0.1");
        let d = Daemon::start(&relay(&dns, port, ""));
        let pid = d.pid();
        let mut c = Client::hello(d.addr("mx"));
        let id = queued_id(&c.send_mail(
            "a@sender.test",
            &["b@example.test"],
            "Subject: x\r\n\r\nx\r\n",
        ));
        eventually("two deferrals", || {
            events(&d)
                .iter()
                .filter(|e| e["message_id"] == id && e["type"] == "transient_failure")
                .count()
                >= 2
        });
        let rss = rss_kib(pid);
        assert!(rss < 200 * 1024, "RSS {rss} KiB talking to a hostile MX");
        assert_eq!(d.spooled_ids(4), vec![id]);
    }

    // a hang-up after the final dot: retried, delivered (a duplicate would
    // be acceptable, a loss is not)
    let dns = TestDns::start();
    let (port, got) = hostile_mx(Hostile::HangUpAfterDot(2));
    dns.mx("example.test", 10, "mx.example.test");
    dns.a("mx.example.test", "127.0.0.1");
    let d = Daemon::start(&relay(&dns, port, ""));
    let mut c = Client::hello(d.addr("mx"));
    let id = queued_id(&c.send_mail(
        "a@sender.test",
        &["b@example.test"],
        "Subject: hang-up\r\n\r\nx\r\n",
    ));
    eventually("delivered after the hang-ups", || {
        events(&d)
            .iter()
            .any(|e| e["message_id"] == id && e["type"] == "delivery")
    });
    assert_eq!(*got.lock().unwrap(), vec!["hang-up".to_string()]);
    let deferred = events(&d)
        .iter()
        .filter(|e| e["message_id"] == id && e["type"] == "transient_failure")
        .count();
    assert_eq!(deferred, 2);
    eventually("spool empty", || d.spool_stats()["total"] == 0);
}

#[test]
fn a_null_sender_message_that_fails_makes_no_bounce() {
    let dns = TestDns::start();
    let mx = Sink::spawn(SinkConfig {
        reply: Some(Arc::new(|e: &Event<'_>| match e {
            Event::Rcpt(_) => Some("550 5.1.1 no such user".into()),
            _ => None,
        })),
        ..Default::default()
    });
    dns.mx("example.test", 10, "mx.example.test");
    dns.a("mx.example.test", "127.0.0.1");
    let d = Daemon::start(&relay(&dns, mx.addr.port(), ""));
    let mut c = Client::hello(d.addr("mx"));
    // a bounce (null sender) that bounces, and a normal message whose
    // sender is at the same refusing host: that one gets its DSN, which
    // bounces in turn — and that must be the end of it
    let null = queued_id(&c.send_mail("", &["gone@example.test"], "Subject: dsn\r\n\r\nx\r\n"));
    let normal = queued_id(&c.send_mail(
        "sender@example.test",
        &["gone2@example.test"],
        "Subject: normal\r\n\r\nx\r\n",
    ));
    eventually("both failed and the spool is empty", || {
        let ev = events(&d);
        let failed = |id: &str| {
            ev.iter()
                .any(|e| e["message_id"] == id && e["type"] == "bounce")
        };
        failed(&null) && failed(&normal) && d.spool_stats()["total"] == 0
    });
    let ev = events(&d);
    let dsn_sent = ev
        .iter()
        .filter(|e| e["type"] == "bounce" && e["message_id"] != null && e["message_id"] != normal)
        .count();
    assert_eq!(
        dsn_sent, 1,
        "exactly one DSN (for the normal message), and it was not bounced again: {ev:?}"
    );
    // the sink refused every RCPT, so it never took a message
    assert_eq!(mx.count(), 0);
    assert!(
        d.wait_log(|l| l.contains(&null) && l.contains("no DSN")),
        "the log says why no DSN was sent"
    );
}
