//! Resident memory per queued message in the scheduler's index, measured
//! in one thread (one malloc arena, so no fragmentation between threads):
//! `cargo run --release -p laneway-spool --example queue_memory -- 1000000`.
//! Prints `figure name=bytes_per_message value=…` from /proc/self/statm.

use std::sync::Arc;

use laneway_common::id::IdGenerator;
use laneway_common::{Envelope, Origin, Priority, Recipient};
use laneway_spool::queue::{Queue, QueueSettings, SiteInfo, SiteLimits, SystemClock};
use laneway_spool::state::MessageState;
use laneway_spool::store::DiskStore;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("a number of messages"))
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, _) = DiskStore::open(dir.path(), 4).expect("spool");
    let queue = Queue::new(
        Arc::new(store),
        QueueSettings::default(),
        Arc::new(SystemClock),
    );
    let ids = IdGenerator::new(None);
    let lane = Priority::new(0).expect("lane");
    let state = MessageState::default();
    // one message resolves the domain, so the rest go straight to its lanes
    let env = |i: usize| {
        let mut e = Envelope::new(
            "news@shop.example",
            vec![Recipient::new(format!("r{i}@bench.test"))],
            Origin::local(),
        );
        e.queued_at_ms = laneway_common::envelope::now_ms();
        e
    };
    queue.insert(ids.next_id(), lane, &env(0), &state, 4096);
    queue.resolved(
        "bench.test",
        SiteInfo {
            key: "bench-site".into(),
            limits: SiteLimits::default(),
            ttl_ms: 3_600_000,
            shaping: None,
        },
    );
    let before = resident_bytes();
    for i in 1..n {
        queue.insert(ids.next_id(), lane, &env(i), &state, 4096);
    }
    let after = resident_bytes();
    let per = (after - before) as f64 / (n - 1) as f64;
    println!("figure name=bytes_per_message value={per:.1} unit=B messages={n}");
}
