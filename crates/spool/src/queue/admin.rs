//! Operator actions on the scheduler: the summary and listings behind
//! `laneway queue` and the admin API, deleting, retrying and re-laning a
//! message, flushing, and suspending a destination.

use std::collections::BTreeMap;
use std::sync::Arc;

use laneway_common::admin::{
    AdminError, DestinationSummary, LaneSummary, MessageDetail, MessageFilter, MessageSummary,
    QueueSummary, RecipientDetail, rfc3339,
};
use laneway_common::{MessageId, Priority};

use super::site::Health;
use laneway_common::delivery::{Outcome, Stage, Status};
use laneway_common::domain::DomainPattern;

use super::compact::DomainId;
use super::{DsnAction, Entry, Notice, Notifier, Queue, Ticket, schedule_domains};
use crate::state::RcptStatus;

fn state_of(e: &Entry) -> &'static str {
    if e.rcpts.iter().any(|r| r.busy) {
        "active"
    } else if e.tickets().any(|(_, t)| t == Ticket::Ready) {
        "ready"
    } else if e.tickets().any(|(_, t)| t == Ticket::Waiting) {
        "resolving"
    } else {
        "deferred"
    }
}

fn next_attempt(e: &Entry) -> Option<String> {
    e.tickets()
        .filter_map(|(_, t)| match t {
            Ticket::Timer(at) => Some(at),
            _ => None,
        })
        .min()
        .map(rfc3339)
}

fn summary_of(id: MessageId, e: &Entry) -> MessageSummary {
    MessageSummary {
        id,
        lane: e.lane.get(),
        from: e.sender.to_string(),
        recipients: e
            .rcpts
            .iter()
            .filter(|r| !r.status.is_final())
            .map(|r| r.address.to_string())
            .collect(),
        state: state_of(e).to_string(),
        attempts: e.attempts.into(),
        next_attempt: next_attempt(e),
        queued_at: rfc3339(e.queued_at_ms),
    }
}

impl Queue {
    /// The queue at a glance.
    pub fn summary(&self) -> QueueSummary {
        let now = self.clock.now_ms();
        let st = self.lock();
        let mut lanes: Vec<LaneSummary> = Priority::all()
            .map(|l| LaneSummary {
                lane: l.get(),
                count: 0,
                deferred: 0,
                oldest_age_seconds: None,
                ready: st
                    .sites
                    .values()
                    .map(|s| s.lanes[l.index()].len() as u64)
                    .sum(),
                in_total: st.lane_in[l.index()],
                out_total: st.lane_out[l.index()],
            })
            .collect();
        let mut deferred = 0;
        // deferred work per site, through the routed domain of each timer
        let mut waiting: std::collections::HashMap<&str, u64> = Default::default();
        for e in st.entries.values() {
            for (d, t) in e.tickets() {
                if let (Ticket::Timer(_), Some(site)) = (t, st.domains.get(d).site.as_deref()) {
                    *waiting.entry(site).or_default() += 1;
                }
            }
            let l = &mut lanes[e.lane.index()];
            l.count += 1;
            let age = now.saturating_sub(e.queued_at_ms) as f64 / 1000.0;
            l.oldest_age_seconds = Some(l.oldest_age_seconds.map_or(age, |a: f64| a.max(age)));
            if state_of(e) == "deferred" {
                l.deferred += 1;
                deferred += 1;
            }
        }
        let mut routed: std::collections::HashMap<&str, Vec<String>> = Default::default();
        for d in st.domains.iter() {
            if let Some(site) = &d.site {
                routed.entry(site).or_default().push(d.name.to_string());
            }
        }
        let mut destinations: Vec<DestinationSummary> = st
            .sites
            .values()
            .filter(|s| {
                s.ready() > 0 || s.active() > 0 || s.suspended || waiting.contains_key(&*s.key)
            })
            .map(|s| DestinationSummary {
                site: s.key.to_string(),
                lanes: s
                    .lanes
                    .iter()
                    .enumerate()
                    .filter(|(_, set)| !set.is_empty())
                    .map(|(l, set)| (l.to_string(), set.len() as u64))
                    .collect::<BTreeMap<_, _>>(),
                ready: s.ready() as u64,
                deferred: waiting.get(&*s.key).copied().unwrap_or(0),
                connections: s.active() as u64,
                health: match s.health {
                    Health::Ok => "ok",
                    Health::Throttled => "throttled",
                    Health::Down => "down",
                }
                .to_string(),
                suspended: s.suspended,
                domains: routed
                    .get(&*s.key)
                    .map(|d| {
                        let mut d = d.clone();
                        d.sort();
                        d.truncate(10);
                        d
                    })
                    .unwrap_or_default(),
            })
            .collect();
        destinations.sort_by(|a, b| {
            (b.ready + b.deferred)
                .cmp(&(a.ready + a.deferred))
                .then(a.site.cmp(&b.site))
        });
        destinations.truncate(20);
        let mut suspended_domains: Vec<String> = st.suspended.iter().cloned().collect();
        suspended_domains.sort();
        QueueSummary {
            total: st.entries.len() as u64,
            ready: st.sites.values().map(|s| s.ready() as u64).sum(),
            deferred,
            lanes,
            destinations,
            suspended_domains,
        }
    }

    /// How many sites are ok, throttled and down (for metrics).
    pub fn health_counts(&self) -> [(&'static str, u64); 4] {
        let st = self.lock();
        let mut c = [("ok", 0), ("throttled", 0), ("down", 0), ("held", 0)];
        for s in st.sites.values() {
            let i = match s.health {
                _ if s.suspended => 3,
                Health::Ok => 0,
                Health::Throttled => 1,
                Health::Down => 2,
            };
            c[i].1 += 1;
        }
        c
    }

    /// Messages matching `f` in queue-id order, and the cursor of the next page.
    pub fn list(&self, f: &MessageFilter) -> (Vec<MessageSummary>, Option<MessageId>) {
        let limit = f.limit.unwrap_or(100).clamp(1, 1000);
        let st = self.lock();
        let start = f
            .cursor
            .map(|c| MessageId::from_u64(c.as_u64().saturating_add(1)));
        let range = st.entries.range(start);
        // a domain no queued mail has matches nothing
        let domain = f
            .domain
            .as_ref()
            .map(|d| st.domains.find(&d.to_ascii_lowercase()));
        let mut out = Vec::new();
        let mut next = None;
        for (id, e) in range {
            if f.lane.is_some_and(|l| l != e.lane)
                || f.sender
                    .as_ref()
                    .is_some_and(|s| !s.eq_ignore_ascii_case(&e.sender))
                || domain.is_some_and(|d| {
                    !e.rcpts
                        .iter()
                        .any(|r| !r.status.is_final() && Some(r.domain) == d)
                })
                || f.state.as_ref().is_some_and(|s| s != state_of(e))
            {
                continue;
            }
            if out.len() == limit {
                next = out.last().map(|m: &MessageSummary| m.id);
                break;
            }
            out.push(summary_of(*id, e));
        }
        (out, next)
    }

    /// One message in detail (its envelope is read from the spool).
    pub async fn detail(&self, id: MessageId) -> Result<MessageDetail, AdminError> {
        let (lane, mut detail) = {
            let st = self.lock();
            let e = st.entries.get(&id).ok_or(AdminError::NotFound(id))?;
            let recipients = e
                .rcpts
                .iter()
                .map(|r| RecipientDetail {
                    address: r.address.to_string(),
                    status: match r.status {
                        RcptStatus::Pending => "pending",
                        RcptStatus::Delivered => "delivered",
                        RcptStatus::Failed => "failed",
                    }
                    .to_string(),
                    attempts: r.attempts.into(),
                    last_reply: r.last.as_deref().map(Outcome::to_string),
                    next_attempt: (!r.status.is_final() && r.next_ms > 0)
                        .then(|| rfc3339(r.next_ms)),
                })
                .collect();
            (
                e.lane,
                MessageDetail {
                    id,
                    lane: e.lane.get(),
                    from: e.sender.to_string(),
                    state: state_of(e).to_string(),
                    attempts: e.attempts.into(),
                    next_attempt: next_attempt(e),
                    queued_at: rfc3339(e.queued_at_ms),
                    size: e.size,
                    recipients,
                    last_reply: e
                        .rcpts
                        .iter()
                        .rev()
                        .find_map(|r| r.last.as_deref().map(Outcome::to_string)),
                    envelope: serde_json::Value::Null,
                },
            )
        };
        if let Ok(s) = self.store.fetch(id, lane, false).await {
            detail.envelope = serde_json::to_value(&s.envelope).unwrap_or_default();
        }
        Ok(detail)
    }

    /// Removes a message. With `notifier`, the sender gets a DSN for every
    /// recipient not yet delivered. A message being delivered is removed as
    /// soon as that attempt ends.
    pub async fn delete(
        &self,
        id: MessageId,
        notifier: Option<&dyn Notifier>,
    ) -> Result<(), AdminError> {
        let (lane, pending) = {
            let mut st = self.lock();
            let e = st.entries.get_mut(&id).ok_or(AdminError::NotFound(id))?;
            e.deleted = true;
            e.tickets.clear();
            let pending: Vec<(usize, Outcome)> = e
                .rcpts
                .iter()
                .enumerate()
                .filter(|(_, r)| !r.status.is_final())
                .map(|(i, _)| {
                    (
                        i,
                        Outcome::permanent(
                            Stage::Local,
                            Status::new(5, 0, 0),
                            "Message deleted from the queue by the administrator",
                        ),
                    )
                })
                .collect();
            let lane = e.lane;
            if notifier.is_some() && !pending.is_empty() {
                e.readers += 1;
            }
            for s in st.sites.values_mut() {
                for set in s.lanes.iter_mut() {
                    set.retain(|(m, _)| *m != id);
                }
            }
            for d in st.domains.iter_mut() {
                d.waiting.retain(|m| *m != id);
            }
            (lane, pending)
        };
        if let Some(n) = notifier
            && !pending.is_empty()
        {
            if let Ok(original) = self.store.fetch(id, lane, false).await {
                n.notify(
                    &original,
                    Notice {
                        id,
                        lane,
                        action: DsnAction::Failed,
                        recipients: pending,
                    },
                )
                .await;
            }
            self.done_reading(id);
        }
        tracing::info!(id = %id, lane = %lane, "deleted by the administrator");
        // removed now, or (while being delivered) when that attempt ends;
        // a completion that ended while the DSN was written left it to us
        self.persist(id, &[]).await;
        Ok(())
    }

    fn due_now(&self, st: &mut super::State, id: MessageId) -> bool {
        let Some(e) = st.entries.get_mut(&id) else {
            return false;
        };
        let mut changed = false;
        for r in e
            .rcpts
            .iter_mut()
            .filter(|r| !r.status.is_final() && !r.busy)
        {
            if r.next_ms != 0 {
                r.next_ms = 0;
                changed = true;
            }
        }
        let timers: Vec<DomainId> = e
            .tickets()
            .filter(|(_, t)| matches!(t, Ticket::Timer(_)))
            .map(|(d, _)| d)
            .collect();
        for d in &timers {
            e.set_ticket(*d, None);
        }
        changed || !timers.is_empty()
    }

    /// A queued message's lane, sender and the recipients still pending.
    pub fn pending_of(&self, id: MessageId) -> Option<(Priority, String, Vec<String>)> {
        let st = self.lock();
        let e = st.entries.get(&id)?;
        let pending = e
            .rcpts
            .iter()
            .filter(|r| !r.status.is_final())
            .map(|r| r.address.to_string())
            .collect();
        Some((e.lane, e.sender.to_string(), pending))
    }

    /// Makes a deferred message due now.
    pub fn retry_now(&self, id: MessageId) -> Result<(), AdminError> {
        let now = self.clock.now_ms();
        let mut st = self.lock();
        if !st.entries.contains_key(&id) {
            return Err(AdminError::NotFound(id));
        }
        self.due_now(&mut st, id);
        schedule_domains(&mut st, id, now, &self.work);
        drop(st);
        self.changed.notify_one();
        Ok(())
    }

    /// Makes every deferred message due now; returns how many.
    pub fn flush(&self) -> usize {
        let now = self.clock.now_ms();
        let mut st = self.lock();
        let ids: Vec<MessageId> = st
            .entries
            .iter()
            .filter(|(_, e)| e.tickets().any(|(_, t)| matches!(t, Ticket::Timer(_))))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.due_now(&mut st, *id);
            schedule_domains(&mut st, *id, now, &self.work);
        }
        drop(st);
        self.changed.notify_one();
        ids.len()
    }

    /// Moves a message to another lane: its files on disk (in order with
    /// the journal's records) and its place in the scheduler. Refused
    /// while the message is being delivered or moved.
    pub async fn set_lane(&self, id: MessageId, lane: Priority) -> Result<(), AdminError> {
        let (old, ready, moved) = {
            let mut st = self.lock();
            let e = st.entries.get_mut(&id).ok_or(AdminError::NotFound(id))?;
            if e.rcpts.iter().any(|r| r.busy) || e.moving {
                return Err(AdminError::Busy(id));
            }
            let old = e.lane;
            if old == lane {
                return Ok(());
            }
            e.moving = true;
            let ready: Vec<DomainId> = e
                .tickets()
                .filter(|(_, t)| *t == Ticket::Ready)
                .map(|(d, _)| d)
                .collect();
            for &d in &ready {
                let site = st.domains.get(d).site.clone();
                if let Some(s) = site.and_then(|k| st.sites.get_mut(&k)) {
                    s.lanes[old.index()].remove(&(id, d));
                }
            }
            (old, ready, self.store.relane(id, old, lane))
        };
        let moved = moved.await.map_err(|e| AdminError::Io(e.to_string()));
        let now_lane = if moved.is_ok() { lane } else { old };
        let deleted = {
            let mut st = self.lock();
            let mut deleted = false;
            if let Some(e) = st.entries.get_mut(&id) {
                e.lane = now_lane;
                e.moving = false;
                // a delete that came in meanwhile waited for us
                deleted = e.deleted;
                if now_lane != old {
                    // a move leaves one lane and enters the other
                    st.lane_out[old.index()] += 1;
                    st.lane_in[now_lane.index()] += 1;
                }
            }
            for &d in &ready {
                let site = st.domains.get(d).site.clone();
                if let Some(s) = site.and_then(|k| st.sites.get_mut(&k)) {
                    s.lanes[now_lane.index()].insert((id, d));
                }
            }
            deleted
        };
        if deleted {
            self.persist(id, &[]).await;
        }
        self.changed.notify_one();
        if moved.is_ok() {
            tracing::info!(id = %id, from = %old, to = %lane, "lane changed by the administrator");
        }
        moved
    }

    /// Stops deliveries to the sites of the domains `pattern` matches (a
    /// domain, `.example.com` or `*`; see [`DomainPattern`]), including
    /// domains that resolve later.
    pub fn suspend(&self, pattern: &str) {
        self.set_suspended(pattern, true);
    }

    /// Takes back a [`Queue::suspend`] of the same pattern.
    pub fn resume(&self, pattern: &str) {
        self.set_suspended(pattern, false);
    }

    /// Makes exactly `patterns` the held destinations (the cluster's holds,
    /// replacing whatever was held before); `true` if that changed them.
    pub fn set_holds(&self, patterns: &[String]) -> bool {
        let wanted: std::collections::BTreeSet<String> =
            patterns.iter().map(|p| pattern_key(p)).collect();
        let mut st = self.lock();
        let now: std::collections::BTreeSet<String> = st.suspended.iter().cloned().collect();
        if now == wanted {
            return false;
        }
        st.suspended = wanted.iter().cloned().collect();
        self.apply_holds(st);
        tracing::info!(held = ?wanted, "held destinations now");
        true
    }

    fn set_suspended(&self, pattern: &str, on: bool) {
        let key = pattern_key(pattern);
        let mut st = self.lock();
        if on {
            st.suspended.insert(key.clone());
        } else {
            st.suspended.remove(&key);
        }
        self.apply_holds(st);
        tracing::info!(destination = %key, suspended = on, "destination {}", if on { "suspended" } else { "resumed" });
    }

    /// Marks each site held while any of its domains is matched by a held
    /// pattern, and wakes the scheduler.
    fn apply_holds(&self, mut st: std::sync::MutexGuard<'_, super::State>) {
        let held: Vec<DomainPattern> = st
            .suspended
            .iter()
            .filter_map(|s| DomainPattern::parse(s).ok())
            .collect();
        let mut sites: std::collections::HashMap<Arc<str>, bool> = std::collections::HashMap::new();
        for d in st.domains.iter() {
            if let Some(site) = &d.site {
                let hit = held.iter().any(|p| p.matches(&d.name));
                *sites.entry(site.clone()).or_default() |= hit;
            }
        }
        for (site, hit) in sites {
            if let Some(s) = st.sites.get_mut(&site) {
                s.suspended = hit;
            }
        }
        drop(st);
        self.changed.notify_one();
        self.work.notify_waiters();
    }
}

/// The canonical form of a hold pattern (see [`DomainPattern`]).
pub fn pattern_key(pattern: &str) -> String {
    DomainPattern::parse(pattern)
        .unwrap_or_else(|_| {
            DomainPattern::Exact(pattern.trim_end_matches('.').to_ascii_lowercase())
        })
        .to_string()
}
