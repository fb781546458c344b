//! The queue administration interface (`laneway_common::admin::Admin`)
//! over the scheduler: what the HTTP admin API and the control socket call.

use std::sync::Arc;

use laneway_common::admin::{
    Admin, AdminError, MessageDetail, MessageFilter, MessageSummary, QueueSummary,
};
use laneway_common::ingest::BoxFuture;
use laneway_common::{MessageId, Priority};
use laneway_spool::queue::{Notifier, Queue};

/// Admin operations on the running queue.
pub struct QueueAdmin {
    queue: Arc<Queue>,
    notifier: Arc<dyn Notifier>,
}

impl QueueAdmin {
    /// Admin over `queue`; deletions with bounce use `notifier`.
    pub fn new(queue: Arc<Queue>, notifier: Arc<dyn Notifier>) -> QueueAdmin {
        QueueAdmin { queue, notifier }
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
}
