//! One lifecycle for the whole daemon: a shutdown signal every task can
//! wait on, and activity guards that every SMTP transaction, spool write and
//! delivery holds, so that SIGTERM stops new work and then waits — with a
//! time limit, never a fixed sleep — for the work in progress to finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
struct Inner {
    shutdown: CancellationToken,
    active: AtomicUsize,
    idle: Notify,
}

/// A cheap-clone handle on the daemon's lifecycle.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

/// Held while a unit of work that must finish before exit is in progress.
#[derive(Debug)]
#[must_use = "the activity ends when the guard is dropped"]
pub struct ActivityGuard {
    inner: Arc<Inner>,
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        if self.inner.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

impl Lifecycle {
    /// A new lifecycle, running.
    pub fn new() -> Lifecycle {
        Lifecycle::default()
    }

    /// Marks the start of work that shutdown must wait for. Works during
    /// shutdown too: a transaction already in DATA still gets to finish.
    pub fn activity(&self) -> ActivityGuard {
        self.inner.active.fetch_add(1, Ordering::AcqRel);
        ActivityGuard {
            inner: self.inner.clone(),
        }
    }

    /// The number of activities in progress.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::Acquire)
    }

    /// Starts the shutdown: listeners stop accepting, idle sessions close.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Resolves when shutdown begins.
    pub async fn shutdown_requested(&self) {
        self.inner.shutdown.cancelled().await
    }

    /// A token that is cancelled when shutdown begins.
    pub fn token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Waits until no activity is left or `limit` has passed; returns
    /// whether everything finished.
    pub async fn drained(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.inner.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.active() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_guards_and_respects_the_limit() {
        let lc = Lifecycle::new();
        let g = lc.activity();
        lc.begin_shutdown();
        assert!(lc.is_shutting_down());
        assert!(!lc.drained(Duration::from_secs(1)).await);
        let lc2 = lc.clone();
        let waiter = tokio::spawn(async move { lc2.drained(Duration::from_secs(60)).await });
        tokio::task::yield_now().await;
        drop(g);
        assert!(waiter.await.unwrap());
        assert_eq!(lc.active(), 0);
    }
}
