//! The HTTP API, `laneway queue` and `/metrics`, end to end.

use std::process::Command;

use laneway_bench::sink::{Sink, SinkConfig};
use laneway_tests::http::{api, request};
use laneway_tests::{DEADLINE, Daemon, eventually, laneway_bin};
use serde_json::{Value, json};

/// A fresh key from `laneway api-key new`: (token, config lines).
pub(crate) fn new_key(name: &str, scopes: &str, extra: &str) -> (String, String) {
    let out = Command::new(laneway_bin())
        .args(["api-key", "new", "--name", name, "--scopes", scopes])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap()
        .to_string();
    let cfg = text[text.find("[[api.key]]").unwrap()..].to_string() + extra + "\n";
    (token, cfg)
}

struct Setup {
    d: Daemon,
    send: String,
    ops: String,
}

fn setup(extra: &str) -> Setup {
    let (send, send_cfg) = new_key(
        "webshop",
        "send",
        "allowed_from_domains = [\"shop.test\"]\ndefault_priority = 6\nrate = \"1000/s\"",
    );
    let (ops, ops_cfg) = new_key("ops", "send,admin", "");
    let cfg = format!(
        "[api]\nbind = \"127.0.0.1:0\"\nmax_message_size = \"100KiB\"\nmax_recipients = 10\n{send_cfg}{ops_cfg}[metrics]\nbind = \"127.0.0.1:0\"\n[queue]\ndefault_priority = 3\n{extra}"
    );
    Setup {
        d: Daemon::start(&cfg),
        send,
        ops,
    }
}

fn msg(extra: Value) -> Value {
    let mut m = json!({"from": "orders@shop.test", "to": ["alice@example.net"], "subject": "Your order", "text": "Thanks!"});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

#[test]
fn every_priority_source_and_its_precedence() {
    let s = setup("");
    let a = s.d.addr("api");
    let lane_of = |id: &Value| -> u8 {
        let id = id.as_str().unwrap();
        (0..10)
            .find(|l| s.d.spooled_ids(*l).iter().any(|x| x == id))
            .expect("in some lane")
    };
    let (st, v) = api(
        a,
        "POST",
        "/api/v1/messages",
        &s.send,
        Some(&msg(json!({"priority": 9}))),
    );
    assert_eq!(st, 202, "{v}");
    assert_eq!((v["priority"].as_u64(), lane_of(&v["id"])), (Some(9), 9));
    let auth = format!("Bearer {}", s.send);
    let body = msg(json!({})).to_string();
    let (st, _, v) = request(
        a,
        "POST",
        "/api/v1/messages",
        &[("Authorization", &auth), ("X-Priority-Queue", "8")],
        Some(&body),
    );
    assert_eq!((st, lane_of(&v["id"])), (202, 8));
    let (_, v) = api(
        a,
        "POST",
        "/api/v1/messages",
        &s.send,
        Some(&msg(json!({"headers": {"X-Priority-Queue": "7"}}))),
    );
    assert_eq!(lane_of(&v["id"]), 7);
    let raw = json!({"envelope_from": "orders@shop.test", "recipients": ["alice@example.net"],
        "content": "From: orders@shop.test\r\nSubject: raw\r\nX-Priority-Queue: 2\r\n\r\nbody\r\n"});
    let (_, v) = api(a, "POST", "/api/v1/messages/raw", &s.send, Some(&raw));
    assert_eq!(lane_of(&v["id"]), 2);
    // the key's default (6), then [queue] default_priority (3)
    let (_, v) = api(
        a,
        "POST",
        "/api/v1/messages",
        &s.send,
        Some(&msg(json!({}))),
    );
    assert_eq!(lane_of(&v["id"]), 6);
    let (_, v) = api(a, "POST", "/api/v1/messages", &s.ops, Some(&msg(json!({}))));
    assert_eq!(lane_of(&v["id"]), 3);
    // the field beats the message header; disagreeing field and HTTP header are refused
    let (_, v) = api(
        a,
        "POST",
        "/api/v1/messages",
        &s.send,
        Some(&msg(
            json!({"priority": 1, "headers": {"X-Priority-Queue": "9"}}),
        )),
    );
    assert_eq!(lane_of(&v["id"]), 1);
    let (st, _, v) = request(
        a,
        "POST",
        "/api/v1/messages",
        &[("Authorization", &auth), ("X-Priority-Queue", "8")],
        Some(&msg(json!({"priority": 2})).to_string()),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("conflicting_priority"))
    );
    // the stored message carries no X-Priority-Queue
    for l in 0..10 {
        for id in s.d.spooled_ids(l) {
            let f = String::from_utf8_lossy(&s.d.spooled_file(l, &id)).to_ascii_lowercase();
            assert!(!f.contains("x-priority-queue"), "{f}");
        }
    }
}

#[test]
fn error_statuses() {
    let s = setup("[spool]\nmin_free_bytes = \"1000TB\"\n");
    let a = s.d.addr("api");
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        ("", msg(json!({})), 401, "unauthorized", None),
        ("nope", msg(json!({})), 401, "unauthorized", None),
        (
            "send",
            json!({"from": 1}),
            400,
            "invalid_json",
            Some("from"),
        ),
        (
            "send",
            msg(json!({"priority": 12})),
            400,
            "invalid_priority",
            Some("priority"),
        ),
        (
            "send",
            msg(json!({"priority": "9"})),
            400,
            "invalid_priority",
            Some("priority"),
        ),
        (
            "send",
            msg(json!({"to": ["not an address"]})),
            400,
            "invalid_address",
            Some("to[0]"),
        ),
        (
            "send",
            msg(json!({"subject": "x\r\nBcc: all@example.net"})),
            400,
            "header_injection",
            Some("subject"),
        ),
        (
            "send",
            msg(json!({"to": ["bob@example.net\r\nBcc: all@example.net"]})),
            400,
            "header_injection",
            Some("to[0]"),
        ),
        (
            "send",
            msg(json!({"from": "orders@shop.test\0"})),
            400,
            "header_injection",
            Some("from"),
        ),
        (
            "send",
            msg(json!({"headers": {"X-Note": "a\nBcc: all@example.net"}})),
            400,
            "header_injection",
            Some("headers.X-Note"),
        ),
        (
            "send",
            msg(json!({"headers": {"X-Long": "x".repeat(991)}})),
            400,
            "header_too_long",
            Some("headers.X-Long"),
        ),
        (
            "send",
            msg(json!({"headers": (0..101)
                .map(|i| (format!("X-H{i}"), json!("v")))
                .collect::<serde_json::Map<String, Value>>()})),
            400,
            "too_many_headers",
            Some("headers"),
        ),
        (
            "send",
            msg(json!({"to": (0..11).map(|i| format!("r{i}@example.net")).collect::<Vec<_>>()})),
            400,
            "too_many_recipients",
            None,
        ),
        (
            "send",
            msg(json!({"from": "ceo@elsewhere.test"})),
            403,
            "sender_not_allowed",
            Some("from"),
        ),
        (
            "send",
            msg(json!({"text": "x".repeat(120 * 1024)})),
            413,
            "too_large",
            None,
        ),
    ];
    for (who, body, status, code, field) in cases {
        let token = match who {
            "send" => s.send.clone(),
            other => other.to_string(),
        };
        let (st, v) = api(a, "POST", "/api/v1/messages", &token, Some(&body));
        assert_eq!(st, status, "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        if let Some(f) = field {
            assert_eq!(v["error"]["field"], f, "{v}");
        }
    }
    // the spool is "full": 507 for submissions, 503 from readyz, 452 on SMTP
    let (st, v) = api(
        a,
        "POST",
        "/api/v1/messages",
        &s.send,
        Some(&msg(json!({}))),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (507, Some("insufficient_storage"))
    );
    let (st, _, v) = request(s.d.addr("metrics"), "GET", "/readyz", &[], None);
    assert_eq!(st, 503, "{v}");
    let (st, _, _) = request(s.d.addr("metrics"), "GET", "/healthz", &[], None);
    assert_eq!(st, 200);
    let (st, v) = api(a, "GET", "/api/v1/queue", &s.send, None);
    assert_eq!((st, v["error"]["code"].as_str()), (403, Some("forbidden")));
}

#[test]
fn rate_limit_is_429_with_retry_after() {
    let (tok, cfg) = new_key("slow", "send", "rate = \"2/min\"");
    let d = Daemon::start(&format!("[api]\nbind = \"127.0.0.1:0\"\n{cfg}"));
    let auth = format!("Bearer {tok}");
    let body = json!({"from": "a@x.test", "to": ["b@example.net"], "text": "t"}).to_string();
    let codes: Vec<u16> = (0..3)
        .map(|_| {
            request(
                d.addr("api"),
                "POST",
                "/api/v1/messages",
                &[("Authorization", &auth)],
                Some(&body),
            )
            .0
        })
        .collect();
    assert_eq!(codes, vec![202, 202, 429]);
    let (_, head, v) = request(
        d.addr("api"),
        "POST",
        "/api/v1/messages",
        &[("Authorization", &auth)],
        Some(&body),
    );
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    assert_eq!(v["error"]["code"], "rate_limited");
}

#[test]
fn the_recipient_gets_no_priority_header_and_bcc_stays_hidden() {
    let sink = Sink::spawn(SinkConfig::default());
    let s = setup(&format!(
        "[[route]]\ndomain = \"*\"\nvia = \"{}\"\n",
        sink.addr
    ));
    let (st, v) = api(
        s.d.addr("api"),
        "POST",
        "/api/v1/messages",
        &s.send,
        Some(&msg(
            json!({"bcc": ["secret@example.net"], "headers": {"X-Priority-Queue": "9", "X-Campaign": "spring"},
            "attachments": [{"filename": "a.txt", "content_type": "text/plain", "content": "aGVsbG8="}]}),
        )),
    );
    assert_eq!(st, 202, "{v}");
    assert_eq!(sink.wait_blocking(1, DEADLINE), 1);
    let m = &sink.messages()[0];
    let text = String::from_utf8_lossy(&m.data);
    assert!(
        !text.to_ascii_lowercase().contains("x-priority-queue"),
        "{text}"
    );
    assert!(
        !text.contains("secret@example.net"),
        "Bcc must not appear: {text}"
    );
    assert!(m.rcpts.contains(&"secret@example.net".to_string()));
    assert!(
        text.contains("X-Campaign: spring")
            && text.contains("Message-ID: <")
            && text.contains("Date: ")
    );
    assert!(text.contains("a.txt"));
}

fn cli(d: &Daemon, args: &[&str]) -> (bool, String) {
    let out = Command::new(laneway_bin())
        .args(["queue"])
        .args(args)
        .arg("--config")
        .arg(d.config_path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn queue_commands_over_the_control_socket_and_http() {
    let s = setup("");
    let a = s.d.addr("api");
    let (_, v) = api(
        a,
        "POST",
        "/api/v1/messages",
        &s.send,
        Some(&msg(json!({"priority": 1}))),
    );
    let id = v["id"].as_str().unwrap().to_string();
    let (_, v) = api(
        a,
        "POST",
        "/api/v1/messages",
        &s.send,
        Some(&msg(json!({"priority": 5, "to": ["bob@other.test"]}))),
    );
    let other = v["id"].as_str().unwrap().to_string();
    // stats
    let (ok, out) = cli(&s.d, &["stats", "--json"]);
    assert!(ok, "{out}");
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["total"], 2);
    assert_eq!(stats["lanes"][1]["count"], 1);
    let (ok, out) = cli(&s.d, &["stats"]);
    assert!(
        ok && out.contains("lane") && out.contains("total 2"),
        "{out}"
    );
    // list, filtered
    let (ok, out) = cli(&s.d, &["list", "--json", "--domain", "other.test"]);
    assert!(ok, "{out}");
    let l: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(l["messages"].as_array().unwrap().len(), 1);
    assert_eq!(l["messages"][0]["id"], other);
    // show
    let (ok, out) = cli(&s.d, &["show", &id]);
    assert!(ok && out.contains("alice@example.net"), "{out}");
    // set-priority moves the files
    eventually("not in flight", || cli(&s.d, &["set-priority", &id, "9"]).0);
    assert!(s.d.spooled_ids(9).contains(&id));
    assert!(!s.d.spooled_ids(1).contains(&id));
    // retry, flush, suspend, resume
    assert!(cli(&s.d, &["retry", &id]).0);
    assert!(cli(&s.d, &["flush"]).0);
    assert!(cli(&s.d, &["suspend", "example.net"]).0);
    let (_, out) = cli(&s.d, &["stats", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["suspended_domains"],
        json!(["example.net"])
    );
    assert!(cli(&s.d, &["resume", "example.net"]).0);
    // errors are clear
    let (ok, out) = cli(&s.d, &["show", "0000000000000001"]);
    assert!(!ok && out.contains("404"), "{out}");
    // over HTTP with a token
    let url = format!("http://{a}");
    let out = Command::new(laneway_bin())
        .args(["queue", "delete", &other, "--url", &url, "--token", &s.ops])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("deleted", || !s.d.spooled_ids(5).contains(&other));
    let out = Command::new(laneway_bin())
        .args(["queue", "stats", "--url", &url, "--token", &s.send])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a send-only key cannot administer");
}

fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.split(',').all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn metrics_follow_the_mail() {
    let sink = Sink::spawn(SinkConfig::default());
    let s = setup(&format!(
        "[[route]]\ndomain = \"*\"\nvia = \"{}\"\n",
        sink.addr
    ));
    let m = s.d.addr("metrics");
    let scrape = || {
        request(m, "GET", "/metrics", &[], None)
            .2
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let before = scrape();
    for p in [9, 9, 0] {
        api(
            s.d.addr("api"),
            "POST",
            "/api/v1/messages",
            &s.send,
            Some(&msg(json!({"priority": p}))),
        );
    }
    assert_eq!(sink.wait_blocking(3, DEADLINE), 3);
    // outcomes are recorded just after the sink's reply: wait for all of them
    eventually("deliveries counted", || {
        let a = scrape();
        metric(&a, "laneway_recipients_delivered_total", "lane=\"9\"") >= 2.0
            && metric(&a, "laneway_delivery_latency_seconds_count", "lane=\"0\"") >= 1.0
            && a.contains("laneway_queue_messages{lane=\"9\"} 0")
    });
    let after = scrape();
    assert_eq!(
        metric(&before, "laneway_messages_received_total", "lane=\"9\"") + 2.0,
        metric(
            &after,
            "laneway_messages_received_total",
            "lane=\"9\",listener=\"api\""
        )
    );
    assert!(
        metric(
            &after,
            "laneway_delivery_latency_seconds_count",
            "lane=\"0\""
        ) >= 1.0,
        "{after}"
    );
    assert!(after.contains("# HELP laneway_queue_messages"));
    assert!(
        after.contains("laneway_queue_messages{lane=\"9\"} 0"),
        "{after}"
    );
    assert!(metric(&after, "laneway_spool_write_seconds_count", "") >= 3.0);
    assert!(metric(&after, "laneway_api_requests_total", "status=\"202\"") >= 3.0);
    assert!(
        metric(
            &after,
            "laneway_smtp_connections_total",
            "direction=\"out\""
        ) >= 1.0,
        "{after}"
    );
    for l in after
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(l.starts_with("laneway_"), "{l}");
    }
}
