//! Every error is JSON with the right status and names its field.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::*;

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
