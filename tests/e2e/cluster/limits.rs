//! Destination limits across nodes: connections, rate, reserved slots
//! and the leases of a node that died.

use std::time::{Duration, Instant};

use laneway_bench::sink::{Sink, SinkConfig};
use laneway_tests::redis::Redis;
use laneway_tests::{DEADLINE, Daemon, eventually};

use super::*;

fn three(redis: &Redis, sink: &Sink, extra: &str) -> Vec<Daemon> {
    let nodes: Vec<Daemon> = ["a", "b", "c"]
        .iter()
        .map(|n| Daemon::start(&node(redis, n, sink, extra)))
        .collect();
    wait_joined(&nodes.iter().collect::<Vec<_>>());
    nodes
}

/// A limit of 4 connections holds across three nodes: the sink never sees
/// more than 4 open at once, although each node alone would open 4.
#[test]
fn a_connection_limit_holds_across_three_nodes() {
    let Some(redis) = Redis::start("cluster::limits::connections") else {
        return;
    };
    let sink = Sink::spawn(SinkConfig {
        delay: Duration::from_millis(100),
        ..Default::default()
    });
    let nodes = three(
        &redis,
        &sink,
        "[[destination]]\ndomain = \"example.test\"\nmax_connections = 4\n",
    );
    for d in &nodes {
        submit_many(d, "app@sender.test", "user@example.test", 40, 4);
    }
    assert_eq!(sink.wait_blocking(120, Duration::from_secs(60)), 120);
    let peak = sink.max_open_connections();
    eprintln!(
        "figures: 3 nodes x 40 messages, limit 4: {} arrived over {} connections, at most {peak} open at once",
        sink.count(),
        sink.connections()
    );
    assert!(peak <= 4, "{peak} connections open at once");
    assert!(peak >= 2, "the nodes shared the slots ({peak})");
}

/// A rate of 20 messages a second holds across three nodes: in any 20 s
/// window the sink sees at most 20 × 20 plus the burst.
#[test]
fn a_rate_holds_across_three_nodes() {
    let Some(redis) = Redis::start("cluster::limits::rate") else {
        return;
    };
    let sink = Sink::spawn(SinkConfig::default());
    let nodes = three(
        &redis,
        &sink,
        "[[destination]]\ndomain = \"example.test\"\nrate = \"20/s\"\n",
    );
    let per_node = 150;
    for d in &nodes {
        submit_many(d, "app@sender.test", "user@example.test", per_node, 4);
    }
    let total = per_node * nodes.len();
    assert_eq!(
        sink.wait_blocking(total, Duration::from_secs(90)),
        total,
        "every message arrives"
    );
    let mut at: Vec<Instant> = sink.messages().iter().map(|m| m.mail_at).collect();
    at.sort();
    let window = Duration::from_secs(20);
    let most = (0..at.len())
        .map(|i| at[i..].iter().take_while(|t| **t < at[i] + window).count())
        .max()
        .unwrap_or(0);
    let span = at[at.len() - 1] - at[0];
    let bound = 20 * 20 + laneway_cluster::RATE_BURST as usize;
    eprintln!(
        "figures: 3 nodes x {per_node} messages at 20/s: {total} arrived in {:.1} s ({:.1}/s); most in a 20 s window {most} (bound {bound})",
        span.as_secs_f64(),
        (total - 1) as f64 / span.as_secs_f64()
    );
    assert!(most <= bound, "{most} messages in 20 s");
    // the nodes did not each send at 20/s, nor much below the shared rate
    assert!(span >= Duration::from_secs(20), "{span:?}");
}

/// Urgent mail keeps its reserved slot cluster-wide: bulk mail of two
/// nodes fills every other slot, and an urgent message on the third still
/// goes at once.
#[test]
fn urgent_mail_uses_its_reserved_slot_while_other_nodes_fill_the_rest() {
    let Some(redis) = Redis::start("cluster::limits::reserved") else {
        return;
    };
    let sink = Sink::spawn(SinkConfig {
        delay: Duration::from_millis(500),
        ..Default::default()
    });
    let nodes = three(
        &redis,
        &sink,
        "[[destination]]\ndomain = \"example.test\"\nmax_connections = 3\nreserved_connections = 1\nreserved_min_lane = 7\n",
    );
    submit_many(&nodes[0], "news@sender.test", "user@example.test", 30, 1);
    submit_many(&nodes[1], "news@sender.test", "user@example.test", 30, 1);
    eventually("bulk mail fills the regular slots", || {
        sink.open_connections() >= 2
    });
    let sent = Instant::now();
    let id = submit_many(&nodes[2], "reset@sender.test", "user@example.test", 1, 9).remove(0);
    eventually("the urgent message arrives", || {
        sink.messages()
            .iter()
            .any(|m| m.from == "reset@sender.test")
    });
    let waited = sent.elapsed();
    let bulk_left = 60
        - sink
            .messages()
            .iter()
            .filter(|m| m.from == "news@sender.test")
            .count();
    eprintln!(
        "figures: urgent {id} arrived {:.2} s after submission with {bulk_left} bulk messages still queued; at most {} connections open",
        waited.as_secs_f64(),
        sink.max_open_connections()
    );
    assert!(
        bulk_left > 20,
        "the urgent message did not wait for the bulk ({bulk_left} left)"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(sink.wait_blocking(61, DEADLINE * 2), 61);
    assert!(sink.max_open_connections() <= 3);
}

/// A node killed while it holds every slot of a destination gives them
/// back within the lease: another node's mail goes then.
#[test]
fn a_killed_nodes_slots_come_back_within_the_lease() {
    let Some(redis) = Redis::start("cluster::limits::leases") else {
        return;
    };
    // the sink answers the end of data after 60 s: A's connections stay busy
    let sink = Sink::spawn(SinkConfig {
        delay: Duration::from_secs(60),
        ..Default::default()
    });
    let extra = "[[destination]]\ndomain = \"example.test\"\nmax_connections = 2\n";
    let mut a = Daemon::start(&node(&redis, "a", &sink, extra));
    let b = Daemon::start(&node(&redis, "b", &sink, extra));
    wait_joined(&[&a, &b]);
    submit_many(&a, "app@sender.test", "user@example.test", 2, 4);
    eventually("A holds both slots", || sink.open_connections() == 2);
    submit_many(&b, "app@sender.test", "user@example.test", 1, 4);
    // B's message waits: both slots are A's (checked again after the kill)
    eventually("B's message is queued", || {
        cli_json(&b, &["queue", "stats"])["total"] == 1
    });
    assert_eq!(sink.connections(), 2, "B opened no third connection");
    let killed = Instant::now();
    a.kill9();
    eventually("B connects once A's leases expire", || {
        sink.connections() >= 3
    });
    let back = killed.elapsed();
    eprintln!(
        "figures: lease 3 s; B connected {:.2} s after A was killed holding both slots",
        back.as_secs_f64()
    );
    assert!(back <= Duration::from_millis(4500), "{back:?}");
}
