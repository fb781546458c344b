//! Automatic back-off (`[[provider.<name>.automation]]`): a provider
//! answering Gmail's `421-4.7.28` stops the bulk lanes for the rule's
//! duration while urgent mail keeps flowing, the lanes ramp back up, the
//! rule survives a restart and `laneway shaping clear` ends it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use laneway_bench::sink::{Event, SinkConfig};
use laneway_tests::dns::TestDns;
use laneway_tests::{DEADLINE, Daemon, eventually};

use super::*;

/// Gmail's reply to an unusual rate of bulk mail (support.google.com/a/answer/3726730).
const GMAIL_4_7_28: &str = "421-4.7.28 [127.0.0.1] Our system has detected an unusual rate of\r\n421-4.7.28 unsolicited mail originating from your IP address. To protect our\r\n421 4.7.28 users from spam, mail sent from your IP address has been temporarily rate limited.";

/// A provider whose MX hosts end in `.bigmail.test`, with one rule, and a
/// sink that answers lane-0 mail with Gmail's 421 while `angry`.
fn setup(rule: &str) -> (TestDns, Sink, Arc<AtomicBool>, ShapingFile, String) {
    let dns = TestDns::start();
    let angry = Arc::new(AtomicBool::new(true));
    let a = angry.clone();
    let s = sink(SinkConfig {
        delay: Duration::from_millis(5),
        reply: reply(move |e| match e {
            Event::Data(m, _) if m.lane == Some(0) && a.load(Ordering::SeqCst) => {
                Some(GMAIL_4_7_28.to_string())
            }
            _ => None,
        }),
        ..Default::default()
    });
    dns.mx("gmail.test", 10, "mx.bigmail.test");
    dns.a("mx.bigmail.test", "127.0.0.1");
    let sf = shaping_file(&format!(
        "[provider.bigmail]\nmx_suffix = [\".bigmail.test\"]\nmax_connections = 2\n[[provider.bigmail.automation]]\n{rule}\n"
    ));
    let extra = sf.config.clone();
    let config = relay(&dns, s.addr.port(), &extra);
    (dns, s, angry, sf, config)
}

fn shaping_events(d: &Daemon) -> Vec<serde_json::Value> {
    events(d)
        .into_iter()
        .filter(|e| e["type"] == "shaping")
        .collect()
}

fn active(d: &Daemon) -> Vec<serde_json::Value> {
    let out = d.cli(&["shaping", "show", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["active"].as_array().cloned().unwrap_or_default()
}

/// Sends `n` messages in `lane`, one transaction each, on one session.
fn send(d: &Daemon, lane: u8, n: usize, tag: &str) {
    let mut c = laneway_tests::smtp::Client::hello(d.addr("in"));
    for i in 0..n {
        let body = format!(
            "From: news@sender.test\r\nSubject: {tag} {i}\r\nX-Priority-Queue: {lane}\r\nX-Bench-Lane: {lane}\r\n\r\n{tag}\r\n"
        );
        let r = c.send_mail(
            "news@sender.test",
            &[&format!("{tag}{i}@gmail.test")],
            &body,
        );
        assert!(r.starts_with("250"), "{r}");
    }
}

/// The test: after a 421-4.7.28 under bulk load, lane-0 delivery
/// to the provider stops for the duration while lane-9 messages are still
/// delivered within a second each; after it, lane 0 resumes at the ramped
/// rate (floor 2/s, doubling every second of an 8 s ramp), not all at once.
#[test]
fn a_421_suspends_the_bulk_lanes_and_spares_the_urgent_ones() {
    let (_dns, s, angry, _dir, config) = setup(
        "regex = '4\\.7\\.28'\naction = \"suspend\"\nduration = \"4s\"\nrate = \"2/s\"\nramp = \"8s\"",
    );
    let d = Daemon::start(&config);
    send(&d, 0, 40, "bulk");
    let ev = {
        eventually("the rule starts", || !shaping_events(&d).is_empty());
        shaping_events(&d)
    };
    let started = Instant::now();
    angry.store(false, Ordering::SeqCst);
    assert_eq!(ev[0]["action"], "suspend_started", "{ev:?}");
    assert_eq!(ev[0]["provider"], "bigmail", "{ev:?}");
    let a = active(&d);
    assert_eq!(
        (
            &a[0]["provider"],
            &a[0]["action"],
            &a[0]["phase"],
            &a[0]["lanes"]
        ),
        (
            &"bigmail".into(),
            &"suspend".into(),
            &"holding".into(),
            &"0,1,2,3,4".into()
        ),
        "{a:?}"
    );
    // urgent mail while the provider is held: each within a second
    let mut urgent_latency = Vec::new();
    for i in 0..5 {
        let before = s.messages().len();
        let t = Instant::now();
        send(&d, 9, 1, &format!("reset{i}-"));
        assert!(
            s.wait_blocking(before + 1, Duration::from_secs(1)) > before,
            "lane-9 message {i} not delivered within 1 s while the bulk lanes are held"
        );
        urgent_latency.push(t.elapsed());
    }
    let held_until = started + Duration::from_millis(3500);
    assert!(
        Instant::now() < held_until,
        "the urgent checks took too long to say anything about the hold"
    );
    std::thread::sleep(held_until - Instant::now());
    // nothing of lane 0 started after the rule did (what was in flight
    // when it started may have finished just after)
    let grace = started + Duration::from_millis(300);
    let bulk_during: Vec<_> = s
        .messages()
        .into_iter()
        .filter(|m| m.lane == Some(0) && m.mail_at > grace)
        .collect();
    assert!(
        bulk_during.is_empty(),
        "{} lane-0 messages went out during the hold",
        bulk_during.len()
    );
    let bulk_before = s.messages().iter().filter(|m| m.lane == Some(0)).count();
    // after the hold: lane 0 comes back, ramped
    let total = 40 + 5;
    assert_eq!(s.wait_blocking(total, DEADLINE), total);
    let mut bulk: Vec<Instant> = s
        .messages()
        .iter()
        .filter(|m| m.lane == Some(0))
        .map(|m| m.at)
        .collect();
    bulk.sort();
    let resumed = &bulk[bulk_before..];
    let first_ten = resumed[9] - resumed[0];
    println!(
        "figures: lane-9 latency while held: {:?}; lane-0 before the rule: {bulk_before}, after: {}; first 10 after the hold took {first_ten:?}; all {} after the hold in {:?}",
        urgent_latency,
        resumed.len(),
        resumed.len(),
        *resumed.last().unwrap() - resumed[0]
    );
    // at 2/s doubling each second, 10 messages take about 2 s; at once
    // they would take a few ms on this sink
    assert!(
        first_ten >= Duration::from_millis(1000),
        "lane 0 came back at once: {first_ten:?} for 10 messages"
    );
    let a = active(&d);
    assert!(
        a.is_empty() || a[0]["phase"] == "ramping",
        "the hold is over: {a:?}"
    );
    eventually("the end is announced", || {
        shaping_events(&d)
            .iter()
            .any(|e| e["action"] == "suspend_ended")
    });
}

/// A rule holding a provider is still holding after a restart (it is kept
/// in the spool directory); `laneway shaping clear` ends it, and the bulk
/// mail goes; clearing again is a clear error.
#[test]
fn an_active_rule_survives_a_restart_and_clear_ends_it() {
    let (_dns, s, angry, _dir, config) =
        setup("regex = ['unusual rate', 'IP address']\naction = \"suspend\"\nduration = \"1h\"");
    let mut d = Daemon::start(&config);
    send(&d, 0, 5, "bulk");
    eventually("the rule starts", || !shaping_events(&d).is_empty());
    angry.store(false, Ordering::SeqCst);
    assert!(
        spool_file(&d).exists(),
        "the rule is kept in the spool directory"
    );
    d.stop();
    d.restart();
    let a = active(&d);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["phase"], "holding", "{a:?}");
    assert!(a[0]["remaining_seconds"].as_u64().unwrap() > 3000, "{a:?}");
    // still held: urgent mail goes, the bulk mail does not
    // (the queued bulk mail would go first on restart: it is due, and
    // older than the urgent message sent after)
    let before = s.messages().iter().filter(|m| m.lane == Some(0)).count();
    let all = s.messages().len();
    send(&d, 9, 1, "reset");
    assert!(s.wait_blocking(all + 1, DEADLINE) > all);
    assert_eq!(
        s.messages().iter().filter(|m| m.lane == Some(0)).count(),
        before,
        "bulk mail went out under the rule"
    );
    let out = d.cli(&["shaping", "clear", "bigmail"]);
    assert!(out.status.success(), "{out:?}");
    assert!(active(&d).is_empty());
    assert_eq!(s.wait_blocking(5 + 1, DEADLINE), 5 + 1);
    eventually("the clearing is an event", || {
        shaping_events(&d)
            .iter()
            .any(|e| e["action"] == "suspend_cleared")
    });
    let again = d.cli(&["shaping", "clear", "bigmail"]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("no shaping rule holds"), "{err}");
}

fn spool_file(d: &Daemon) -> std::path::PathBuf {
    d.dir().join("spool").join("shaping-active.json")
}

/// `bounce` with a threshold: the first two matches only defer; the third
/// starts the rule, which fails that recipient for good and the lane's
/// queued mail to the provider without an attempt — lane 9 is not touched.
#[test]
fn a_bounce_rule_with_a_threshold_fails_the_bulk_mail() {
    let (_dns, s, _angry, _dir, config) = setup(
        "regex = '4\\.7\\.28'\naction = \"bounce\"\ntrigger = \"3/1m\"\nduration = \"1h\"\nlanes = \"0\"",
    );
    let d = Daemon::start(&config);
    send(&d, 0, 10, "bulk");
    eventually("the rule starts", || !shaping_events(&d).is_empty());
    send(&d, 9, 1, "reset");
    assert_eq!(s.wait_blocking(1, DEADLINE), 1);
    // (the senders' DSNs bounce too here: sender.test does not exist)
    let bulk = |e: &&serde_json::Value| e["recipient"].as_str().unwrap().starts_with("bulk");
    let ev = wait_events(&d, "every bulk message bounced", |e| {
        e.iter()
            .filter(bulk)
            .filter(|e| e["type"] == "bounce")
            .count()
            == 10
    });
    let bounced: Vec<_> = ev
        .iter()
        .filter(bulk)
        .filter(|e| e["type"] == "bounce")
        .collect();
    let deferred = ev
        .iter()
        .filter(bulk)
        .filter(|e| e["type"] == "transient_failure")
        .count();
    println!(
        "figures: 10 lane-0 messages = {} bounced; {deferred} deferrals before the threshold",
        bounced.len()
    );
    assert!(
        deferred >= 2,
        "the first two matches only defer: {deferred}"
    );
    assert!(
        bounced.iter().all(|e| e["description"]
            .as_str()
            .unwrap()
            .contains("shaping rule 1 of bigmail")),
        "{bounced:?}"
    );
    assert_eq!(s.messages()[0].lane, Some(9));
    // a rule's bounce is Laneway's policy, never the remote's word on the
    // address: nobody is suppressed for it
    let out = d.cli(&["suppressions", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["suppressions"], serde_json::json!([]), "{v}");
    assert!(
        bounced.iter().all(|e| e["stage"] == "policy"),
        "{bounced:?}"
    );
}
