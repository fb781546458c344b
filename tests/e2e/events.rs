//! Events end to end: signed webhooks to a real HTTP receiver that checks
//! every signature, a receiver that fails for a while, `kill -9` with
//! events not yet delivered, and the history (`queue trace`, the API).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use laneway_bench::sink::{Event, Sink, SinkConfig};
use laneway_bench::webhook::Receiver;
use laneway_tests::http::api;
use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::{DEADLINE, Daemon, eventually};
use serde_json::{Value, json};

use crate::api::new_key;

const SECRET: &str = "a webhook secret for the tests";

/// A daemon relaying to `sink`, with the API (an admin key) and one
/// webhook to `hook`; `extra` is appended.
fn daemon(sink: &Sink, hook: &Receiver, extra: &str) -> (Daemon, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("webhook.secret");
    // the second line is an older secret still accepted: both sign
    std::fs::write(&secret, format!("{SECRET}\nan older secret\n")).unwrap();
    let (token, key) = new_key("ops", "send,admin", "");
    let cfg = format!(
        r#"
[[listener]]
name = "in"
bind = "127.0.0.1:0"
trust_priority = true
[relay]
trusted_networks = ["127.0.0.1/32"]
[queue]
retry_base = "300ms"
retry_max = "1s"
[outbound]
idle_timeout = "200ms"
[[route]]
domain = "*"
via = "{}"
[api]
bind = "127.0.0.1:0"
{key}
[[webhook]]
name = "shop"
url = "{}"
batch_size = 50
batch_wait = "200ms"
retry_initial = "200ms"
retry_max = "1s"
secret_file = "{}"
{extra}
"#,
        sink.addr,
        hook.url(),
        secret.display()
    );
    (Daemon::start(&cfg), token, dir)
}

/// The events the receiver accepted, by message id, in arrival order.
fn by_message(hook: &Receiver) -> HashMap<String, Vec<Value>> {
    let mut m: HashMap<String, Vec<Value>> = HashMap::new();
    for e in hook.accepted() {
        m.entry(e["message_id"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(e);
    }
    m
}

fn types(events: &[Value], rcpt: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["recipient"] == rcpt)
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// A delivered, a deferred-then-delivered, a bounced and a suppressed
/// recipient of one API submission: each gets its events, signed, with the
/// metadata given at submission, in order; the history shows them.
#[test]
fn every_outcome_reaches_the_webhook_signed_with_its_metadata() {
    let hook = Receiver::spawn(SECRET.as_bytes());
    let deferred_once = Arc::new(AtomicBool::new(false));
    let d1 = deferred_once.clone();
    let sink = Sink::spawn(SinkConfig {
        reply: Some(Arc::new(move |e: &Event<'_>| match e {
            Event::Rcpt(r) if r.starts_with("gone@") => Some("550 5.1.1 no such user".into()),
            Event::Rcpt(r) if r.starts_with("retry@") && !d1.swap(true, Ordering::SeqCst) => {
                Some("451 4.2.1 try later".into())
            }
            _ => None,
        })),
        ..Default::default()
    });
    let (d, token, _dir) = daemon(&sink, &hook, "");
    // a complaint made sup@ a bulk-only suppression: skipped in bulk lanes
    let out = d.cli(&[
        "suppressions",
        "add",
        "sup@example.net",
        "--sender-domain",
        "shop.test",
        "--bulk-only",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = json!({
        "from": "orders@shop.test",
        "to": ["good@example.net", "retry@example.net", "gone@example.net", "sup@example.net"],
        "subject": "Your order", "text": "Thanks!", "priority": 2,
        "metadata": {"order": "42", "customer": "c-7"}
    });
    let (st, v) = api(
        d.addr("api"),
        "POST",
        "/api/v1/messages",
        &token,
        Some(&body),
    );
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let want: [(&str, &[&str]); 4] = [
        ("good@example.net", &["reception", "delivery"]),
        (
            "retry@example.net",
            &["reception", "transient_failure", "delivery"],
        ),
        ("gone@example.net", &["reception", "bounce"]),
        ("sup@example.net", &["suppressed"]),
    ];
    eventually("every event of the message at the webhook", || {
        let m = by_message(&hook);
        let ev = m.get(&id).cloned().unwrap_or_default();
        want.iter().all(|(r, t)| types(&ev, r) == *t)
    });
    let deliveries = hook.deliveries();
    assert!(deliveries.iter().all(|d| d.signed), "every request signed");
    let ev = by_message(&hook).remove(&id).unwrap();
    for e in &ev {
        assert_eq!(
            e["metadata"],
            json!({"order": "42", "customer": "c-7"}),
            "{e}"
        );
        assert_eq!(
            (e["lane"].as_u64(), e["sender"].as_str()),
            (Some(2), Some("orders@shop.test")),
            "{e}"
        );
        assert_eq!(e["schema"], 1);
        assert!(e["event_id"].as_str().is_some_and(|i| i.len() == 32), "{e}");
        assert_eq!(e["node"], "laneway.test");
    }
    let ids: HashSet<&str> = ev.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), ev.len(), "event ids are unique");
    let bounce = ev.iter().find(|e| e["type"] == "bounce").unwrap();
    assert_eq!(
        (
            bounce["bounce_class"].as_str(),
            bounce["reply"]["code"].as_u64(),
            bounce["stage"].as_str()
        ),
        (Some("invalid_recipient"), Some(550), Some("rcpt")),
        "{bounce}"
    );
    let delivered = ev.iter().find(|e| e["type"] == "delivery").unwrap();
    assert_eq!(delivered["next_hop"]["ip"], "127.0.0.1", "{delivered}");
    assert_eq!(delivered["tls"]["policy"], "opportunistic", "{delivered}");
    let deferred = ev
        .iter()
        .find(|e| e["type"] == "transient_failure")
        .unwrap();
    assert!(deferred["next_attempt"].as_str().is_some(), "{deferred}");
    let reception = ev.iter().find(|e| e["type"] == "reception").unwrap();
    assert_eq!(
        (reception["door"].as_str(), reception["via"].as_str()),
        (Some("api"), Some("ops"))
    );

    // the same story from the history, and through trace
    let (st, h) = api(
        d.addr("api"),
        "GET",
        &format!("/api/v1/messages/{id}/events"),
        &token,
        None,
    );
    assert_eq!(st, 200);
    let kinds: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "reception").count(),
        3,
        "{h}"
    );
    let (_, by_meta) = api(
        d.addr("api"),
        "GET",
        "/api/v1/events?meta.order=42",
        &token,
        None,
    );
    assert_eq!(
        by_meta["events"].as_array().unwrap().len(),
        h["events"].as_array().unwrap().len()
    );
    let out = d.cli(&["queue", "trace", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("transient_failure") && text.contains("550"),
        "{text}"
    );
    let out = d.cli(&["queue", "trace", "gone@example.net", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "bounce"),
        "{v}"
    );
}

/// Submits `n` messages over SMTP with metadata headers; their ids.
fn submit(d: &Daemon, n: usize) -> Vec<String> {
    let mut c = Client::hello(d.addr("in"));
    (0..n)
        .map(|i| {
            let content = format!(
                "From: app@shop.test\r\nSubject: {i}\r\nX-Laneway-Meta-Seq: {i}\r\n\r\nbody\r\n"
            );
            queued_id(&c.send_mail("app@shop.test", &[&format!("u{i}@example.net")], &content))
        })
        .collect()
}

/// The receiver answers 500 for ten seconds, then 200: every event
/// arrives, each message's in order.
#[test]
fn a_receiver_down_for_ten_seconds_gets_every_event_in_order() {
    let hook = Receiver::spawn(SECRET.as_bytes());
    let sink = Sink::spawn(SinkConfig::default());
    // down for ten seconds from the first request it gets
    hook.fail_first_for(Duration::from_secs(10));
    let (d, _, _dir) = daemon(&sink, &hook, "");
    let ids = submit(&d, 20);
    eventually("every message delivered", || sink.count() == 20);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let m = by_message(&hook);
        if ids.iter().all(|id| {
            m.get(id)
                .is_some_and(|e| e.iter().any(|e| e["type"] == "delivery"))
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "not every event arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = by_message(&hook);
    for id in &ids {
        let kinds: Vec<&str> = m[id].iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["reception", "delivery"], "{id}: in order");
        let seq = m[id][0]["metadata"]["seq"].as_str().unwrap().to_string();
        assert!(m[id].iter().all(|e| e["metadata"]["seq"] == seq.as_str()));
    }
    let all = hook.deliveries();
    let refused = all.iter().filter(|d| d.status == 500).count();
    let first_ok = all
        .iter()
        .find(|d| d.status == 200)
        .map(|d| d.at - all[0].at);
    eprintln!(
        "figures: receiver down 10 s: {refused} requests answered 500, the first 200 {first_ok:?} after the first request; 40 events of 20 messages arrived"
    );
    assert!(refused >= 2, "it was tried again while down");
    assert!(first_ok.unwrap() >= Duration::from_secs(10));
    assert!(hook.deliveries().iter().all(|d| d.signed));
}

/// `kill -9` while 1,000 events wait for a receiver that is down: after
/// the restart every one of them arrives.
#[test]
fn kill_9_with_a_thousand_events_undelivered_loses_none() {
    let hook = Receiver::spawn(SECRET.as_bytes());
    let sink = Sink::spawn(SinkConfig::default());
    hook.fail_for(Duration::from_secs(3600));
    let (mut d, token, _dir) = daemon(&sink, &hook, "");
    let ids = submit(&d, 500);
    eventually("every message delivered", || sink.count() == 500);
    // reception + delivery per message: wait until the log holds 1000
    let count = |d: &Daemon| {
        let mut n = 0;
        let mut after = 0u64;
        loop {
            let (_, v) = api(
                d.addr("api"),
                "GET",
                &format!("/api/v1/events?limit=1000&after={after}"),
                &token,
                None,
            );
            n += v["events"].as_array().map_or(0, Vec::len);
            match v["next_cursor"].as_str() {
                Some(c) => after = c.parse().unwrap(),
                None => return n,
            }
        }
    };
    eventually("1000 events in the log", || count(&d) >= 1000);
    assert!(hook.accepted().is_empty(), "none delivered yet");
    d.kill9();
    d.restart();
    hook.recover();
    let deadline = Instant::now() + DEADLINE * 2;
    loop {
        let m = by_message(&hook);
        let complete = ids
            .iter()
            .filter(|id| {
                m.get(*id).is_some_and(|e| {
                    let k: HashSet<&str> = e.iter().map(|e| e["type"].as_str().unwrap()).collect();
                    k.contains("reception") && k.contains("delivery")
                })
            })
            .count();
        if complete == ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{complete} of {} messages complete",
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let accepted = hook.accepted();
    let distinct: HashSet<&str> = accepted
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    eprintln!(
        "figures: kill -9 with 1000 events undelivered: {} distinct events arrived after the restart ({} with repeats)",
        distinct.len(),
        accepted.len()
    );
    assert!(distinct.len() >= 1000);
}

/// Metadata from an untrusted client is dropped with its header; a bad
/// key from a trusted one is refused with 550 5.6.0, and on the API with
/// a 400 naming `metadata`.
#[test]
fn metadata_is_bounded_and_only_trusted_clients_set_it() {
    let hook = Receiver::spawn(SECRET.as_bytes());
    let sink = Sink::spawn(SinkConfig::default());
    let (d, token, _dir) = daemon(&sink, &hook, "");
    let mut c = Client::hello(d.addr("in"));
    let r = c.send_mail(
        "app@shop.test",
        &["x@example.net"],
        "X-Laneway-Meta-Bad Key: 1\r\nSubject: x\r\n\r\nx\r\n",
    );
    assert!(r.starts_with("550 5.6.0") && r.contains("metadata"), "{r}");
    let mut c = Client::connect_from(d.addr("in"), Some("127.0.0.2"));
    c.greeting("220");
    c.cmd("EHLO stranger.test", "250");
    c.cmd("MAIL FROM:<a@stranger.test>", "250");
    // strangers may only send to local domains: none here, so relay is refused
    c.cmd("RCPT TO:<x@example.net>", "550 5.7.1");
    let body = json!({"from": "o@shop.test", "to": ["y@example.net"], "text": "x", "metadata": {"k": "a\u{1}b"}});
    let (st, v) = api(
        d.addr("api"),
        "POST",
        "/api/v1/messages",
        &token,
        Some(&body),
    );
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (400, Some("metadata")),
        "{v}"
    );
    let id = submit(&d, 1).remove(0);
    assert_eq!(sink.wait_blocking(1, DEADLINE), 1);
    let text = String::from_utf8_lossy(&sink.messages()[0].data).to_string();
    assert!(
        !text.to_ascii_lowercase().contains("x-laneway-meta"),
        "{text}"
    );
    eventually("the reception event carries it", || {
        by_message(&hook)
            .get(&id)
            .is_some_and(|e| e[0]["metadata"]["seq"] == "0")
    });
}
