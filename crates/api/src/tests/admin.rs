//! Queue and suppression administration over HTTP.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::*;

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
