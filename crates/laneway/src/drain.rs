//! `laneway queue drain --to URL`: hands every queued message to another
//! node through its `POST /api/v1/queue/import`, one at a time on one
//! keep-alive connection. Each message leaves the schedule here first, is
//! spooled by the other node before it answers, and only then is removed
//! here; a refusal puts it back. Messages being delivered are waited for
//! and handed over once their attempt is done. The drain ends when the
//! queue is empty, or after ten failures in a row (the last error is in
//! the status).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use data_encoding::BASE64;
use laneway_common::admin::{AdminError, DrainRequest, DrainStatus, ImportedMessage};
use laneway_common::http::{Connection, Request, Url};
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
                                format!("{} answered {status}: {text}", target.0.url)
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
struct Target(Url);

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        Url::parse(url).map(Target)
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
            let ep = self.0.endpoint().await.map_err(|e| e.to_string())?;
            *conn = Some(
                Connection::open(&ep, &self.0.authority(), TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let c = conn.as_mut().expect("opened above");
        let path = self.0.join("/api/v1/queue/import");
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
