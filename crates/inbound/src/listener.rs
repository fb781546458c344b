//! The accept loop: connection limits are applied before a task is spawned
//! (over a limit the client gets `421 4.3.2` and no task), accept errors
//! back off instead of spinning, and during shutdown new connections are
//! told `421 4.3.2` while sessions in progress finish.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use laneway_common::config::{Listener, ListenerTls};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::Shared;
use crate::session::state::Conn;
use crate::session::{Flow, Session};

/// Counts connections per listener and per client address.
#[derive(Debug, Default)]
struct Counts {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in the counts; released on drop.
struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::AcqRel);
        let mut m = self.counts.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl Counts {
    fn acquire(self: &Arc<Self>, ip: IpAddr, max_total: usize, max_ip: usize) -> Option<Slot> {
        let mut m = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if self.total.load(Ordering::Acquire) >= max_total {
            return None;
        }
        let n = m.entry(ip).or_insert(0);
        if *n >= max_ip {
            return None;
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::AcqRel);
        Some(Slot {
            counts: self.clone(),
            ip,
        })
    }
}

/// Answers a connection we will not serve with one line and closes it,
/// without spawning a task (a fresh socket's send buffer always takes it).
fn refuse(tcp: TcpStream, text: &str) {
    let _ = tcp.try_write(text.as_bytes());
}

/// Serves SMTP on `tcp` until the task is dropped.
pub async fn serve(tcp: TcpListener, config: Listener, shared: Arc<Shared>) {
    let counts = Arc::new(Counts::default());
    let mut backoff = Duration::from_millis(10);
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) => {
                // EMFILE and friends: wait rather than spin.
                tracing::warn!(listener = %config.name, error = %e, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        if shared.lifecycle.is_shutting_down() {
            refuse(
                stream,
                "421 4.3.2 Service shutting down, try again later\r\n",
            );
            continue;
        }
        let listener = shared
            .settings
            .load()
            .listeners
            .get(&config.name)
            .cloned()
            .unwrap_or_else(|| config.clone());
        let Some(slot) = counts.acquire(
            peer.ip(),
            listener.max_connections,
            listener.max_connections_per_ip,
        ) else {
            tracing::warn!(listener = %config.name, peer = %peer.ip(), "connection limit reached");
            refuse(
                stream,
                "421 4.3.2 Too many connections, try again later\r\n",
            );
            continue;
        };
        let local = stream.local_addr().unwrap_or(peer);
        let shared = shared.clone();
        metrics::counter!(laneway_common::metrics::CONNECTIONS, "direction" => "in").increment(1);
        tokio::spawn(async move {
            let active =
                metrics::gauge!(laneway_common::metrics::CONNECTIONS_ACTIVE, "direction" => "in");
            active.increment(1.0);
            handle(stream, peer, local, listener, shared).await;
            active.decrement(1.0);
            drop(slot);
        });
    }
}

/// A TLS handshake that did not complete: logged and counted.
fn handshake_failed(peer: std::net::SocketAddr, reason: &'static str, error: &str) {
    tracing::debug!(peer = %peer, error = %error, "TLS handshake failed");
    metrics::counter!(laneway_common::metrics::TLS_FAILURES, "direction" => "in", "reason" => reason)
        .increment(1);
}

/// The TLS protocol and cipher of a connection, e.g. `TLSv1.3 TLS13_AES_256_GCM_SHA384`.
pub fn tls_info(conn: &rustls::ServerConnection) -> String {
    metrics::counter!(laneway_common::metrics::TLS, "direction" => "in").increment(1);
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "TLS".to_string(),
    };
    match conn.negotiated_cipher_suite() {
        Some(s) => format!("{version} {:?}", s.suite()),
        None => version,
    }
}

async fn handle(
    mut tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    listener: Listener,
    shared: Arc<Shared>,
) {
    let _ = tcp.set_nodelay(true);
    let conn = Conn::new(listener.name.clone(), peer, local);
    let tls_config = shared.settings.load().tls.clone();
    let handshake = listener.tls_handshake_timeout;
    tracing::debug!(listener = %listener.name, peer = %peer, "connect");
    if listener.tls_mode(tls_config.is_some()) == ListenerTls::Implicit {
        let Some(cfg) = tls_config else {
            return;
        };
        match tokio::time::timeout(handshake, TlsAcceptor::from(cfg).accept(tcp)).await {
            Ok(Ok(mut tls)) => {
                let mut session =
                    Session::new(shared, listener, conn).into_tls(tls_info(tls.get_ref().1));
                session.greet();
                session.run(&mut tls).await;
            }
            Ok(Err(e)) => handshake_failed(peer, "handshake", &e.to_string()),
            Err(_) => handshake_failed(peer, "timeout", "timed out"),
        }
        return;
    }
    let mut session = Session::new(shared.clone(), listener, conn);
    session.greet();
    if session.run(&mut tcp).await == Flow::StartTls {
        let Some(cfg) = shared.settings.load().tls.clone() else {
            return;
        };
        match tokio::time::timeout(handshake, TlsAcceptor::from(cfg).accept(tcp)).await {
            Ok(Ok(mut tls)) => {
                let mut session = session.into_tls(tls_info(tls.get_ref().1));
                session.run(&mut tls).await;
            }
            Ok(Err(e)) => handshake_failed(peer, "handshake", &e.to_string()),
            Err(_) => handshake_failed(peer, "timeout", "timed out"),
        }
    }
}
