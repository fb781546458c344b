//! Submissions: every priority source and its precedence, raw messages, Bcc and suppressed recipients.

use axum::http::StatusCode;
use serde_json::json;

use super::*;

#[tokio::test]
async fn priority_precedence() {
    let t = setup();
    let lane = |t: &T| t.ingest.got.lock().unwrap().last().unwrap().1.get();
    // field wins
    let (s, v) = send(&t, &[], msg(json!({"priority": 9}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["priority"], 9);
    assert_eq!(lane(&t), 9);
    // HTTP header
    let (s, _) = send(&t, &[("X-Priority-Queue", "8")], msg(json!({}))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(lane(&t), 8);
    // both, agreeing
    let (s, _) = send(
        &t,
        &[("X-Priority-Queue", "8")],
        msg(json!({"priority": 8})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    // both, disagreeing
    let (s, v) = send(
        &t,
        &[("X-Priority-Queue", "8")],
        msg(json!({"priority": 2})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "conflicting_priority");
    // header inside the message
    let (s, _) = send(&t, &[], msg(json!({"headers": {"X-Priority-Queue": "7"}}))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(lane(&t), 7);
    let stored = String::from_utf8(
        t.ingest
            .got
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .0
            .message
            .clone(),
    )
    .unwrap();
    assert!(
        !stored.to_ascii_lowercase().contains("x-priority-queue"),
        "{stored}"
    );
    // the key's default, then the config's
    send(&t, &[], msg(json!({}))).await;
    assert_eq!(lane(&t), 6);
    let (s, _) = call(
        &t,
        "POST",
        "/api/v1/messages",
        "admin-token",
        &[],
        msg(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(lane(&t), 4);
    // bad values name their source
    for (extra, body, field) in [
        (vec![], json!({"priority": 10}), "priority"),
        (vec![], json!({"priority": "5"}), "priority"),
        (vec![], json!({"priority": 4.5}), "priority"),
        (
            vec![("X-Priority-Queue", "urgent")],
            json!({}),
            "X-Priority-Queue (HTTP header)",
        ),
        (
            vec![],
            json!({"headers": {"X-Priority-Queue": "12"}}),
            "X-Priority-Queue header",
        ),
    ] {
        let (s, v) = send(&t, &extra, msg(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
}

#[tokio::test]
async fn raw_submissions() {
    let t = setup();
    let body = json!({"envelope_from": "app@example.com", "recipients": ["bob@example.net"],
        "content": "From: app@example.com\nSubject: raw\nX-Priority-Queue: 3\n\nbody\n", "priority": null});
    let (s, v) = call(&t, "POST", "/api/v1/messages/raw", "send-token", &[], body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["priority"], 3);
    let m = String::from_utf8(t.ingest.got.lock().unwrap()[0].0.message.clone()).unwrap();
    assert!(
        m.starts_with("Date: ") && m.contains("\r\nMessage-ID: <"),
        "{m}"
    );
    assert!(m.contains("Subject: raw\r\n\r\nbody\r\n"), "{m}");
    // the From: inside must be allowed too
    let body = json!({"envelope_from": "app@example.com", "recipients": ["bob@example.net"], "content": "From: ceo@other.test\r\n\r\nx\r\n"});
    let (s, v) = call(&t, "POST", "/api/v1/messages/raw", "send-token", &[], body).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn bcc_never_appears_and_suppressed_recipients_are_listed() {
    let t = setup();
    let (s, v) = send(&t, &[],
        msg(json!({"cc": ["carol@example.net"], "bcc": ["secret@example.net", "suppressed@example.net"]})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(
        v["accepted"],
        json!(["bob@example.net", "carol@example.net", "secret@example.net"])
    );
    assert_eq!(v["rejected"][0]["recipient"], "suppressed@example.net");
    let got = t.ingest.got.lock().unwrap();
    let (sub, _) = got.last().unwrap();
    assert_eq!(sub.envelope.recipients.len(), 3);
    let m = String::from_utf8_lossy(&sub.message);
    assert!(!m.contains("secret@example.net"), "{m}");
    assert!(m.contains("carol@example.net"));
}
