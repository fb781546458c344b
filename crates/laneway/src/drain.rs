//! `laneway queue drain --to URL`: hands every queued message to another
//! node through its `POST /api/v1/queue/import`, one at a time on one
//! keep-alive connection. Each message leaves the schedule here first, is
//! spooled by the other node before it answers, and only then is removed
//! here; a refusal puts it back. Messages being delivered are waited for
//! and handed over once their attempt is done. The drain ends when the
//! queue is empty, or after ten failures in a row (the last error is in
//! the status).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use data_encoding::BASE64;
use laneway_common::admin::{AdminError, DrainRequest, DrainStatus, ImportedMessage};
use laneway_common::http::{Connection, Endpoint, Request};
use laneway_spool::queue::Queue;

/// Failures in a row that stop a drain.
const MAX_FAILURES: u64 = 10;
/// Longest a hand-over may take (the other node fsyncs before answering).
const TIMEOUT: Duration = Duration::from_secs(30);

/// The drain of this node (at most one at a time).
pub struct Drainer {
    queue: Arc<Queue>,
    status: Mutex<DrainStatus>,
}

impl Drainer {
    /// A drainer of `queue`, idle.
    pub fn new(queue: Arc<Queue>) -> Drainer {
        Drainer {
            queue,
            status: Mutex::new(DrainStatus {
                state: "idle".into(),
                ..DrainStatus::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DrainStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The status, with the messages still queued.
    pub fn status(&self) -> DrainStatus {
        let mut s = self.lock().clone();
        s.remaining = self.queue.summary().total;
        s
    }

    /// Starts a drain; refused while one runs.
    pub fn start(self: &Arc<Self>, r: DrainRequest) -> Result<DrainStatus, AdminError> {
        let target = Target::parse(&r.to).map_err(AdminError::Invalid)?;
        {
            let mut s = self.lock();
            if s.state == "running" {
                return Err(AdminError::Conflict(format!(
                    "a drain to {} is running",
                    s.to.as_deref().unwrap_or("?")
                )));
            }
            *s = DrainStatus {
                state: "running".into(),
                to: Some(r.to.clone()),
                ..DrainStatus::default()
            };
        }
        tracing::info!(to = %r.to, "drain: handing the queue to another node");
        let this = self.clone();
        tokio::spawn(async move { this.run(target, r.key).await });
        Ok(self.status())
    }

    fn finish(&self, error: Option<String>) {
        let mut s = self.lock();
        s.state = if error.is_some() { "failed" } else { "done" }.into();
        match &error {
            Some(e) => {
                tracing::error!(moved = s.moved, failed = s.failed, error = %e, "drain stopped")
            }
            None => tracing::info!(
                moved = s.moved,
                already_there = s.already_there,
                failed = s.failed,
                "drain done: the queue is empty"
            ),
        }
        s.error = error;
    }

    async fn run(self: Arc<Self>, target: Target, key: String) {
        let auth = format!("Bearer {key}");
        let mut conn: Option<Connection> = None;
        let mut in_a_row = 0u64;
        loop {
            let ids = self.queue.exportable(256);
            if ids.is_empty() {
                if self.queue.summary().total == 0 {
                    return self.finish(None);
                }
                // what is left is being delivered: wait for its attempt
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            for id in ids {
                let m = match self.queue.export(id).await {
                    Ok(m) => m,
                    // delivered, deleted or busy meanwhile
                    Err(_) => continue,
                };
                let body = ImportedMessage {
                    id,
                    lane: m.lane.get(),
                    envelope: m.spooled.envelope.clone(),
                    state: serde_json::to_value(&m.state).unwrap_or_default(),
                    message: BASE64.encode(m.spooled.message()),
                };
                let body = serde_json::to_vec(&body).unwrap_or_default();
                let answer = target.send(&mut conn, &auth, body).await;
                match answer {
                    Ok((status, _)) if status == 201 || status == 200 => {
                        self.queue.exported(id).await;
                        let mut s = self.lock();
                        s.moved += 1;
                        if status == 200 {
                            s.already_there += 1;
                        }
                        in_a_row = 0;
                    }
                    other => {
                        self.queue.put_back(id);
                        let error = match other {
                            Ok((status, text)) => {
                                format!("{} answered {status}: {text}", target.url)
                            }
                            Err(e) => e,
                        };
                        tracing::warn!(id = %id, error = %error, "drain: hand-over failed; the message stays here");
                        conn = None;
                        self.lock().failed += 1;
                        in_a_row += 1;
                        if in_a_row >= MAX_FAILURES {
                            return self.finish(Some(error));
                        }
                        tokio::time::sleep(Duration::from_millis(200 * in_a_row)).await;
                    }
                }
            }
        }
    }
}

/// The other node's API.
struct Target {
    url: String,
    host: String,
    port: u16,
    tls: bool,
    base: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url:?} is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let default = if tls { 443 } else { 80 };
        let port_of = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("{url:?}: the port {p:?} is not a number"))
        };
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, p) = r
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: an IPv6 address without its ']'"))?;
            match p.strip_prefix(':') {
                Some(p) => (h, port_of(p)?),
                None => (h, default),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, port_of(p)?),
                None => (authority, default),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?} names no host"));
        }
        Ok(Target {
            url: url.to_string(),
            host: host.to_string(),
            port,
            tls,
            base: path.to_string(),
        })
    }

    async fn endpoint(&self) -> Result<Endpoint, String> {
        let addr: SocketAddr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("{}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{}: no address", self.host))?;
        if !self.tls {
            return Ok(Endpoint::Tcp(addr));
        }
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Endpoint::Tls {
            addr,
            name: self.host.clone(),
            config: Arc::new(config),
        })
    }

    /// One hand-over on the kept connection (opened when there is none);
    /// the status and a short text of the answer.
    async fn send(
        &self,
        conn: &mut Option<Connection>,
        auth: &str,
        body: Vec<u8>,
    ) -> Result<(u16, String), String> {
        if conn.is_none() {
            let ep = self.endpoint().await?;
            let host = format!("{}:{}", self.host, self.port);
            *conn = Some(
                Connection::open(&ep, &host, TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let c = conn.as_mut().expect("opened above");
        let path = format!("{}/api/v1/queue/import", self.base);
        let headers = [
            ("authorization", auth),
            ("content-type", "application/json"),
        ];
        let r = c
            .send(
                &Request {
                    method: "POST",
                    path: &path,
                    headers: &headers,
                    body,
                },
                64 * 1024,
                TIMEOUT,
            )
            .await
            .map_err(|e| e.to_string())?;
        let text: String = String::from_utf8_lossy(&r.body).chars().take(300).collect();
        Ok((r.status, text))
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn urls() {
        let t = Target::parse("http://10.0.0.2:8025").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls, t.base.as_str()),
            ("10.0.0.2", 8025, false, "")
        );
        let t = Target::parse("https://mx2.example.com/laneway/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls, t.base.as_str()),
            ("mx2.example.com", 443, true, "/laneway")
        );
        let t = Target::parse("http://[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        for bad in ["ftp://x", "http://", "http://h:port", "mx2:8025"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
