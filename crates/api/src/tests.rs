//! Router tests with a recording ingest and a scripted queue.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use laneway_common::admin::*;
use laneway_common::config::{ApiKey, Scope};
use laneway_common::id::IdGenerator;
use laneway_common::ingest::{BoxFuture, PRIORITY_HEADER, decide_lane};
use laneway_common::{
    Accepted, Ingest, IngestError, MessageId, Priority, RecipientVerdict, Reply, Submission,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::keys::sha256_hex;

#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<(Submission, Priority)>>,
    ids: IdGenerator,
}

impl Ingest for Recorder {
    fn admit(&self) -> Result<(), IngestError> {
        Ok(())
    }
    fn check_recipient<'a>(&'a self, _s: &'a str, r: &'a str) -> BoxFuture<'a, RecipientVerdict> {
        let v = if r.starts_with("suppressed@") {
            RecipientVerdict::Refuse(Reply::new(550, (5, 7, 1), "recipient suppressed"))
        } else {
            RecipientVerdict::Accept
        };
        Box::pin(async move { v })
    }
    fn submit(&self, s: Submission) -> BoxFuture<'_, Result<Accepted, IngestError>> {
        Box::pin(async move {
            let lane = decide_lane(&s.lane, &s.message)?;
            let mut s = s;
            s.message = laneway_common::headers::remove_fields(&s.message, PRIORITY_HEADER)
                .unwrap_or(s.message);
            self.got.lock().unwrap().push((s, lane));
            Ok(Accepted {
                id: self.ids.next_id(),
                lane,
                dropped: vec![],
            })
        })
    }
}

#[derive(Default)]
struct FakeAdmin {
    calls: Mutex<Vec<String>>,
}

impl Admin for FakeAdmin {
    fn summary(&self) -> QueueSummary {
        QueueSummary {
            total: 0,
            ready: 0,
            deferred: 0,
            lanes: vec![],
            destinations: vec![],
            suspended_domains: vec![],
        }
    }
    fn list(&self, f: &MessageFilter) -> (Vec<MessageSummary>, Option<MessageId>) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("list {:?} {:?}", f.lane, f.limit));
        (vec![], None)
    }
    fn detail(&self, id: MessageId) -> BoxFuture<'_, Result<MessageDetail, AdminError>> {
        Box::pin(async move { Err(AdminError::NotFound(id)) })
    }
    fn delete(&self, id: MessageId, bounce: bool) -> BoxFuture<'_, Result<(), AdminError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("delete {id} {bounce}"));
        Box::pin(async { Ok(()) })
    }
    fn retry(&self, id: MessageId) -> Result<(), AdminError> {
        self.calls.lock().unwrap().push(format!("retry {id}"));
        Ok(())
    }
    fn set_priority(
        &self,
        id: MessageId,
        lane: Priority,
    ) -> BoxFuture<'_, Result<MessageDetail, AdminError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("priority {id} {lane}"));
        Box::pin(async move { Err(AdminError::Busy(id)) })
    }
    fn flush(&self) -> usize {
        3
    }
    fn suspend(&self, d: &str) -> Result<(), AdminError> {
        self.calls.lock().unwrap().push(format!("suspend {d}"));
        Ok(())
    }
    fn resume(&self, d: &str) -> Result<(), AdminError> {
        self.calls.lock().unwrap().push(format!("resume {d}"));
        Ok(())
    }
    fn suppressions<'a>(
        &'a self,
        sd: Option<&'a str>,
        limit: usize,
        _c: Option<&'a str>,
    ) -> BoxFuture<'a, Result<laneway_common::admin::SuppressionPage, AdminError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("suppressions {sd:?} {limit}"));
        Box::pin(async { Ok((vec![], None)) })
    }
    fn suppress<'a>(
        &'a self,
        a: &'a str,
        sd: &'a str,
        reason: &'a str,
        all: bool,
    ) -> BoxFuture<'a, Result<SuppressionEntry, AdminError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("suppress {a} {sd} {reason} {all}"));
        let e = SuppressionEntry {
            address: a.into(),
            sender_domain: sd.into(),
            reason: reason.into(),
            lanes: if all { "all".into() } else { "bulk".into() },
            since: "2026-01-01T00:00:00Z".into(),
        };
        Box::pin(async move { Ok(e) })
    }
    fn unsuppress<'a>(
        &'a self,
        a: &'a str,
        sd: &'a str,
    ) -> BoxFuture<'a, Result<bool, AdminError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("unsuppress {a} {sd}"));
        let found = a != "nobody@example.net";
        Box::pin(async move { Ok(found) })
    }
}

struct T {
    ingest: Arc<Recorder>,
    admin: Arc<FakeAdmin>,
    router: axum::Router,
}

fn setup() -> T {
    let ingest = Arc::new(Recorder::default());
    let admin = Arc::new(FakeAdmin::default());
    let keys = Keys::new(&[
        ApiKey {
            name: "app".into(),
            sha256: sha256_hex("send-token"),
            scopes: vec![Scope::Send],
            allowed_from_domains: Some(vec!["example.com".into()]),
            default_priority: Some(Priority::new(6).unwrap()),
            rate: None,
        },
        ApiKey {
            name: "ops".into(),
            sha256: sha256_hex("admin-token"),
            scopes: vec![Scope::Admin, Scope::Send],
            allowed_from_domains: None,
            default_priority: None,
            rate: None,
        },
    ]);
    let api = Arc::new(Api {
        ingest: ingest.clone(),
        admin: admin.clone(),
        settings: ArcSwap::from_pointee(ApiSettings {
            keys,
            max_message_size: 64 * 1024,
            max_recipients: 5,
            default_priority: Priority::DEFAULT,
            hostname: "api.test".into(),
        }),
        metrics: None,
    });
    T {
        ingest,
        admin,
        router: router(api),
    }
}

async fn call(
    t: &T,
    method: &str,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
    body: Value,
) -> (StatusCode, Value) {
    let mut b = Request::builder().method(method).uri(path);
    if !token.is_empty() {
        b = b.header("authorization", format!("Bearer {token}"));
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let body = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    let res = t
        .router
        .clone()
        .oneshot(b.body(body).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn msg(extra: Value) -> Value {
    let mut m = json!({"from": "app@example.com", "to": ["bob@example.net"], "subject": "hi", "text": "hello"});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

#[tokio::test]
async fn priority_precedence() {
    let t = setup();
    let lane = |t: &T| t.ingest.got.lock().unwrap().last().unwrap().1.get();
    // field wins
    let (s, v) = call(
        &t,
        "POST",
        "/api/v1/messages",
        "send-token",
        &[],
        msg(json!({"priority": 9})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["priority"], 9);
    assert_eq!(lane(&t), 9);
    // HTTP header
    let (s, _) = call(
        &t,
        "POST",
        "/api/v1/messages",
        "send-token",
        &[("X-Priority-Queue", "8")],
        msg(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(lane(&t), 8);
    // both, agreeing
    let (s, _) = call(
        &t,
        "POST",
        "/api/v1/messages",
        "send-token",
        &[("X-Priority-Queue", "8")],
        msg(json!({"priority": 8})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    // both, disagreeing
    let (s, v) = call(
        &t,
        "POST",
        "/api/v1/messages",
        "send-token",
        &[("X-Priority-Queue", "8")],
        msg(json!({"priority": 2})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "conflicting_priority");
    // header inside the message
    let (s, _) = call(
        &t,
        "POST",
        "/api/v1/messages",
        "send-token",
        &[],
        msg(json!({"headers": {"X-Priority-Queue": "7"}})),
    )
    .await;
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
    call(
        &t,
        "POST",
        "/api/v1/messages",
        "send-token",
        &[],
        msg(json!({})),
    )
    .await;
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
        let (s, v) = call(
            &t,
            "POST",
            "/api/v1/messages",
            "send-token",
            &extra,
            msg(body),
        )
        .await;
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
    let (s, v) = call(
        &t,
        "POST",
        "/api/v1/messages",
        "send-token",
        &[],
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

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let t = setup();
    let cases: Vec<(&str, &str, Value, StatusCode, &str)> = vec![
        (
            "",
            "/api/v1/messages",
            msg(json!({})),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "wrong",
            "/api/v1/messages",
            msg(json!({})),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "send-token",
            "/api/v1/queue",
            Value::Null,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "send-token",
            "/api/v1/messages",
            json!({"from": 5}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "send-token",
            "/api/v1/messages",
            json!({"from": "app@example.com", "to": ["x"], "text": "t"}),
            StatusCode::BAD_REQUEST,
            "invalid_address",
        ),
        (
            "send-token",
            "/api/v1/messages",
            msg(json!({"subject": "hi\r\nBcc: victim@x"})),
            StatusCode::BAD_REQUEST,
            "header_injection",
        ),
        (
            "send-token",
            "/api/v1/messages",
            msg(json!({"headers": {"X-A": "1\nBcc: v@x"}})),
            StatusCode::BAD_REQUEST,
            "header_injection",
        ),
        (
            "send-token",
            "/api/v1/messages",
            msg(json!({"headers": {"Bcc": "v@x"}})),
            StatusCode::BAD_REQUEST,
            "reserved_header",
        ),
        (
            "send-token",
            "/api/v1/messages",
            msg(json!({"from": "app@other.test"})),
            StatusCode::FORBIDDEN,
            "sender_not_allowed",
        ),
        (
            "send-token",
            "/api/v1/messages",
            msg(
                json!({"to": ["a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test", "f@x.test"]}),
            ),
            StatusCode::BAD_REQUEST,
            "too_many_recipients",
        ),
        (
            "send-token",
            "/api/v1/messages",
            msg(json!({"unknown": 1})),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "send-token",
            "/api/v1/messages",
            msg(json!({"text": "x".repeat(70_000)})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            "admin-token",
            "/api/v1/nope",
            Value::Null,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (tok, path, body, status, code) in cases {
        let method = if body.is_null() { "GET" } else { "POST" };
        let (s, v) = call(&t, method, path, tok, &[], body).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{path} {v}"
        );
    }
    // a body that is not JSON at all
    let res = t
        .router
        .clone()
        .oneshot(
            Request::post("/api/v1/messages")
                .header("authorization", "Bearer send-token")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn admin_endpoints() {
    let t = setup();
    let id = "0000000000000abc";
    assert_eq!(
        call(&t, "GET", "/api/v1/queue", "admin-token", &[], Value::Null)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &t,
            "GET",
            "/api/v1/queue/messages?lane=9&limit=5",
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &t,
            "GET",
            "/api/v1/queue/messages?lane=12",
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(
            &t,
            "GET",
            "/api/v1/queue/messages?state=lost",
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(
            &t,
            "GET",
            &format!("/api/v1/messages/{id}"),
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &t,
            "GET",
            "/api/v1/messages/xyz",
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(
            &t,
            "DELETE",
            &format!("/api/v1/messages/{id}?bounce=true"),
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &t,
            "POST",
            &format!("/api/v1/messages/{id}/retry"),
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &t,
            "POST",
            &format!("/api/v1/messages/{id}/priority"),
            "admin-token",
            &[],
            json!({"priority": 9})
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        call(
            &t,
            "POST",
            &format!("/api/v1/messages/{id}/priority"),
            "admin-token",
            &[],
            json!({"priority": 11})
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    let (s, v) = call(
        &t,
        "POST",
        "/api/v1/queue/flush",
        "admin-token",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!((s, v["flushed"].as_u64()), (StatusCode::OK, Some(3)));
    assert_eq!(
        call(
            &t,
            "POST",
            "/api/v1/destinations/Example.NET/suspend",
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &t,
            "POST",
            "/api/v1/destinations/example.net/resume",
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::OK
    );
    let (s, v) = call(
        &t,
        "POST",
        "/api/v1/suppressions",
        "admin-token",
        &[],
        json!({"address": "x@example.net", "sender_domain": "Shop.TEST", "lanes": "bulk"}),
    )
    .await;
    assert_eq!(
        (s, v["lanes"].as_str()),
        (StatusCode::CREATED, Some("bulk"))
    );
    assert_eq!(
        call(
            &t,
            "POST",
            "/api/v1/suppressions",
            "admin-token",
            &[],
            json!({"address": "x", "sender_domain": "s.test"})
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(
            &t,
            "POST",
            "/api/v1/suppressions",
            "admin-token",
            &[],
            json!({"address": "x@e.net", "sender_domain": "s.test", "lanes": "some"})
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(
            &t,
            "GET",
            "/api/v1/suppressions?sender_domain=shop.test&limit=10",
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &t,
            "DELETE",
            "/api/v1/suppressions?address=x@example.net&sender_domain=shop.test",
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &t,
            "DELETE",
            "/api/v1/suppressions?address=nobody@example.net&sender_domain=shop.test",
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &t,
            "DELETE",
            "/api/v1/suppressions?address=x@example.net",
            "admin-token",
            &[],
            Value::Null
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    let calls = t.admin.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            "list Some(Priority(9)) Some(5)".to_string(),
            format!("delete {id} true"),
            format!("retry {id}"),
            format!("priority {id} 9"),
            "suspend example.net".into(),
            "resume example.net".into(),
            "suppress x@example.net shop.test manual false".into(),
            "suppressions Some(\"shop.test\") 10".into(),
            "unsuppress x@example.net shop.test".into(),
            "unsuppress nobody@example.net shop.test".into(),
        ]
    );
}

#[tokio::test]
async fn every_documented_route_is_routed() {
    let t = setup();
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let mut n = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "0000000000000001")
                .replace("{domain}", "example.net");
            let res = t
                .router
                .clone()
                .oneshot(
                    Request::builder()
                        .method(method.to_uppercase().as_str())
                        .uri(&concrete)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_ne!(
                res.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            assert_ne!(
                v["error"]["code"], "not_found",
                "{method} {path} is documented but not routed"
            );
            n += 1;
        }
    }
    assert_eq!(n, 17, "documented operations");
}
