//! What the nodes share besides limits: a bounce that comes back to any
//! node suppresses on all of them, and a hold made on one holds on all.

use laneway_bench::sink::{Sink, SinkConfig};
use laneway_tests::redis::Redis;
use laneway_tests::smtp::Client;
use laneway_tests::{DEADLINE, Daemon, eventually};

use super::*;

/// The VERP set-up every node shares (the same bounce secret).
fn verp(dir: &std::path::Path) -> String {
    let secret = dir.join("bounce.secret");
    std::fs::write(&secret, "one secret shared by every node of the cluster").unwrap();
    format!(
        "[auth]\nbounce_secret_file = \"{}\"\n[[domain]]\nname = \"sender.test\"\nbounce_domain = \"bounces.sender.test\"\n",
        secret.display()
    )
}

/// A message node A sent bounces, and the bounce reaches node C: the
/// recipient is suppressed on A, B and C.
#[test]
fn a_bounce_to_any_node_suppresses_on_every_node() {
    let Some(redis) = Redis::start("cluster::shared::bounce") else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let extra = verp(keys.path());
    let sink = Sink::spawn(SinkConfig::default());
    let nodes: Vec<Daemon> = ["a", "b", "c"]
        .iter()
        .map(|n| Daemon::start(&node(&redis, n, &sink, &extra)))
        .collect();
    wait_joined(&nodes.iter().collect::<Vec<_>>());
    let (a, c) = (&nodes[0], &nodes[2]);
    let id = submit_many(a, "app@sender.test", "bob@remote.test", 1, 4).remove(0);
    assert_eq!(sink.wait_blocking(1, DEADLINE), 1);
    let verp = sink.messages()[0].from.clone();
    assert!(verp.ends_with("@bounces.sender.test"), "{verp}");
    // the token reaches Redis in A's next batch (within ms; a real
    // bounce takes longer to come back)
    eventually("A's bounce token in Redis", || {
        redis.command(&["KEYS", "lw:tok:*"]).contains(&id)
    });
    // the remote MTA returns its DSN to another node behind the bounce MX
    let mut s = Client::connect_from(c.addr("in"), Some("127.0.0.2"));
    s.greeting("220");
    s.cmd("EHLO mx.remote.test", "250");
    s.cmd("MAIL FROM:<>", "250");
    s.cmd(&format!("RCPT TO:<{verp}>"), "250");
    s.cmd("DATA", "354");
    s.send(
        format!(
            "From: MAILER-DAEMON@remote.test\r\nTo: {verp}\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nNo such user.\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\nFinal-Recipient: rfc822; bob@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: user unknown\r\n\r\n--b1--\r\n.\r\n"
        )
        .as_bytes(),
    );
    assert!(s.reply().starts_with("250"));
    assert!(
        c.wait_log(|l| l.contains("event=\"returned\"") && l.contains(&id)),
        "node C decoded node A's token"
    );
    for (n, d) in nodes.iter().enumerate() {
        eventually(&format!("suppressed on node {n}"), || {
            suppressed(d, "bob@remote.test")
        });
        // and applied: the next message to bob is refused at RCPT
        let mut s = Client::hello(d.addr("in"));
        s.cmd("MAIL FROM:<app@sender.test>", "250");
        s.cmd("RCPT TO:<bob@remote.test>", "550 5.7.1");
    }
}

/// `suspend` on node B holds the destination on A and C too, and a
/// `[[destination]] hold` in C's configuration holds on A and B;
/// `resume` on B releases it everywhere.
#[test]
fn a_hold_on_one_node_holds_on_every_node() {
    let Some(redis) = Redis::start("cluster::shared::holds") else {
        return;
    };
    let sink = Sink::spawn(SinkConfig::default());
    // a site is held while any of its domains is: free.test goes elsewhere
    let free = Sink::spawn(SinkConfig::default());
    let route = format!(
        "[[route]]\ndomain = \"free.test\"\nvia = \"{}\"\n",
        free.addr
    );
    let held_by_config = format!("{route}[[destination]]\ndomain = \"held.test\"\nhold = true\n");
    let nodes: Vec<Daemon> = [
        ("a", route.clone()),
        ("b", route.clone()),
        ("c", held_by_config),
    ]
    .iter()
    .map(|(n, extra)| Daemon::start(&node(&redis, n, &sink, extra)))
    .collect();
    wait_joined(&nodes.iter().collect::<Vec<_>>());
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let out = b.cli(&["queue", "suspend", "example.test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let held = |d: &Daemon, what: &str| {
        cli_json(d, &["queue", "stats"])["suspended_domains"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x == what))
    };
    for d in [a, b, c] {
        eventually("example.test held everywhere", || held(d, "example.test"));
        eventually("held.test held everywhere", || held(d, "held.test"));
    }
    submit_many(a, "app@sender.test", "u@example.test", 1, 4);
    submit_many(c, "app@sender.test", "u@example.test", 1, 9);
    submit_many(b, "app@sender.test", "u@held.test", 1, 4);
    // mail to a destination that is not held, sent after, goes at once
    submit_many(a, "app@sender.test", "u@free.test", 1, 4);
    submit_many(c, "app@sender.test", "u@free.test", 1, 4);
    assert_eq!(free.wait_blocking(2, DEADLINE), 2);
    assert_eq!(sink.count(), 0, "nothing held left");
    let out = b.cli(&["queue", "resume", "example.test"]);
    assert!(out.status.success());
    let out = a.cli(&["queue", "resume", "held.test"]);
    assert!(out.status.success());
    assert_eq!(sink.wait_blocking(3, DEADLINE), 3, "released on A, B and C");
    for d in [a, b, c] {
        eventually("nothing held", || {
            cli_json(d, &["queue", "stats"])["suspended_domains"]
                .as_array()
                .is_some_and(|l| l.is_empty())
        });
    }
}

/// An automation rule that starts on node A (the destination answered
/// A's bulk mail with Gmail's 421-4.7.28) holds the destination's bulk
/// lanes on node B too, while B's urgent mail goes; `laneway shaping
/// clear` on B ends it on A as well.
#[test]
fn a_shaping_rule_started_on_one_node_holds_on_every_node() {
    use laneway_bench::sink::Event;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some(redis) = Redis::start("cluster::shared::shaping") else {
        return;
    };
    let angry = Arc::new(AtomicBool::new(true));
    let a2 = angry.clone();
    let sink = Sink::spawn(SinkConfig {
        reply: Some(Arc::new(move |e: &Event<'_>| match e {
            Event::Data(m, _)
                if a2.load(Ordering::SeqCst) && m.rcpts.iter().all(|r| r.starts_with("bulk")) =>
            {
                Some(
                    "421 4.7.28 Our system has detected an unusual rate of unsolicited mail".into(),
                )
            }
            _ => None,
        })),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shaping.toml");
    std::fs::write(
        &file,
        "[domain.\"gmail.test\"]\n[[domain.\"gmail.test\".automation]]\nregex = '4\\.7\\.28'\naction = \"suspend\"\nduration = \"1h\"\n",
    )
    .unwrap();
    let extra = format!("[shaping]\nfiles = [\"{}\"]\n", file.display());
    let nodes: Vec<Daemon> = ["a", "b"]
        .iter()
        .map(|n| Daemon::start(&node(&redis, n, &sink, &extra)))
        .collect();
    wait_joined(&nodes.iter().collect::<Vec<_>>());
    let (a, b) = (&nodes[0], &nodes[1]);
    let active = |d: &Daemon| -> Vec<serde_json::Value> {
        cli_json(d, &["shaping", "show"])["active"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    submit_many(a, "app@sender.test", "bulk@gmail.test", 1, 0);
    eventually("the rule starts on A", || !active(a).is_empty());
    angry.store(false, Ordering::SeqCst);
    eventually("and holds on B", || {
        active(b)
            .first()
            .is_some_and(|r| r["provider"] == "gmail.test" && r["node"] == "a")
    });
    // on B: bulk mail waits, urgent mail (sent after it) goes
    submit_many(b, "app@sender.test", "bulk2@gmail.test", 1, 0);
    submit_many(b, "app@sender.test", "reset@gmail.test", 1, 9);
    assert_eq!(sink.wait_blocking(1, DEADLINE), 1);
    assert_eq!(
        sink.messages()[0].rcpts,
        vec!["reset@gmail.test".to_string()]
    );
    let out = b.cli(&["shaping", "clear", "gmail.test"]);
    assert!(out.status.success(), "{out:?}");
    eventually("cleared on A too", || active(a).is_empty());
    assert_eq!(
        sink.wait_blocking(3, DEADLINE),
        3,
        "the bulk mail of A and B goes"
    );
}
