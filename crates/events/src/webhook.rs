//! Webhooks: each `[[webhook]]` gets the events it asks for (types, lanes)
//! in order, in batches of `batch_size` gathered for at most `batch_wait`,
//! as `POST {"events": [...]}`, signed, at least once.
//!
//! The signature is Stripe's scheme: `Laneway-Signature: t=<unix
//! seconds>,v1=<hex>[,v1=<hex>…]`, each `v1` the HMAC-SHA256 of
//! `<t>.<body>` under one secret of `secret_file` (every line signs, so a
//! secret can be rotated). A receiver checks one `v1` and that `t` is
//! recent. Each webhook's cursor — the last event it got — is durable in
//! the event log and advanced only after a 2xx; a failed request is tried
//! again after `retry_initial`, doubling up to `retry_max`; events older
//! than `max_age` are dropped (counted and logged) instead of sent.

use std::sync::Arc;
use std::time::Duration;

use laneway_common::config::Webhook;
use laneway_common::http::{Connection, Request, Url};
use laneway_common::metrics as m;
use tokio_util::sync::CancellationToken;

use crate::log::{EventLog, Raw};

/// Events looked at per read (a webhook that wants few types skips many).
const SCAN: usize = 10_000;

/// The `Laneway-Signature` header value for `body` at `t` (unix seconds).
pub fn signature(secrets: &[Vec<u8>], t: u64, body: &[u8]) -> String {
    let mut out = format!("t={t}");
    for s in secrets {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s);
        let mut ctx = ring::hmac::Context::with_key(&key);
        ctx.update(t.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        out.push_str(",v1=");
        out.push_str(&data_encoding::HEXLOWER.encode(ctx.sign().as_ref()));
    }
    out
}

/// Whether `header` carries a valid signature of `body` under `secret`
/// made within `tolerance` of `now` (unix seconds): what a receiver does.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: u64, tolerance: u64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_string()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if now.abs_diff(t) > tolerance {
        return false;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut signed = t.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    sigs.iter().any(|s| {
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.as_bytes())
            .is_ok_and(|tag| ring::hmac::verify(&key, &signed, &tag).is_ok())
    })
}

/// The webhook tasks; they end with [`Webhooks::stop`].
pub struct Webhooks {
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Webhooks {
    /// Starts one task per webhook (the secrets are read now: check-config
    /// has made sure they can be).
    pub fn start(log: EventLog, hooks: &[Webhook]) -> Result<Webhooks, String> {
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        for w in hooks {
            let url = Url::parse(&w.url).map_err(|e| format!("[[webhook]] {}: {e}", w.name))?;
            let secrets = w.secrets()?;
            let sender = Sender {
                hook: w.clone(),
                url,
                secrets,
                log: log.clone(),
                cancel: cancel.clone(),
            };
            tasks.push(tokio::spawn(sender.run()));
        }
        Ok(Webhooks { cancel, tasks })
    }

    /// Ends the tasks (what was not sent is sent after the next start).
    pub async fn stop(self) {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

struct Sender {
    hook: Webhook,
    url: Url,
    secrets: Vec<Vec<u8>>,
    log: EventLog,
    cancel: CancellationToken,
}

/// The log's blocking calls, off the async threads.
async fn blocking<T: Send + 'static>(
    log: &EventLog,
    f: impl FnOnce(EventLog) -> T + Send + 'static,
) -> Option<T> {
    let log = log.clone();
    tokio::task::spawn_blocking(move || f(log)).await.ok()
}

impl Sender {
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.cancel.cancelled() => false,
        }
    }

    async fn run(self) {
        let name = self.hook.name.clone();
        let mut cursor = match blocking(&self.log, {
            let n = name.clone();
            move |l| l.cursor(&n)
        })
        .await
        {
            Some(Ok(c)) => c,
            _ => {
                tracing::error!(webhook = %name, "cannot read the webhook's cursor; it sends nothing");
                return;
            }
        };
        let mut newest = self.log.watch();
        let mut backoff = self.hook.retry_initial;
        let mut conn: Option<Connection> = None;
        tracing::info!(webhook = %name, url = %self.url.url, after = cursor, "webhook: sending events");
        loop {
            let hook = self.hook.clone();
            let (batch, last) = match blocking(&self.log, move |l| {
                l.read_raw(cursor, hook.batch_size, SCAN, |kind, lane| {
                    hook.wants(kind, lane)
                })
            })
            .await
            {
                Some(Ok(r)) => r,
                _ => {
                    if !self.sleep(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            let now = laneway_common::envelope::now_ms();
            self.gauges(&batch, cursor, now);
            if batch.is_empty() {
                if last > cursor {
                    cursor = self.advance(last).await;
                    continue;
                }
                tokio::select! {
                    _ = newest.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = self.cancel.cancelled() => return,
                }
                continue;
            }
            // wait for a fuller batch, but never past batch_wait of the oldest
            let age = Duration::from_millis(now.saturating_sub(batch[0].ts_ms));
            if batch.len() < self.hook.batch_size && age < self.hook.batch_wait {
                tokio::select! {
                    _ = tokio::time::sleep(self.hook.batch_wait - age) => {}
                    _ = self.cancel.cancelled() => return,
                }
                continue;
            }
            let max_age = self.hook.max_age.as_millis() as u64;
            let (fresh, stale): (Vec<Raw>, Vec<Raw>) = batch
                .into_iter()
                .partition(|s| now.saturating_sub(s.ts_ms) <= max_age);
            if !stale.is_empty() {
                tracing::warn!(webhook = %name, dropped = stale.len(), "webhook: events older than max_age dropped");
                ::metrics::counter!(m::WEBHOOK_EVENTS, "webhook" => name.clone(), "result" => "dropped")
                    .increment(stale.len() as u64);
            }
            if fresh.is_empty() {
                cursor = self.advance(last).await;
                continue;
            }
            match self.post(&mut conn, &fresh).await {
                Ok(()) => {
                    ::metrics::counter!(m::WEBHOOK_EVENTS, "webhook" => name.clone(), "result" => "sent")
                        .increment(fresh.len() as u64);
                    backoff = self.hook.retry_initial;
                    cursor = self.advance(last).await;
                }
                Err(e) => {
                    conn = None;
                    ::metrics::counter!(m::WEBHOOK_EVENTS, "webhook" => name.clone(), "result" => "failed")
                        .increment(fresh.len() as u64);
                    tracing::warn!(webhook = %name, error = %e, events = fresh.len(), retry_in = ?backoff, "webhook: not delivered; trying again");
                    if !self.sleep(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(self.hook.retry_max);
                }
            }
        }
    }

    fn gauges(&self, batch: &[Raw], cursor: u64, now: u64) {
        let newest = *self.log.watch().borrow();
        let name = self.hook.name.clone();
        ::metrics::gauge!(m::WEBHOOK_BACKLOG, "webhook" => name.clone())
            .set(newest.saturating_sub(cursor) as f64);
        let oldest = batch
            .first()
            .map(|s| now.saturating_sub(s.ts_ms) as f64 / 1000.0)
            .unwrap_or(0.0);
        ::metrics::gauge!(m::WEBHOOK_OLDEST, "webhook" => name).set(oldest);
    }

    /// Makes `seq` the durable cursor; the cursor in force.
    async fn advance(&self, seq: u64) -> u64 {
        let name = self.hook.name.clone();
        match blocking(&self.log, move |l| l.set_cursor(&name, seq)).await {
            Some(Ok(())) => seq,
            _ => {
                tracing::error!(webhook = %self.hook.name, "cannot record the webhook's cursor; events may be sent again");
                seq
            }
        }
    }

    async fn post(&self, conn: &mut Option<Connection>, batch: &[Raw]) -> Result<(), String> {
        let mut body = b"{\"events\":[".to_vec();
        for (i, s) in batch.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&s.json);
        }
        body.extend_from_slice(b"]}");
        let t = laneway_common::envelope::now_ms() / 1000;
        let sig = signature(&self.secrets, t, &body);
        if conn.is_none() {
            let ep = self.url.endpoint().await.map_err(|e| e.to_string())?;
            *conn = Some(
                Connection::open(&ep, &self.url.authority(), self.hook.timeout)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let c = conn.as_mut().expect("opened above");
        let headers = [
            ("content-type", "application/json"),
            ("laneway-signature", sig.as_str()),
        ];
        let r = c
            .send(
                &Request {
                    method: "POST",
                    path: &self.url.path,
                    headers: &headers,
                    body,
                },
                16 * 1024,
                self.hook.timeout,
            )
            .await
            .map_err(|e| e.to_string())?;
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            let text: String = String::from_utf8_lossy(&r.body).chars().take(200).collect();
            Err(format!("{} answered {}: {text}", self.url.url, r.status))
        }
    }
}

/// Every webhook's name and `max_age`, for the purge.
pub fn needs(hooks: &[Webhook]) -> Vec<(String, Duration)> {
    hooks.iter().map(|w| (w.name.clone(), w.max_age)).collect()
}

/// Ends the purge of the event log when dropped.
pub struct PurgeGuard(CancellationToken);

impl Drop for PurgeGuard {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Purges the log every ten minutes (and once at once) until the guard
/// goes; `now_ms` is the clock.
pub fn purge(
    log: EventLog,
    history: Duration,
    needed: Vec<(String, Duration)>,
    now_ms: fn() -> u64,
) -> PurgeGuard {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let needed = Arc::new(needed);
    tokio::spawn(async move {
        loop {
            let (l, n) = (log.clone(), needed.clone());
            match tokio::task::spawn_blocking(move || l.purge(now_ms(), history, &n)).await {
                Ok(Ok(k)) if k > 0 => tracing::info!(events = k, "event history purged"),
                Ok(Err(e)) => tracing::warn!(error = %e, "event history purge failed"),
                _ => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(600)) => {}
                _ = c.cancelled() => return,
            }
        }
    });
    PurgeGuard(cancel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_rotate() {
        let body = br#"{"events":[]}"#;
        let h = signature(&[b"new".to_vec(), b"old".to_vec()], 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(h.matches("v1=").count(), 2);
        assert!(verify(b"new", &h, body, 1_700_000_010, 300));
        assert!(verify(b"old", &h, body, 1_700_000_010, 300), "rotation");
        assert!(!verify(b"other", &h, body, 1_700_000_010, 300));
        assert!(
            !verify(b"new", &h, b"{}", 1_700_000_010, 300),
            "body changed"
        );
        assert!(
            !verify(b"new", &h, body, 1_700_001_000, 300),
            "replayed late"
        );
        // HMAC-SHA256("secret", "1.{}"), as Python's hmac module computes it
        assert_eq!(
            signature(&[b"secret".to_vec()], 1, b"{}"),
            "t=1,v1=1122767b193110cfec322b6f199b599edbf608ed087f2d27afb0b97d99523908"
        );
    }
}
