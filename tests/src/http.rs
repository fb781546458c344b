//! A blocking HTTP/1.1 client for API tests: one request per connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;

use crate::DEADLINE;

/// Sends a request; returns the status, the raw head and the body (JSON if it parses).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, Value) {
    let mut s = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect to the API");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let text = String::from_utf8_lossy(&raw[split + 4..]).into_owned();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, head, v)
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
