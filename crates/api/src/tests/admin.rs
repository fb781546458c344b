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
