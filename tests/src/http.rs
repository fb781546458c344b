//! Blocking API requests for the end-to-end tests, over Laneway's own
//! HTTP client (`laneway_common::http`).

use std::net::SocketAddr;

use serde_json::Value;

use crate::DEADLINE;

/// Sends a request; returns the status, the head (status line and header
/// fields) and the body (JSON if it parses).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, Value) {
    use laneway_common::http::{Endpoint, Request, blocking, request};
    let body = body.unwrap_or("");
    let mut h: Vec<(&str, &str)> = headers.to_vec();
    if !body.is_empty() {
        h.push(("content-type", "application/json"));
    }
    let req = Request {
        method,
        path,
        headers: &h,
        body: body.as_bytes().to_vec(),
    };
    let r = blocking(request(
        &Endpoint::Tcp(addr),
        "test",
        &req,
        64 << 20,
        DEADLINE,
    ))
    .expect("an HTTP answer from the API");
    let mut head = format!("HTTP/1.1 {}", r.status);
    for (k, v) in &r.headers {
        head.push_str(&format!("\r\n{k}: {v}"));
    }
    (r.status, head, r.json())
}

/// A JSON request with a bearer token.
pub fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let b = body.map(|b| b.to_string());
    let (s, _, v) = request(
        addr,
        method,
        path,
        &[("Authorization", &auth)],
        b.as_deref(),
    );
    (s, v)
}
