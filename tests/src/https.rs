//! A small HTTPS server on loopback that answers every request with one
//! status and body (an MTA-STS policy host), and counts the requests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running server.
pub struct HttpsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    answer: Arc<Mutex<(u16, String)>>,
    hits: Arc<AtomicUsize>,
}

impl HttpsServer {
    /// Listens on `bind` (port 0 for any) with `tls`, answering `status`
    /// and `body`.
    pub fn start(
        bind: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        status: u16,
        body: &str,
    ) -> HttpsServer {
        let listener = TcpListener::bind(bind).expect("bind https");
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new((status, body.to_string())));
        let hits = Arc::new(AtomicUsize::new(0));
        let (a, h) = (answer.clone(), hits.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming().map_while(Result::ok) {
                let (tls, a, h) = (tls.clone(), a.clone(), h.clone());
                std::thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                    let conn = rustls::ServerConnection::new(tls).expect("tls server");
                    let mut s = rustls::StreamOwned::new(conn, tcp);
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = a.lock().unwrap().clone();
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes());
                    s.conn.send_close_notify();
                    let _ = s.flush();
                });
            }
        });
        HttpsServer { addr, answer, hits }
    }

    /// Answers `status` and `body` from now on.
    pub fn set(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_string());
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
