//! Redis lost in the middle of a run and started again empty: nothing is
//! lost or bounced, the nodes go on alone, and once Redis is back they
//! share limits again and re-seed it, so that every suppression made
//! before still applies on every node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use laneway_bench::sink::{Sink, SinkConfig};
use laneway_tests::redis::Redis;
use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::{Daemon, eventually};

use super::*;

/// Sends one message a few ms apart until `stop`; the acknowledged ids.
fn load(addr: std::net::SocketAddr, tag: &str, acked: &Mutex<Vec<String>>, stop: &AtomicBool) {
    let mut c = Client::hello(addr);
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let content = format!(
            "From: app@sender.test\r\nSubject: {i}\r\nX-Bench-Id: {tag}-{i}\r\n\r\nbody\r\n"
        );
        let r = c.send_mail("app@sender.test", &["user@example.test"], &content);
        acked.lock().unwrap().push(queued_id(&r));
        i += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn redis_lost_and_restarted_empty_loses_nothing_and_forgets_nothing() {
    let Some(mut redis) = Redis::start("cluster::outage") else {
        return;
    };
    let sink = Sink::spawn(SinkConfig::default());
    let extra =
        "[[destination]]\ndomain = \"example.test\"\nmax_connections = 4\nrate = \"500/s\"\n";
    let nodes: Vec<Daemon> = ["a", "b", "c"]
        .iter()
        .map(|n| Daemon::start(&node(&redis, n, &sink, extra)))
        .collect();
    wait_joined(&nodes.iter().collect::<Vec<_>>());
    // a suppression made before the outage, on A
    let out = nodes[0].cli(&[
        "suppressions",
        "add",
        "gone@example.test",
        "--sender-domain",
        "sender.test",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for d in &nodes {
        eventually("the suppression reaches every node", || {
            suppressed(d, "gone@example.test")
        });
    }
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let (addr, acked, stop) = (d.addr("in"), acked.clone(), stop.clone());
            std::thread::spawn(move || load(addr, &format!("n{i}"), &acked, &stop))
        })
        .collect();
    eventually("mail flows", || sink.count() >= 30);
    redis.kill();
    for d in &nodes {
        assert!(
            d.wait_log(|l| l.contains("cluster: Redis unreachable")),
            "logged once"
        );
        eventually("laneway_cluster_connected is 0", || {
            metric(d, "laneway_cluster_connected") == Some(0.0)
        });
        let (st, _, _) =
            laneway_tests::http::request(d.addr("metrics"), "GET", "/readyz", &[], None);
        assert_eq!(st, 200, "still ready without Redis");
    }
    // mail goes on while Redis is away, and a suppression made meanwhile waits
    let during = sink.count();
    eventually("mail flows without Redis", || sink.count() >= during + 30);
    let out = nodes[1].cli(&[
        "suppressions",
        "add",
        "later@example.test",
        "--sender-domain",
        "sender.test",
    ]);
    assert!(out.status.success());
    redis.restart();
    for d in &nodes {
        assert!(d.wait_log(|l| l.contains("cluster: Redis reachable")));
        eventually("laneway_cluster_connected is 1 again", || {
            metric(d, "laneway_cluster_connected") == Some(1.0)
        });
    }
    // limits are shared again: the leases and the rate live in Redis
    eventually("connection leases in Redis again", || {
        redis.command(&["KEYS", "lw:conn:*"]).contains("lw:conn:")
    });
    eventually("the rate in Redis again", || {
        redis.command(&["KEYS", "lw:rate:*"]).contains("lw:rate:")
    });
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    for d in &nodes {
        eventually("every node's queue drains", || {
            cli_json(d, &["queue", "stats"])["total"] == 0
        });
    }
    // every acknowledged message arrived, none bounced
    let ids: std::collections::HashSet<String> = sink
        .messages()
        .iter()
        .filter_map(|m| laneway_bench::sink::header(&m.data, "X-Bench-Id"))
        .collect();
    eprintln!(
        "figures: Redis killed and restarted empty under load: {} acknowledged, {} distinct arrived, {} arrivals",
        acked.len(),
        ids.len(),
        sink.count()
    );
    assert_eq!(ids.len(), acked.len(), "every acknowledged message arrived");
    for d in &nodes {
        let events = std::fs::read_to_string(d.dir().join("events.jsonl")).unwrap_or_default();
        assert!(
            !events.contains("\"type\":\"bounce\"") && !events.contains("\"type\":\"expiration\""),
            "nothing bounced"
        );
    }
    // Redis was re-seeded from the nodes: both suppressions apply everywhere
    eventually("Redis holds the suppressions again", || {
        redis.command(&["HLEN", "lw:sup"]).starts_with(":2")
    });
    for d in &nodes {
        for who in ["gone@example.test", "later@example.test"] {
            eventually(&format!("{who} suppressed on every node"), || {
                suppressed(d, who)
            });
        }
    }
    wait_joined(&nodes.iter().collect::<Vec<_>>());
}
