//! `kill -9` in a loop under delivery load: nothing acknowledged lost, at most the transactions in flight repeated.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use laneway_bench::sink::{Sink, SinkConfig};
use laneway_tests::dns::TestDns;
use laneway_tests::smtp::Client;
use laneway_tests::{Daemon, eventually};

use super::*;

/// Recipients per message in the crash test: with VERP each gets a
/// transaction of its own, so a message is a batch of transactions.
pub(crate) const CRASH_RCPTS: usize = 4;

/// `kill -9` twenty times while mail flows: nothing acknowledged is lost,
/// and a crash repeats at most the one transaction each connection had in
/// flight — each recipient's outcome is recorded before the connection's
/// next transaction, also between the per-recipient (VERP) transactions of
/// one message.
#[test]
pub(crate) fn kill_9_in_a_loop_under_delivery_load_loses_nothing() {
    let dns = TestDns::start();
    let mx = Sink::spawn(SinkConfig {
        delay: Duration::from_millis(2),
        ..Default::default()
    });
    dns.mx("example.test", 10, "mx.example.test");
    dns.a("mx.example.test", "127.0.0.1");
    let keys = tempfile::tempdir().unwrap();
    let secret = keys.path().join("bounce.secret");
    std::fs::write(&secret, "a bounce secret of more than sixteen bytes").unwrap();
    let verp = format!(
        "[auth]\nbounce_secret_file = \"{}\"\n[[domain]]\nname = \"sender.test\"\nbounce_domain = \"bounces.sender.test\"\n",
        secret.display()
    );
    let mut d = Daemon::start(&relay(&dns, mx.addr.port(), &verp));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let seq = Arc::new(AtomicUsize::new(0));
    let rounds = 20;
    // connections open at the sink at each kill: each can have at most one
    // transaction whose outcome Laneway had not yet recorded
    let mut in_flight = Vec::new();
    let mut kills = Vec::new();
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let before = acked.lock().unwrap().len();
        let addr = d.addr("mx");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (acked, seq, stop) = (acked.clone(), seq.clone(), stop.clone());
                std::thread::spawn(move || load(addr, &acked, &seq, &stop))
            })
            .collect();
        eventually("more messages acknowledged", || {
            acked.lock().unwrap().len() >= before + 15
        });
        // kill at a moment that varies from round to round
        std::thread::sleep(Duration::from_millis((round as u64 * 37) % 50));
        let open_before = mx.open_connections();
        d.kill9();
        in_flight.push(open_before.max(mx.open_connections()));
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().unwrap();
        }
        // The sink may still be reading what the dead process had written
        // (a whole pipelined transaction can sit in its socket buffer): a
        // kill's moment, against which repeats are counted, is when the
        // sink has seen every one of its connections end, before the next
        // process starts. (Taken before the kill, a transaction the sink
        // read just after it counted against the next kill.)
        eventually("the sink saw the killed daemon's connections end", || {
            mx.open_connections() == 0
        });
        kills.push(std::time::Instant::now());
        d.restart();
    }
    let acked = acked.lock().unwrap().clone();
    eventually("the spool drains", || d.spool_stats()["total"] == 0);
    let sent = seq.load(Ordering::SeqCst) * CRASH_RCPTS;
    // what arrived, per (message, recipient): one transaction each
    let mut arrived: HashMap<(String, String), Vec<std::time::Instant>> = HashMap::new();
    for m in mx.messages() {
        let id = laneway_bench::sink::header(&m.data, "X-Bench-Id").expect("bench id");
        assert_eq!(m.rcpts.len(), 1, "VERP: one recipient per transaction");
        // when its transaction began: one in flight at a kill may end after it
        arrived
            .entry((id, m.rcpts[0].clone()))
            .or_default()
            .push(m.mail_at);
    }
    let acked_set: std::collections::HashSet<&String> = acked.iter().collect();
    let expected: Vec<(String, String)> = acked
        .iter()
        .flat_map(|id| {
            let n = &id[1..];
            (0..CRASH_RCPTS).map(move |j| (id.clone(), format!("r{n}-{j}@example.test")))
        })
        .collect();
    let lost: Vec<&(String, String)> = expected
        .iter()
        .filter(|k| !arrived.contains_key(*k))
        .collect();
    let arrivals: usize = arrived.values().map(Vec::len).sum();
    let distinct = arrived.len();
    let duplicates = arrivals - distinct;
    let unacked = arrived
        .keys()
        .filter(|(id, _)| !acked_set.contains(id))
        .count();
    // a repeat belongs to the first kill after the arrival it repeats
    let mut repeated_at_kill = vec![0usize; rounds];
    for t in arrived.values_mut() {
        t.sort();
        for w in t.windows(2) {
            if let Some(k) = kills.iter().position(|k| *k >= w[0]) {
                repeated_at_kill[k] += 1;
            }
        }
    }
    let in_flight_total: usize = in_flight.iter().sum();
    let acknowledged = expected.len();
    println!(
        "kill -9 x{rounds}, {CRASH_RCPTS} recipients a message (one VERP transaction each): {sent} recipients sent = {distinct} arrived + {} never stored (the kill came first); {distinct} arrived = {acknowledged} acknowledged + {unacked} stored but never acknowledged (killed between fsync and 250); {arrivals} transactions = {distinct} first + {duplicates} repeated (per kill {repeated_at_kill:?}); {in_flight_total} transactions in flight at the kills (connections open at the sink: {in_flight:?}); {} lost",
        sent - distinct,
        lost.len()
    );
    assert_eq!(acked_set.len(), acked.len(), "an id was acknowledged twice");
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {lost:?}"
    );
    assert_eq!(distinct, acknowledged + unacked);
    assert_eq!(
        repeated_at_kill.iter().sum::<usize>(),
        duplicates,
        "every repeat follows a kill"
    );
    for (k, (rep, open)) in repeated_at_kill.iter().zip(&in_flight).enumerate() {
        assert!(
            rep <= open,
            "kill {k}: {rep} transactions repeated, but only {open} were in flight"
        );
    }
}

/// Sends messages of [`CRASH_RCPTS`] recipients with unique `X-Bench-Id`s
/// until told to stop or the connection dies; records the acknowledged ones.
pub(crate) fn load(
    addr: SocketAddr,
    acked: &Mutex<Vec<String>>,
    seq: &AtomicUsize,
    stop: &AtomicBool,
) {
    let mut c = Client::connect(addr);
    if c.try_reply().is_err() {
        return;
    }
    c.send(b"EHLO load\r\n");
    if c.try_reply().is_err() {
        return;
    }
    while !stop.load(Ordering::SeqCst) {
        let n = seq.fetch_add(1, Ordering::SeqCst);
        let id = format!("k{n}");
        let rcpts: String = (0..CRASH_RCPTS)
            .map(|j| format!("RCPT TO:<r{n}-{j}@example.test>\r\n"))
            .collect();
        let msg = format!(
            "MAIL FROM:<a@sender.test>\r\n{rcpts}DATA\r\nFrom: a@sender.test\r\nX-Bench-Id: {id}\r\nSubject: {id}\r\n\r\n{}\r\n.\r\n",
            "z".repeat(500)
        );
        if c.try_send(msg.as_bytes()).is_err() {
            return;
        }
        for _ in 0..CRASH_RCPTS + 3 {
            match c.try_reply() {
                Ok(r) if r.starts_with('2') || r.starts_with('3') => {
                    if r.starts_with("250 2.0.0 Ok: queued") {
                        acked.lock().unwrap().push(id.clone());
                    }
                }
                _ => return,
            }
        }
    }
}
