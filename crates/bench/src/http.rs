//! HTTP load for the API scenario: `clients` keep-alive connections
//! posting JSON submissions as fast as they are answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use std::time::Duration;

use laneway_common::http::{Connection, Endpoint, Request};

use crate::blast::Report;

pub use laneway_common::token::sha256_hex;

/// Posts `n` messages of about `size` bytes over `clients` connections.
pub async fn submit_load(
    addr: SocketAddr,
    token: &str,
    n: usize,
    clients: usize,
    size: usize,
    domain: &str,
) -> Report {
    let text = "x".repeat(size.saturating_sub(300).max(1));
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let err = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (next, ok, err) = (next.clone(), ok.clone(), err.clone());
        let (token, text, domain) = (token.to_string(), text.clone(), domain.to_string());
        tasks.push(tokio::spawn(async move {
            let Ok(mut c) =
                Connection::open(&Endpoint::Tcp(addr), "bench", Duration::from_secs(10)).await
            else {
                err.lock()
                    .expect("lock")
                    .get_or_insert("connect failed".into());
                return;
            };
            let auth = format!("Bearer {token}");
            let headers = [
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let body = serde_json::json!({
                    "from": "bench@sender.test",
                    "to": [format!("r{i}@{domain}")],
                    "subject": format!("api {i}"),
                    "text": text,
                })
                .to_string()
                .into_bytes();
                let req = Request {
                    method: "POST",
                    path: "/api/v1/messages",
                    headers: &headers,
                    body,
                };
                match c.send(&req, 1 << 20, Duration::from_secs(60)).await {
                    Ok(r) if r.status == 202 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        err.lock().expect("lock").get_or_insert(format!(
                            "{}: {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        ));
                    }
                    Err(e) => {
                        err.lock().expect("lock").get_or_insert(e.to_string());
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Report {
        accepted: ok.load(Ordering::Relaxed),
        failed: n.saturating_sub(ok.load(Ordering::Relaxed)),
        elapsed: start.elapsed(),
        first_error: err.lock().expect("lock").clone(),
    }
}
