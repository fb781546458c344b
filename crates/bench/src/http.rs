//! HTTP load for the API scenario: `clients` keep-alive connections
//! posting JSON submissions as fast as they are answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::blast::Report;

/// Lower-case hex SHA-256 of a token (for `[[api.key]] sha256`).
pub fn sha256_hex(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One response: status and body.
async fn response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, Vec<u8>), String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or("bad status line")?;
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                return Ok((status, body));
            }
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Posts `n` messages of about `size` bytes over `clients` connections.
pub async fn submit_load(
    addr: SocketAddr,
    token: &str,
    n: usize,
    clients: usize,
    size: usize,
) -> Report {
    let text = "x".repeat(size.saturating_sub(300).max(1));
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let err = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (next, ok, err) = (next.clone(), ok.clone(), err.clone());
        let (token, text) = (token.to_string(), text.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect(addr).await else {
                err.lock().expect("lock").get_or_insert("connect failed".into());
                return;
            };
            let _ = s.set_nodelay(true);
            let mut buf = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let body = serde_json::json!({
                    "from": "bench@sender.test",
                    "to": [format!("r{i}@bench.test")],
                    "subject": format!("api {i}"),
                    "text": text,
                })
                .to_string();
                let req = format!(
                    "POST /api/v1/messages HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if s.write_all(req.as_bytes()).await.is_err() {
                    return;
                }
                match response(&mut s, &mut buf).await {
                    Ok((202, _)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((st, b)) => {
                        err.lock()
                            .expect("lock")
                            .get_or_insert(format!("{st}: {}", String::from_utf8_lossy(&b)));
                    }
                    Err(e) => {
                        err.lock().expect("lock").get_or_insert(e);
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
