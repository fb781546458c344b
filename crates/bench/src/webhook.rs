//! A webhook receiver for tests and benchmarks: a real HTTP server
//! (axum) on loopback that checks every request's `Laneway-Signature`
//! itself (HMAC-SHA256 of `<t>.<body>`, as a receiver of Laneway's would),
//! keeps what arrived, and can be told to answer 500 for a while.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// One request that reached the receiver.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// When it arrived.
    pub at: Instant,
    /// Whether its signature verified under the receiver's secret.
    pub signed: bool,
    /// The status answered.
    pub status: u16,
    /// The events in it.
    pub events: Vec<Value>,
}

#[derive(Default)]
struct Shared {
    secret: Vec<u8>,
    deliveries: Mutex<Vec<Delivery>>,
    fail_until: Mutex<Option<Instant>>,
    /// Fail this long from the first request on.
    fail_first: Mutex<Option<Duration>>,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// Its address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Whether `header` signs `body` under `secret` (its `t` within 5 minutes).
pub fn signed(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_string()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let now = laneway_common::envelope::now_ms() / 1000;
    if now.abs_diff(t) > 300 {
        return false;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(body);
    let want: String = ring::hmac::sign(&key, &msg)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    sigs.contains(&want)
}

async fn hook(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers
        .get("laneway-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = signed(&s.secret, sig, &body);
    if let Some(d) = s.fail_first.lock().expect("lock").take() {
        *s.fail_until.lock().expect("lock") = Some(Instant::now() + d);
    }
    let failing = s
        .fail_until
        .lock()
        .expect("lock")
        .is_some_and(|t| Instant::now() < t);
    let status = if !ok {
        StatusCode::UNAUTHORIZED
    } else if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let events = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["events"].as_array().cloned())
        .unwrap_or_default();
    s.deliveries.lock().expect("lock").push(Delivery {
        at: Instant::now(),
        signed: ok,
        status: status.as_u16(),
        events,
    });
    status
}

impl Receiver {
    /// Starts a receiver checking signatures under `secret`, on the current
    /// runtime.
    pub async fn start(secret: &[u8]) -> std::io::Result<Receiver> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let shared = Arc::new(Shared {
            secret: secret.to_vec(),
            ..Shared::default()
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        Ok(Receiver { addr, shared })
    }

    /// Starts one on a runtime of its own thread (for blocking tests).
    pub fn spawn(secret: &[u8]) -> Receiver {
        let secret = secret.to_vec();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                tx.send(Receiver::start(&secret).await.expect("bind"))
                    .expect("send");
                std::future::pending::<()>().await;
            });
        });
        rx.recv().expect("receiver started")
    }

    /// The URL to configure: `http://<addr>/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers 500 (to correctly signed requests) for `d` from now.
    pub fn fail_for(&self, d: Duration) {
        *self.shared.fail_until.lock().expect("lock") = Some(Instant::now() + d);
    }

    /// Answers 500 for `d` from the first request on.
    pub fn fail_first_for(&self, d: Duration) {
        *self.shared.fail_first.lock().expect("lock") = Some(d);
    }

    /// Answers 200 again.
    pub fn recover(&self) {
        *self.shared.fail_until.lock().expect("lock") = None;
    }

    /// Every request so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.deliveries.lock().expect("lock").clone()
    }

    /// The events of the requests answered 200, in arrival order.
    pub fn accepted(&self) -> Vec<Value> {
        self.deliveries()
            .into_iter()
            .filter(|d| d.status == 200)
            .flat_map(|d| d.events)
            .collect()
    }
}
