//! Background work of sender authentication, each task owned by a handle
//! (as mini-redis's `DbDropGuard` owns its purge task): the token writer,
//! which records bounce tokens in batches and is flushed on drain, and the
//! purge of expired tokens, which ends with its guard.
//!
//! Tokens are needed only once mail comes back, long after delivery: they
//! are committed in batches (one durable write for many), and a flush
//! makes sure nothing is pending before a returned message is read.

use std::sync::Arc;
use std::time::Duration;

use laneway_common::MessageId;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::{TokenInfo, TokenStore};

/// Longest a token waits to be gathered into a batch.
const GATHER: Duration = Duration::from_millis(50);
/// Most tokens in one batch.
const MAX_BATCH: usize = 5000;

enum Msg {
    Token(MessageId, Option<u16>, TokenInfo),
    Flush(oneshot::Sender<()>),
}

/// Records bounce tokens in batches.
pub struct TokenWriter {
    tx: mpsc::UnboundedSender<Msg>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl TokenWriter {
    /// Starts the writer on the current runtime.
    pub fn spawn(store: Arc<dyn TokenStore>) -> TokenWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, rx));
        TokenWriter {
            tx,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// Queues a token; never blocks.
    pub fn record(&self, id: MessageId, rcpt: Option<u16>, info: TokenInfo) {
        if self.tx.send(Msg::Token(id, rcpt, info)).is_err() {
            tracing::error!(id = %id, "bounce token writer stopped; token not recorded");
        }
    }

    /// Resolves once every token queued before the call is recorded (or
    /// its write failed and was logged).
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }

    /// Flushes and ends the task (on drain).
    pub async fn close(&self) {
        self.flush().await;
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }
}

async fn run(store: Arc<dyn TokenStore>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut batch = Vec::new();
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        let take = |m: Msg, batch: &mut Vec<_>, waiting: &mut Vec<_>| match m {
            Msg::Token(id, i, t) => batch.push((id, i, t)),
            Msg::Flush(ack) => waiting.push(ack),
        };
        take(first, &mut batch, &mut waiting);
        // gather what arrives within a short window into one commit
        let until = tokio::time::Instant::now() + GATHER;
        while batch.len() < MAX_BATCH && waiting.is_empty() {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(m)) => take(m, &mut batch, &mut waiting),
                _ => break,
            }
        }
        if !batch.is_empty() {
            let n = batch.len();
            match store.remember(std::mem::take(&mut batch)).await {
                Ok(()) => tracing::debug!(tokens = n, "bounce tokens recorded"),
                Err(e) => tracing::error!(error = %e, tokens = n, "cannot record bounce tokens"),
            }
        }
        for ack in waiting.drain(..) {
            let _ = ack.send(());
        }
    }
}

/// Purges expired tokens every `every` until the guard is dropped.
pub struct PurgeGuard {
    cancel: CancellationToken,
}

impl Drop for PurgeGuard {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts the purge: once at once, then every `every`; `now_ms` is the clock.
pub fn purge(store: Arc<dyn TokenStore>, every: Duration, now_ms: fn() -> u64) -> PurgeGuard {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        loop {
            match store.purge_expired(now_ms()).await {
                Ok(n) if n > 0 => tracing::info!(tokens = n, "expired bounce tokens purged"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "purging bounce tokens failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = c.cancelled() => return,
            }
        }
    });
    PurgeGuard { cancel }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn a_flush_waits_for_the_batch_and_close_ends_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("a.redb")).unwrap());
        let w = TokenWriter::spawn(store.clone());
        let info = TokenInfo {
            recipient: "x@r.test".into(),
            sender: "a@s.test".into(),
            sender_domain: "s.test".into(),
            lane: 1,
            expires_at: u64::MAX,
        };
        for i in 0..10u16 {
            w.record(MessageId::from_u64(5), Some(i), info.clone());
        }
        w.flush().await;
        for i in 0..10u16 {
            assert!(
                store
                    .lookup(MessageId::from_u64(5), Some(i))
                    .unwrap()
                    .is_some()
            );
        }
        w.record(MessageId::from_u64(6), None, info);
        w.close().await;
        assert!(
            store
                .lookup(MessageId::from_u64(6), None)
                .unwrap()
                .is_some()
        );
        assert!(w.task.lock().unwrap().is_none());
    }
}
