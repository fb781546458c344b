//! Recording what became of delivery attempts: per-recipient outcomes
//! (deferrals past `max_age` become expiries), DSN requests, and the
//! journal record that must be durable before a connection goes on.

use laneway_common::{Disposition, MessageId};

use laneway_common::events::{Event, EventTls, EventType};

use super::{
    Applied, AttemptVia, DsnAction, Entry, Notice, Notifier, Outcome, Queue, WorkItem, expiry_ms,
    next_attempt_ms, schedule_domains,
};
use crate::journal::Record;
use crate::state::RcptStatus;

impl Queue {
    /// Records outcomes of delivering (some recipients of) `item`:
    /// updates the recipients, asks for DSNs (durable before the outcome
    /// is), then records the change in the journal and waits until it is
    /// on disk — so that a crash after this returns never repeats these
    /// deliveries. May be called once per transaction of an item; each
    /// recipient's first outcome counts. Returns what was recorded per
    /// recipient — a deferral past `max_age` comes back as an expiry —
    /// with the next attempt time of deferrals.
    pub async fn complete(
        &self,
        item: &WorkItem,
        outcomes: Vec<(usize, Outcome)>,
        notifier: &dyn Notifier,
    ) -> Vec<Applied> {
        self.complete_via(item, outcomes, notifier, &AttemptVia::default())
            .await
    }

    /// [`Queue::complete`] for an attempt over a connection: its events
    /// (one per recipient, written into the journal with the outcomes)
    /// name the connection's TLS, pool and source address.
    pub async fn complete_via(
        &self,
        item: &WorkItem,
        outcomes: Vec<(usize, Outcome)>,
        notifier: &dyn Notifier,
        via: &AttemptVia,
    ) -> Vec<Applied> {
        let now = self.clock.now_ms();
        let mut events = Vec::new();
        let policy = self.settings().policy.policy(item.lane);
        let jitter = self.clock.jitter();
        let mut failed = Vec::new();
        let mut relayed = Vec::new();
        let mut delayed = Vec::new();
        let mut applied = Vec::new();
        let mut changed = Vec::new();
        let lane;
        {
            let mut st = self.lock();
            let Some(e) = st.entries.get_mut(&item.id) else {
                return applied;
            };
            lane = e.lane;
            e.attempts = e
                .attempts
                .max(u16::try_from(item.attempts + 1).unwrap_or(u16::MAX));
            let expires = expiry_ms(&policy, e.queued_at_ms);
            for (idx, outcome) in outcomes {
                if !item.recipients.iter().any(|(i, _)| *i == idx) {
                    continue;
                }
                let Some(r) = e.rcpts.get_mut(idx) else {
                    continue;
                };
                if !r.busy {
                    continue; // recorded already, or not part of this attempt
                }
                r.busy = false;
                r.attempts = r.attempts.saturating_add(1);
                changed.push(idx);
                let mut a = Applied::new(idx, outcome);
                match a.outcome.disposition {
                    Disposition::Delivered => {
                        r.status = RcptStatus::Delivered;
                        if !a.outcome.dsn_passed {
                            relayed.push((idx, a.outcome.clone()));
                        }
                    }
                    Disposition::Permanent => {
                        r.status = RcptStatus::Failed;
                        failed.push((idx, a.outcome.clone()));
                    }
                    Disposition::Transient if now >= expires => {
                        a.outcome = Outcome::expired(&a.outcome);
                        a.expired = true;
                        r.status = RcptStatus::Failed;
                        failed.push((idx, a.outcome.clone()));
                    }
                    Disposition::Transient => {
                        r.next_ms = next_attempt_ms(
                            &policy,
                            r.attempts.into(),
                            e.queued_at_ms,
                            now,
                            jitter,
                        );
                        a.next_attempt_ms = Some(r.next_ms);
                        delayed.push((idx, a.outcome.clone()));
                    }
                }
                r.last = Some(Box::new(a.outcome.clone()));
                applied.push(a);
            }
            let warn_delay = !delayed.is_empty()
                && !e.delay_warned
                && now.saturating_sub(e.queued_at_ms) >= policy.delay_warning.as_millis() as u64;
            if warn_delay {
                e.delay_warned = true;
            } else {
                delayed.clear();
            }
            if !failed.is_empty() || !relayed.is_empty() || !delayed.is_empty() {
                // another completion finishing the message meanwhile must
                // not remove its files before the DSN is written
                e.readers += 1;
            }
            if self.events.get().is_some() {
                events = attempt_events(e, item, &applied, &delayed, via, now);
            }
        }
        // one log write for the transaction's events, however many recipients
        let events: Vec<Vec<u8>> = match self.events.get() {
            Some(sink) => laneway_common::logline::together(|| {
                events.into_iter().map(|ev| sink.encode(ev)).collect()
            }),
            None => Vec::new(),
        };
        let needs_original = !failed.is_empty() || !relayed.is_empty() || !delayed.is_empty();
        if needs_original {
            let id = item.id;
            match self.store.fetch(id, lane, item.read_inline()).await {
                Ok(original) => {
                    for (action, rcpts) in [
                        (DsnAction::Failed, failed),
                        (DsnAction::Relayed, relayed),
                        (DsnAction::Delayed, delayed),
                    ] {
                        if !rcpts.is_empty() {
                            notifier
                                .notify(
                                    &original,
                                    Notice {
                                        id,
                                        lane,
                                        action,
                                        recipients: rcpts,
                                    },
                                )
                                .await;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(id = %id, error = %e, "cannot read the message to write its DSN")
                }
            }
            self.done_reading(id);
        }
        if !changed.is_empty() {
            self.persist_with(item.id, &changed, events).await;
        }
        applied
    }

    /// A DSN no longer needs the message's files.
    pub(super) fn done_reading(&self, id: MessageId) {
        if let Some(e) = self.lock().entries.get_mut(&id) {
            e.readers = e.readers.saturating_sub(1);
        }
    }

    /// Ends an item: any of its recipients that got no outcome (which the
    /// dispatcher never leaves) is made available again, so that nothing
    /// can stay busy forever.
    pub fn finish_item(&self, item: &WorkItem) {
        let now = self.clock.now_ms();
        let mut st = self.lock();
        let Some(e) = st.entries.get_mut(&item.id) else {
            return;
        };
        let mut left = false;
        for (i, _) in &item.recipients {
            if let Some(r) = e.rcpts.get_mut(*i)
                && r.busy
            {
                r.busy = false;
                left = true;
            }
        }
        if left {
            tracing::error!(id = %item.id, "delivery ended without an outcome for some recipients; they will be tried again");
            schedule_domains(&mut st, item.id, now, &self.work);
            drop(st);
            self.changed.notify_one();
        }
    }

    /// Records the state of a message in the journal — its changed
    /// recipients, or its removal when it is done — puts its remaining
    /// work back on the timer or in the lanes, and waits until the record
    /// is durable. The record is made under the lock, so records of one
    /// message are journalled in the order of its changes.
    pub(super) async fn persist(&self, id: MessageId, changed: &[usize]) {
        self.persist_with(id, changed, Vec::new()).await
    }

    /// [`Queue::persist`] with events committed together with the change.
    pub(super) async fn persist_with(
        &self,
        id: MessageId,
        changed: &[usize],
        events: Vec<Vec<u8>>,
    ) {
        let now = self.clock.now_ms();
        let (commit, done) = {
            let mut st = self.lock();
            let Some(e) = st.entries.get_mut(&id) else {
                return;
            };
            let lane = e.lane;
            let done =
                (e.is_done() || (e.deleted && !e.rcpts.iter().any(|r| r.busy))) && e.readers == 0;
            let record = if done {
                Record::Remove(id, lane)
            } else {
                Record::Rcpts(id, lane, e.delta(changed))
            };
            let mut records = vec![record];
            records.extend(events.into_iter().map(Record::Event));
            let commit = self.store.record(records);
            if done {
                st.entries.remove(&id);
                st.lane_out[lane.index()] += 1;
            } else if !e.deleted {
                schedule_domains(&mut st, id, now, &self.work);
            }
            (commit, done)
        };
        if let Err(e) = commit.await {
            tracing::error!(id = %id, error = %e, done, "recording the delivery state failed");
        }
        if !done {
            self.changed.notify_one();
        }
    }
}

/// The events of an attempt: one per recipient it decided, and a
/// `delayed` one per recipient a delay warning goes out for.
fn attempt_events(
    e: &Entry,
    item: &WorkItem,
    applied: &[Applied],
    delayed: &[(usize, Outcome)],
    via: &AttemptVia,
    now: u64,
) -> Vec<Event> {
    let stamp = |mut ev: Event, idx: usize| {
        ev.attempt = e.rcpts.get(idx).map(|r| r.attempts.into());
        ev.queue_time_ms = Some(now.saturating_sub(e.queued_at_ms));
        ev.tls = via.tls_policy.as_ref().map(|p| EventTls {
            version: via.tls.clone(),
            policy: p.clone(),
        });
        ev.pool = via.pool.clone();
        ev.source_ip = via.source_ip.clone();
        ev
    };
    let mut out: Vec<Event> = applied
        .iter()
        .map(|a| {
            let mut ev = e
                .event(
                    EventType::of_outcome(&a.outcome, a.expired),
                    item.id,
                    a.index,
                )
                .with_outcome(&a.outcome);
            ev.next_attempt = a.next_attempt_ms.map(laneway_common::admin::rfc3339);
            stamp(ev, a.index)
        })
        .collect();
    for (idx, o) in delayed {
        let ev = e.event(EventType::Delayed, item.id, *idx).with_outcome(o);
        out.push(stamp(ev, *idx));
    }
    out
}
