//! More than one node on a real, private `redis-server`: shared limits,
//! suppressions from bounces, holds, leases of a killed node, Redis lost
//! and restarted empty, and draining a node. Each test starts its own
//! Redis on its own port (no persistence) and skips, saying so, where
//! `redis-server` is not installed.

mod drain;
mod limits;
mod outage;
mod shared;
mod stores;

use laneway_bench::sink::Sink;
use laneway_tests::redis::Redis;
use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::{Daemon, eventually};

/// A node named `name` of the cluster on `redis`, relaying everything to
/// `sink` (lease 3 s, fast retries); `extra` is appended.
pub(crate) fn node(redis: &Redis, name: &str, sink: &Sink, extra: &str) -> String {
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
idle_timeout = "300ms"
[[route]]
domain = "*"
via = "{}"
[cluster]
redis = "{}"
node_id = "{name}"
lease = "3s"
[metrics]
bind = "127.0.0.1:0"
[log]
events = "{{dir}}/events.jsonl"
{extra}
"#,
        sink.addr,
        redis.url()
    )
}

/// Submits `n` messages to `to` through one SMTP session; their ids.
/// Each carries an `X-Bench-Id` unique in the test run.
pub(crate) fn submit_many(d: &Daemon, from: &str, to: &str, n: usize, lane: u8) -> Vec<String> {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut c = Client::hello(d.addr("in"));
    (0..n)
        .map(|i| {
            let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let content = format!(
                "From: {from}\r\nSubject: {i}\r\nX-Priority-Queue: {lane}\r\nX-Bench-Id: {seq}\r\n\r\nbody {i}\r\n"
            );
            queued_id(&c.send_mail(from, &[to], &content))
        })
        .collect()
}

/// `laneway <args> --json` against a node, parsed.
pub(crate) fn cli_json(d: &Daemon, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = d.cli(&all);
    assert!(
        out.status.success(),
        "laneway {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Whether `address` is on `d`'s suppression list.
pub(crate) fn suppressed(d: &Daemon, address: &str) -> bool {
    cli_json(d, &["suppressions", "list"])["suppressions"]
        .as_array()
        .is_some_and(|l| l.iter().any(|e| e["address"] == address))
}

/// Waits until every node has joined (it sees all of them in the view).
pub(crate) fn wait_joined(nodes: &[&Daemon]) {
    for d in nodes {
        eventually("every node in the cluster view", || {
            cli_json(d, &["queue", "stats", "--cluster"])["nodes"]
                .as_array()
                .is_some_and(|n| n.len() == nodes.len())
        });
    }
}

/// A metric's value from a node's `/metrics`.
pub(crate) fn metric(d: &Daemon, name: &str) -> Option<f64> {
    let (_, _, body) =
        laneway_tests::http::request(d.addr("metrics"), "GET", "/metrics", &[], None);
    body.as_str()
        .unwrap_or("")
        .lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
