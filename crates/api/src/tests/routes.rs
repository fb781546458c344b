//! Every documented route is routed; the OpenAPI document matches the router.

use axum::http::StatusCode;
use serde_json::Value;

use super::*;

#[tokio::test]
async fn every_documented_route_is_routed() {
    let t = setup();
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let mut n = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "0000000000000001")
                .replace("{domain}", "example.net")
                .replace("{token}", "abc")
                .replace("{provider}", "google");
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
    assert_eq!(n, 28, "documented operations");
}
