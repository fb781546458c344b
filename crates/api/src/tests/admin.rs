//! Queue and suppression administration over HTTP.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn admin_endpoints() {
    let t = setup();
    let id = "0000000000000abc";
    let null = Value::Null;
    // (method, path, body, status), in order
    let table: Vec<(&str, String, Value, StatusCode)> = vec![
        ("GET", "/api/v1/queue".into(), null.clone(), StatusCode::OK),
        (
            "GET",
            "/api/v1/queue/messages?lane=9&limit=5".into(),
            null.clone(),
            StatusCode::OK,
        ),
        (
            "GET",
            "/api/v1/queue/messages?lane=12".into(),
            null.clone(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/queue/messages?state=lost".into(),
            null.clone(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            format!("/api/v1/messages/{id}"),
            null.clone(),
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/api/v1/messages/xyz".into(),
            null.clone(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "DELETE",
            format!("/api/v1/messages/{id}?bounce=true"),
            null.clone(),
            StatusCode::OK,
        ),
        (
            "POST",
            format!("/api/v1/messages/{id}/retry"),
            null.clone(),
            StatusCode::OK,
        ),
        (
            "POST",
            format!("/api/v1/messages/{id}/priority"),
            json!({"priority": 9}),
            StatusCode::CONFLICT,
        ),
        (
            "POST",
            format!("/api/v1/messages/{id}/priority"),
            json!({"priority": 11}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/destinations/Example.NET/suspend".into(),
            null.clone(),
            StatusCode::OK,
        ),
        (
            "POST",
            "/api/v1/destinations/example.net/resume".into(),
            null.clone(),
            StatusCode::OK,
        ),
        (
            "POST",
            "/api/v1/suppressions".into(),
            json!({"address": "x", "sender_domain": "s.test"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/suppressions".into(),
            json!({"address": "x@e.net", "sender_domain": "s.test", "lanes": "some"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/suppressions?sender_domain=shop.test&limit=10".into(),
            null.clone(),
            StatusCode::OK,
        ),
        (
            "DELETE",
            "/api/v1/suppressions?address=x@example.net&sender_domain=shop.test".into(),
            null.clone(),
            StatusCode::OK,
        ),
        (
            "DELETE",
            "/api/v1/suppressions?address=nobody@example.net&sender_domain=shop.test".into(),
            null.clone(),
            StatusCode::NOT_FOUND,
        ),
        (
            "DELETE",
            "/api/v1/suppressions?address=x@example.net".into(),
            null.clone(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, body, want) in table {
        let (s, v) = call(&t, method, &path, "admin-token", &[], body).await;
        assert_eq!(s, want, "{method} {path}: {v}");
    }
    let (s, v) = call(
        &t,
        "POST",
        "/api/v1/queue/flush",
        "admin-token",
        &[],
        null.clone(),
    )
    .await;
    assert_eq!((s, v["flushed"].as_u64()), (StatusCode::OK, Some(3)));
    let body = json!({"address": "x@example.net", "sender_domain": "Shop.TEST", "lanes": "bulk"});
    let (s, v) = call(&t, "POST", "/api/v1/suppressions", "admin-token", &[], body).await;
    assert_eq!(
        (s, v["lanes"].as_str()),
        (StatusCode::CREATED, Some("bulk"))
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
            "suppressions Some(\"shop.test\") 10".into(),
            "unsuppress x@example.net shop.test".into(),
            "unsuppress nobody@example.net shop.test".into(),
            "suppress x@example.net shop.test manual false".into(),
        ]
    );
}

/// The cluster view, the import a drain calls and the drain itself: bad
/// input is a 400 naming the field, and reaches nothing.
#[tokio::test]
async fn cluster_and_drain_endpoints() {
    let t = setup();
    let null = Value::Null;
    let envelope = json!({"sender": "a@x.test", "recipients": [{"address": "b@y.test"}], "origin": {"door": "smtp", "name": "mx", "trusted": true}, "queued_at_ms": 1});
    let import = |lane: u64, envelope: &Value| json!({"id": "0000000000000abc", "lane": lane, "envelope": envelope, "state": {}, "message": "U3ViamVjdDogeA0KDQp4DQo="});
    // (method, path, body, status, field at fault)
    let table: Vec<(&str, &str, Value, StatusCode, Option<&str>)> = vec![
        ("GET", "/api/v1/cluster", null.clone(), StatusCode::OK, None),
        (
            "GET",
            "/api/v1/queue/drain",
            null.clone(),
            StatusCode::OK,
            None,
        ),
        (
            "POST",
            "/api/v1/queue/drain",
            json!({"to": "ftp://x", "key": "k"}),
            StatusCode::BAD_REQUEST,
            Some("to"),
        ),
        (
            "POST",
            "/api/v1/queue/drain",
            json!({"to": "http://10.0.0.2:8025", "key": " "}),
            StatusCode::BAD_REQUEST,
            Some("key"),
        ),
        (
            "POST",
            "/api/v1/queue/drain",
            json!({"to": "http://10.0.0.2:8025", "key": "k", "extra": 1}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "POST",
            "/api/v1/queue/drain",
            json!({"to": "http://10.0.0.2:8025", "key": "k"}),
            StatusCode::ACCEPTED,
            None,
        ),
        (
            "POST",
            "/api/v1/queue/import",
            import(12, &envelope),
            StatusCode::BAD_REQUEST,
            Some("lane"),
        ),
        (
            "POST",
            "/api/v1/queue/import",
            import(
                4,
                &json!({"sender": "a@x.test", "recipients": [], "origin": envelope["origin"], "queued_at_ms": 1}),
            ),
            StatusCode::BAD_REQUEST,
            Some("envelope.recipients"),
        ),
        (
            "POST",
            "/api/v1/queue/import",
            import(4, &envelope),
            StatusCode::CREATED,
            None,
        ),
    ];
    for (method, path, body, want, field) in table {
        let (s, v) = call(&t, method, path, "admin-token", &[], body).await;
        assert_eq!(s, want, "{method} {path}: {v}");
        if let Some(f) = field {
            assert_eq!(v["error"]["field"], f, "{v}");
        }
    }
    // a send-only key may do none of it
    let (s, _) = call(&t, "GET", "/api/v1/cluster", "send-token", &[], null).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let calls = t.admin.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            "drain http://10.0.0.2:8025".to_string(),
            "import 0000000000000abc 4".into()
        ]
    );
}

/// The history endpoints: one filter at a time, unknown parameters named.
#[tokio::test]
async fn event_history_endpoints() {
    let t = setup();
    let null = Value::Null;
    let table: Vec<(&str, StatusCode, Option<&str>)> = vec![
        (
            "/api/v1/messages/0000000000000abc/events",
            StatusCode::OK,
            None,
        ),
        (
            "/api/v1/messages/xyz/events",
            StatusCode::BAD_REQUEST,
            Some("id"),
        ),
        ("/api/v1/events?after=5&limit=10", StatusCode::OK, None),
        (
            "/api/v1/events?recipient=bob@example.net",
            StatusCode::OK,
            None,
        ),
        ("/api/v1/events?meta.order=42", StatusCode::OK, None),
        (
            "/api/v1/events?message_id_header=%3Cm1@x%3E",
            StatusCode::OK,
            None,
        ),
        (
            "/api/v1/events?after=x",
            StatusCode::BAD_REQUEST,
            Some("after"),
        ),
        (
            "/api/v1/events?limit=0",
            StatusCode::BAD_REQUEST,
            Some("limit"),
        ),
        (
            "/api/v1/events?colour=red",
            StatusCode::BAD_REQUEST,
            Some("colour"),
        ),
        (
            "/api/v1/events?recipient=a@b&meta.k=v",
            StatusCode::BAD_REQUEST,
            Some("recipient"),
        ),
    ];
    for (path, want, field) in table {
        let (s, v) = call(&t, "GET", path, "admin-token", &[], null.clone()).await;
        assert_eq!(s, want, "{path}: {v}");
        if let Some(f) = field {
            assert_eq!(v["error"]["field"], f, "{path}: {v}");
        }
    }
    let calls = t.admin.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            "events Some(\"0000000000000abc\") None None None 0 100".to_string(),
            "events None None None None 5 10".into(),
            "events None Some(\"bob@example.net\") None None 0 100".into(),
            "events None None None Some((\"order\", \"42\")) 0 100".into(),
            "events None None Some(\"<m1@x>\") None 0 100".into(),
        ]
    );
}
