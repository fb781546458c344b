//! The lane promise under a real slow destination.

use std::time::{Duration, Instant};

use laneway_bench::sink::SinkConfig;
use laneway_tests::dns::TestDns;
use laneway_tests::smtp::Client;
use laneway_tests::{Daemon, eventually};

use super::*;

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
            // it went on a connection bulk mail had not used before it: a
            // reserved slot (only high lanes), or a normal one that was
            // just opened as a bulk connection rolled over after
            // messages_per_connection (which may carry bulk after it)
            let before: Vec<_> = msgs
                .iter()
                .filter(|m| {
                    m.lane == Some(0) && m.peer == urgent.peer && m.mail_at < urgent.mail_at
                })
                .collect();
            assert!(
                before.is_empty(),
                "the urgent message followed bulk mail on its connection: {}",
                detail(&before)
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
            // A connection takes its next item when its transaction ends,
            // and the sink sees MAIL a little later (a CI run showed MAIL
            // 0.9 ms after tq for an item taken before it). What must not
            // happen: a connection that was still busy when the urgent
            // message was queued takes bulk mail next.
            let free_at = |m: &laneway_bench::sink::Message| {
                msgs.iter()
                    .filter(|p| p.peer == m.peer && p.at <= m.mail_at)
                    .map(|p| p.at)
                    .max()
            };
            assert!(
                before
                    .iter()
                    .all(|m| m.mail_at < tq || free_at(m).is_none_or(|f| f < tq)),
                "a connection busy when the urgent message was queued took bulk mail next: {}",
                detail(&before)
            );
        }
    }
}
