//! `laneway queue drain --to URL`: a node hands its queue to another, in
//! the same lanes and states, none lost or duplicated.

use std::collections::{BTreeMap, HashSet};

use laneway_bench::sink::{Sink, SinkConfig};
use laneway_tests::{DEADLINE, Daemon, eventually};

use super::*;

/// Messages per lane.
const PER_LANE: usize = 100;

#[test]
fn drain_moves_a_thousand_queued_messages_to_another_node() {
    let sink = Sink::spawn(SinkConfig::default());
    let token = "drain-admin-token-0123456789";
    // A can deliver nowhere (its mail stays queued, tried and deferred);
    // B holds everything until it is checked, then delivers to the sink
    let a = Daemon::start(
        r#"
[[listener]]
name = "in"
bind = "127.0.0.1:0"
trust_priority = true
[relay]
trusted_networks = ["127.0.0.1/32"]
[[route]]
domain = "*"
via = "127.0.0.1:9"
"#,
    );
    let b = Daemon::start(&format!(
        r#"
[[listener]]
name = "in"
bind = "127.0.0.1:0"
[[route]]
domain = "*"
via = "{}"
[[destination]]
domain = "*"
hold = true
[api]
bind = "127.0.0.1:0"
[[api.key]]
name = "ops"
sha256 = "{}"
scopes = ["admin"]
"#,
        sink.addr,
        laneway_common::token::sha256_hex(token)
    ));
    let mut sent = BTreeMap::new();
    for lane in 0..10u8 {
        for id in submit_many(
            &a,
            "app@sender.test",
            &format!("u{lane}@example.test"),
            PER_LANE,
            lane,
        ) {
            sent.insert(id, lane);
        }
    }
    let total = sent.len();
    eventually("A tried its mail once", || {
        cli_json(&a, &["queue", "stats"])["deferred"].as_u64() == Some(total as u64)
    });
    let url = format!("http://{}", b.addr("api"));
    let out = a.cli(&["queue", "drain", "--to", &url, "--key", token]);
    assert!(
        out.status.success(),
        "drain: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let status = cli_json(&a, &["queue", "drain-status"]);
    eprintln!("figures: drain of {total} messages: {status}");
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["moved"].as_u64(), Some(total as u64), "{status}");
    assert_eq!(cli_json(&a, &["queue", "stats"])["total"], 0);
    assert!(a.spooled_ids(0).is_empty(), "A's spool is empty");
    // B has each one, in its lane, with its attempt
    let mut on_b = BTreeMap::new();
    for lane in 0..10u8 {
        for id in b.spooled_ids(lane) {
            on_b.insert(id, lane);
        }
    }
    assert_eq!(on_b, sent, "same ids in the same lanes");
    let one = sent.keys().next().unwrap();
    let detail = cli_json(&b, &["queue", "show", one]);
    assert!(
        detail["attempts"].as_u64() >= Some(1),
        "attempts kept: {detail}"
    );
    // once released (and, as their retry times came along, made due),
    // B delivers each exactly once
    let out = b.cli(&["queue", "resume", "*"]);
    assert!(out.status.success());
    let out = b.cli(&["queue", "flush"]);
    assert!(out.status.success());
    assert_eq!(sink.wait_blocking(total, DEADLINE * 2), total);
    eventually("B's queue drains", || {
        cli_json(&b, &["queue", "stats"])["total"] == 0
    });
    let ids: HashSet<String> = sink
        .messages()
        .iter()
        .filter_map(|m| laneway_bench::sink::header(&m.data, "X-Bench-Id"))
        .collect();
    assert_eq!(
        (ids.len(), sink.count()),
        (total, total),
        "none lost or duplicated"
    );
    // A's Received: only: nothing added or signed again on B
    let m = &sink.messages()[0];
    let text = String::from_utf8_lossy(&m.data);
    assert_eq!(text.matches("Received:").count(), 1, "{text}");
}
