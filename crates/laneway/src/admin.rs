//! The queue administration interface (`laneway_common::admin::Admin`)
//! over the scheduler: what the HTTP admin API and the control socket call.

use std::sync::Arc;

use laneway_auth::store::NewSuppression;
use laneway_auth::{Scope, Suppression, SuppressionStore};
use laneway_common::admin::{
    Admin, AdminError, MessageDetail, MessageFilter, MessageSummary, QueueSummary, SuppressRequest,
    SuppressionEntry, rfc3339,
};
use laneway_common::ingest::BoxFuture;
use laneway_common::{MessageId, Priority};
use laneway_spool::queue::{Notifier, Queue};

/// Admin operations on the running queue.
pub struct QueueAdmin {
    queue: Arc<Queue>,
    notifier: Arc<dyn Notifier>,
    store: Arc<dyn SuppressionStore>,
}

impl QueueAdmin {
    /// Admin over `queue`; deletions with bounce use `notifier`;
    /// suppressions live in `store`.
    pub fn new(
        queue: Arc<Queue>,
        notifier: Arc<dyn Notifier>,
        store: Arc<dyn SuppressionStore>,
    ) -> QueueAdmin {
        QueueAdmin {
            queue,
            notifier,
            store,
        }
    }
}

fn entry(s: Suppression) -> SuppressionEntry {
    SuppressionEntry {
        address: s.address,
        sender_domain: s.sender_domain,
        reason: s.reason,
        lanes: match s.scope {
            Scope::All => "all",
            Scope::Bulk => "bulk",
        }
        .to_string(),
        since: rfc3339(s.since.saturating_mul(1000)),
    }
}

fn io(e: impl std::fmt::Display) -> AdminError {
    AdminError::Io(e.to_string())
}

/// A store error: the caller's fault (bad value, foreign cursor) or ours.
fn store(e: laneway_auth::StoreError) -> AdminError {
    match e {
        laneway_auth::StoreError::Invalid { .. } | laneway_auth::StoreError::BadCursor(_) => {
            AdminError::Invalid(e.to_string())
        }
        other => io(other),
    }
}

impl Admin for QueueAdmin {
    fn summary(&self) -> QueueSummary {
        self.queue.summary()
    }

    fn list(&self, filter: &MessageFilter) -> (Vec<MessageSummary>, Option<MessageId>) {
        self.queue.list(filter)
    }

    fn detail(&self, id: MessageId) -> BoxFuture<'_, Result<MessageDetail, AdminError>> {
        Box::pin(self.queue.detail(id))
    }

    fn delete(&self, id: MessageId, bounce: bool) -> BoxFuture<'_, Result<(), AdminError>> {
        Box::pin(async move {
            let n = bounce.then_some(self.notifier.as_ref());
            self.queue.delete(id, n).await
        })
    }

    fn retry(&self, id: MessageId) -> Result<(), AdminError> {
        self.queue.retry_now(id)
    }

    fn set_priority(
        &self,
        id: MessageId,
        lane: Priority,
    ) -> BoxFuture<'_, Result<MessageDetail, AdminError>> {
        Box::pin(async move {
            self.queue.set_lane(id, lane).await?;
            self.queue.detail(id).await
        })
    }

    fn flush(&self) -> usize {
        self.queue.flush()
    }

    fn suspend(&self, domain: &str) -> Result<(), AdminError> {
        self.queue.suspend(domain);
        Ok(())
    }

    fn resume(&self, domain: &str) -> Result<(), AdminError> {
        self.queue.resume(domain);
        Ok(())
    }

    fn suppressions<'a>(
        &'a self,
        sender_domain: Option<&'a str>,
        limit: usize,
        cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<laneway_common::admin::SuppressionPage, AdminError>> {
        Box::pin(async move {
            let (list, next) = self
                .store
                .list(sender_domain, limit, cursor)
                .await
                .map_err(store)?;
            Ok((list.into_iter().map(entry).collect(), next))
        })
    }

    fn suppress<'a>(
        &'a self,
        r: &'a SuppressRequest,
    ) -> BoxFuture<'a, Result<SuppressionEntry, AdminError>> {
        let scope = if r.all_lanes { Scope::All } else { Scope::Bulk };
        let now = laneway_common::envelope::now_ms() / 1000;
        let n = NewSuppression::new(&r.sender_domain, &r.address, &r.reason, scope, now);
        Box::pin(async move { self.store.suppress(&n).await.map(entry).map_err(store) })
    }

    fn unsuppress<'a>(
        &'a self,
        address: &'a str,
        sender_domain: &'a str,
    ) -> BoxFuture<'a, Result<bool, AdminError>> {
        Box::pin(async move {
            self.store
                .unsuppress(sender_domain, address)
                .await
                .map_err(store)
        })
    }
}
