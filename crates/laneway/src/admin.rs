//! The queue administration interface (`laneway_common::admin::Admin`)
//! over the scheduler: what the HTTP admin API and the control socket call.

use std::sync::Arc;

use laneway_auth::store::NewSuppression;
use laneway_auth::{Scope, Suppression, SuppressionStore};
use laneway_cluster::{Cluster, StatusFn};
use laneway_common::admin::{
    Admin, AdminError, MessageDetail, MessageFilter, MessageSummary, QueueSummary, SuppressRequest,
    SuppressionEntry, rfc3339,
};
use laneway_common::admin::{
    ClusterView, DrainRequest, DrainStatus, EventPage, EventQuery, ImportedMessage,
};
use laneway_common::events::{Event, EventSink, EventType};
use laneway_common::ingest::BoxFuture;
use laneway_common::{MessageId, Priority};
use laneway_events::Filter;
use laneway_spool::MessageState;
use laneway_spool::queue::{Notifier, Queue};

use crate::drain::Drainer;

/// Admin operations on the running queue.
pub struct QueueAdmin {
    queue: Arc<Queue>,
    notifier: Arc<dyn Notifier>,
    store: Arc<dyn SuppressionStore>,
    status: StatusFn,
    cluster: Option<Arc<Cluster>>,
    drainer: Arc<Drainer>,
    events: Option<(laneway_events::EventLog, Arc<dyn EventSink>)>,
    auth: Option<Arc<laneway_auth::SenderAuth>>,
    automation: Option<Arc<laneway_outbound::Automation>>,
    checker: Option<Arc<crate::domain_check::Checker>>,
}

impl QueueAdmin {
    /// Admin over `queue`; deletions with bounce use `notifier`;
    /// suppressions live in `store`; `status` is this node's for the
    /// cluster view; holds go through `cluster` when there is one.
    pub fn new(
        queue: Arc<Queue>,
        notifier: Arc<dyn Notifier>,
        store: Arc<dyn SuppressionStore>,
        status: StatusFn,
        cluster: Option<Arc<Cluster>>,
    ) -> QueueAdmin {
        QueueAdmin {
            drainer: Arc::new(Drainer::new(queue.clone())),
            queue,
            notifier,
            store,
            status,
            cluster,
            events: None,
            auth: None,
            automation: None,
            checker: None,
        }
    }

    /// Answers `laneway domain check` with `c`.
    pub fn with_checker(mut self, c: Arc<crate::domain_check::Checker>) -> QueueAdmin {
        self.checker = Some(c);
        self
    }

    /// Shows and clears the shaping rules of `a`.
    pub fn with_automation(mut self, a: Arc<laneway_outbound::Automation>) -> QueueAdmin {
        self.automation = Some(a);
        self
    }

    /// Answers history queries from `log` and reports operator actions
    /// to `sink`.
    pub fn with_events(
        mut self,
        log: laneway_events::EventLog,
        sink: Arc<dyn EventSink>,
    ) -> QueueAdmin {
        self.events = Some((log, sink));
        self
    }

    /// Follows one-click unsubscribe links through `auth`.
    pub fn with_auth(mut self, auth: Arc<laneway_auth::SenderAuth>) -> QueueAdmin {
        self.auth = Some(auth);
        self
    }

    /// An `admin` event for every recipient of `id` still pending.
    fn admin_event(&self, id: MessageId, action: &str, why: &str) {
        let Some((_, sink)) = &self.events else {
            return;
        };
        let Some((lane, from, pending)) = self.queue.pending_of(id) else {
            return;
        };
        for rcpt in pending {
            let mut e = Event::new(EventType::Admin, id, lane.get(), &from, rcpt);
            e.action = Some(action.to_string());
            e.description = Some(why.to_string());
            sink.record(e);
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
            let why = if bounce {
                "deleted by the administrator (the sender gets a DSN)"
            } else {
                "deleted by the administrator"
            };
            // told before: afterwards the recipients are gone
            if self.queue.pending_of(id).is_some() {
                self.admin_event(id, "deleted", why);
            }
            let n = bounce.then_some(self.notifier.as_ref());
            self.queue.delete(id, n).await
        })
    }

    fn retry(&self, id: MessageId) -> Result<(), AdminError> {
        self.queue.retry_now(id)?;
        self.admin_event(id, "retried", "made due now by the administrator");
        Ok(())
    }

    fn set_priority(
        &self,
        id: MessageId,
        lane: Priority,
    ) -> BoxFuture<'_, Result<MessageDetail, AdminError>> {
        Box::pin(async move {
            let old = self.queue.pending_of(id).map(|(l, ..)| l);
            self.queue.set_lane(id, lane).await?;
            if let Some(old) = old.filter(|o| *o != lane) {
                let why = format!("moved from lane {old} to lane {lane} by the administrator");
                self.admin_event(id, "lane_changed", &why);
            }
            self.queue.detail(id).await
        })
    }

    fn flush(&self) -> usize {
        self.queue.flush()
    }

    fn suspend(&self, domain: &str) -> Result<(), AdminError> {
        match &self.cluster {
            Some(c) => c.holds().suspend(domain),
            None => self.queue.suspend(domain),
        }
        Ok(())
    }

    fn resume(&self, domain: &str) -> Result<(), AdminError> {
        match &self.cluster {
            Some(c) => c.holds().resume(domain),
            None => self.queue.resume(domain),
        }
        Ok(())
    }

    fn shaping_active(&self) -> Vec<laneway_common::admin::ShapingActive> {
        self.automation
            .as_ref()
            .map(|a| a.view())
            .unwrap_or_default()
    }

    fn domain_check<'a>(
        &'a self,
        domain: &'a str,
    ) -> BoxFuture<'a, Result<Option<laneway_common::admin::DomainCheck>, AdminError>> {
        Box::pin(async move {
            match &self.checker {
                Some(c) => c.check(domain).await.map_err(AdminError::Conflict),
                None => Ok(None),
            }
        })
    }

    fn shaping_clear(&self, provider: &str) -> Result<bool, AdminError> {
        Ok(self.automation.as_ref().is_some_and(|a| a.clear(provider)))
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

    fn unsubscribe<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<bool, AdminError>> {
        Box::pin(async move {
            match &self.auth {
                Some(a) => a.unsubscribe(token).await.map_err(store),
                None => Ok(false),
            }
        })
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

    fn cluster(&self) -> BoxFuture<'_, ClusterView> {
        Box::pin(async move {
            match &self.cluster {
                Some(c) => c.view().await,
                None => {
                    let me = (self.status)();
                    ClusterView {
                        node: me.node.clone(),
                        clustered: false,
                        connected: false,
                        nodes: vec![me],
                    }
                }
            }
        })
    }

    fn import(&self, m: ImportedMessage) -> BoxFuture<'_, Result<bool, AdminError>> {
        Box::pin(async move {
            let lane =
                Priority::new(i64::from(m.lane)).map_err(|e| AdminError::Invalid(e.to_string()))?;
            let state: MessageState = serde_json::from_value(m.state)
                .map_err(|e| AdminError::Invalid(format!("state: {e}")))?;
            let message = data_encoding::BASE64
                .decode(m.message.as_bytes())
                .map_err(|e| AdminError::Invalid(format!("message: not base64 ({e})")))?;
            self.queue
                .import(m.id, lane, m.envelope, message, state)
                .await
        })
    }

    fn drain(&self, r: DrainRequest) -> Result<DrainStatus, AdminError> {
        self.drainer.start(r)
    }

    fn drain_status(&self) -> DrainStatus {
        self.drainer.status()
    }

    fn events(&self, q: EventQuery) -> BoxFuture<'_, Result<EventPage, AdminError>> {
        Box::pin(async move {
            let Some((log, _)) = &self.events else {
                return Ok(EventPage {
                    events: Vec::new(),
                    next_cursor: None,
                });
            };
            let filter = if let Some(id) = q.message_id {
                Filter::Message(id)
            } else if let Some(r) = q.recipient {
                Filter::Recipient(r)
            } else if let Some(h) = q.message_id_header {
                Filter::Header(h)
            } else if let Some((k, v)) = q.meta {
                Filter::Meta(k, v)
            } else {
                Filter::All
            };
            let log = log.clone();
            let (page, next) =
                tokio::task::spawn_blocking(move || log.history(&filter, q.after, q.limit))
                    .await
                    .map_err(|e| AdminError::Io(e.to_string()))?
                    .map_err(|e| AdminError::Io(e.to_string()))?;
            Ok(EventPage {
                events: page.into_iter().map(|s| s.event).collect(),
                next_cursor: next.map(|n| n.to_string()),
            })
        })
    }
}
