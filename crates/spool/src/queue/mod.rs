//! The lane scheduler (DESIGN §2, §4): the in-memory index of the spool and
//! the order in which its work goes out.
//!
//! Work is kept per *site* (a next hop several recipient domains may share)
//! in ten lanes; a connection to a site always takes the highest-lane ready
//! item it may carry, FIFO by acceptance inside a lane (queue ids sort by
//! acceptance time), and sites with ready work share the global connection
//! limit round robin, highest lane first. Deferred work waits on a timer,
//! not in the lanes. Only metadata lives here; message bodies stay on disk.
//!
//! The dispatcher (crates/outbound) drives it: [`Queue::poll`] hands out
//! domains to resolve and connection grants, [`Queue::take`] gives a
//! connection its next item, [`Queue::complete`] records per-recipient
//! outcomes (writing the state file, removing finished messages and asking
//! the [`Notifier`] for DSNs), [`Queue::release`] closes a connection.

mod admin;
mod retry;
mod site;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use laneway_common::config::Queue as QueueConfig;
use laneway_common::ingest::BoxFuture;
use laneway_common::{Disposition, Envelope, LaneSet, MessageId, Priority};
use smallvec::SmallVec;
use tokio::sync::Notify;

pub use retry::{expiry_ms, next_attempt_ms};
pub use site::{ConnGrant, ConnReport, Health, SiteLimits};
use site::{GrantState, Site};

pub use laneway_common::delivery::Outcome;

use crate::journal::{Delta, Record};
use crate::state::{MessageState, RcptState, RcptStatus};
use crate::store::{DiskStore, Spooled};

/// Consecutive failed connections after which a site's ready work is
/// deferred instead of waiting for it to come back.
const DEAD_AFTER: u32 = 3;

/// Time and randomness, injectable for tests.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// A number in [0, 1) for retry jitter.
    fn jitter(&self) -> f64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        laneway_common::envelope::now_ms()
    }
    fn jitter(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// What [`Queue::complete`] recorded for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Index of the recipient in the envelope.
    pub index: usize,
    /// The outcome as recorded (a deferral past `max_age` becomes a failure).
    pub outcome: Outcome,
    /// For a deferral, when the next attempt is due (ms since the epoch).
    pub next_attempt_ms: Option<u64>,
    /// The failure is an expiry.
    pub expired: bool,
}

impl Applied {
    fn new(index: usize, outcome: Outcome) -> Applied {
        Applied {
            index,
            outcome,
            next_attempt_ms: None,
            expired: false,
        }
    }
}

/// What a DSN reports (RFC 3464 `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    /// Permanent failure (or expiry).
    Failed,
    /// Still trying after `delay_warning`.
    Delayed,
    /// Delivered to a next hop that took the DSN request … not needed.
    Delivered,
    /// Relayed to a next hop that could not take the DSN request.
    Relayed,
}

/// A request for a delivery status notification.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The original message's id.
    pub id: MessageId,
    /// Its lane (the DSN goes out in the same lane).
    pub lane: Priority,
    /// What happened.
    pub action: DsnAction,
    /// The recipients concerned (index into the envelope) with the result
    /// that is reported for each.
    pub recipients: Vec<(usize, Outcome)>,
}

/// Generates DSNs (implemented by crates/outbound, which submits them back
/// through ingest). It decides per recipient whether one is wanted
/// (NOTIFY, null sender).
pub trait Notifier: Send + Sync {
    /// Sends a notice about `original`; resolves once it is durable.
    fn notify<'a>(&'a self, original: &'a Spooled, notice: Notice) -> BoxFuture<'a, ()>;
}

/// Settings of the scheduler.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Retry, expiry and delay-warning policy.
    pub policy: QueueConfig,
    /// Egress pools: the lanes each carries. Lanes in no pool use the last.
    pub pools: Vec<LaneSet>,
    /// Outbound connections in all.
    pub max_connections: usize,
    /// Most recipients per transaction.
    pub max_recipients: usize,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            policy: QueueConfig::default(),
            pools: vec![LaneSet::ALL],
            max_connections: 500,
            max_recipients: 100,
        }
    }
}

/// A unit of delivery: some recipients of one message at one domain.
#[derive(Debug, Clone)]
pub struct WorkItem {
    /// The message.
    pub id: MessageId,
    /// Its lane.
    pub lane: Priority,
    /// The recipient domain.
    pub domain: Arc<str>,
    /// The recipients: index into the envelope and address.
    pub recipients: Vec<(usize, String)>,
    /// The envelope sender.
    pub sender: String,
    /// Delivery attempts made so far for the message.
    pub attempts: u32,
    /// Acceptance time, ms since the Unix epoch.
    pub queued_at_ms: u64,
    /// Message size in bytes.
    pub size: u64,
}

/// What the dispatcher should do next.
#[derive(Debug, Default)]
pub struct Poll {
    /// Domains to resolve to a site (then call [`Queue::resolved`]).
    pub resolve: Vec<Arc<str>>,
    /// Connections to open now (already counted against the limits).
    pub grants: Vec<ConnGrant>,
    /// When to poll again at the latest, ms since the epoch.
    pub wake_at_ms: Option<u64>,
}

/// A connection's next step.
#[derive(Debug)]
pub enum Take {
    /// Deliver this.
    Item(WorkItem),
    /// The site's message rate is used up: ask again after this many ms.
    Wait(u64),
    /// Nothing to do: wait for work (or close after the idle timeout).
    Empty,
    /// The connection has carried `messages_per_connection` messages (or
    /// its site is suspended): close it; a fresh one will be granted.
    Close,
}

/// Where a resolved domain's mail goes.
#[derive(Debug, Clone)]
pub struct SiteInfo {
    /// The site key (shared by every domain with the same next hop).
    pub key: Arc<str>,
    /// Its limits.
    pub limits: SiteLimits,
    /// How long the resolution holds, ms.
    pub ttl_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ticket {
    Timer(u64),
    Waiting,
    Ready,
}

#[derive(Debug)]
struct RcptMem {
    address: Box<str>,
    domain: Arc<str>,
    status: RcptStatus,
    attempts: u32,
    last: Option<Box<Outcome>>,
    next_ms: u64,
    busy: bool,
}

#[derive(Debug)]
struct Entry {
    lane: Priority,
    queued_at_ms: u64,
    sender: Box<str>,
    rcpts: SmallVec<[RcptMem; 1]>,
    attempts: u32,
    size: u64,
    delay_warned: bool,
    tickets: SmallVec<[(Arc<str>, Ticket); 1]>,
    /// Being moved to another lane by an operator.
    moving: bool,
    /// Deleted by an operator while being delivered: drop it when done.
    deleted: bool,
}

impl Entry {
    fn ticket(&self, domain: &str) -> Option<Ticket> {
        self.tickets
            .iter()
            .find(|(d, _)| &**d == domain)
            .map(|(_, t)| *t)
    }

    fn set_ticket(&mut self, domain: &Arc<str>, t: Option<Ticket>) {
        self.tickets.retain(|(d, _)| d != domain);
        if let Some(t) = t {
            self.tickets.push((domain.clone(), t));
        }
    }

    fn is_done(&self) -> bool {
        self.rcpts.iter().all(|r| r.status.is_final())
    }

    /// What changed for the recipients `changed`, as a journal record.
    fn delta(&self, changed: &[usize]) -> Delta {
        Delta {
            n: self.rcpts.len() as u32,
            attempts: self.attempts,
            delay_warned: self.delay_warned,
            rcpts: changed
                .iter()
                .filter_map(|&i| {
                    let r = self.rcpts.get(i)?;
                    Some((
                        i as u32,
                        RcptState {
                            status: r.status,
                            attempts: r.attempts,
                            last: r.last.as_deref().cloned(),
                            next_attempt_ms: r.next_ms,
                        },
                    ))
                })
                .collect(),
        }
    }
}

#[derive(Debug, Default)]
struct Domain {
    site: Option<Arc<str>>,
    expires_ms: u64,
    waiting: Vec<MessageId>,
    resolving: bool,
    /// The answer expired while mail still used it: resolve again.
    stale: bool,
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<MessageId, Box<Entry>>,
    domains: HashMap<Arc<str>, Domain>,
    sites: HashMap<Arc<str>, Site>,
    timer: BinaryHeap<Reverse<(u64, MessageId, Arc<str>)>>,
    active: usize,
    grant_seq: u64,
    suspended: HashSet<String>,
}

/// The scheduler. Cheap to share (`Arc<Queue>`).
pub struct Queue {
    state: Mutex<State>,
    store: Arc<DiskStore>,
    settings: Mutex<QueueSettings>,
    clock: Arc<dyn Clock>,
    changed: Notify,
    work: Notify,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    /// A scheduler over `store`.
    pub fn new(store: Arc<DiskStore>, settings: QueueSettings, clock: Arc<dyn Clock>) -> Queue {
        Queue {
            state: Mutex::new(State::default()),
            store,
            settings: Mutex::new(settings),
            clock,
            changed: Notify::new(),
            work: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn settings(&self) -> QueueSettings {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the settings (on reload).
    pub fn set_settings(&self, s: QueueSettings) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = s;
        self.changed.notify_one();
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<DiskStore> {
        &self.store
    }

    /// The clock in use.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Resolves when something changed that the dispatcher should look at.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// A future that resolves when new work may be ready for idle
    /// connections. Create (and enable) it before calling [`Queue::take`].
    pub fn work(&self) -> tokio::sync::futures::Notified<'_> {
        self.work.notified()
    }

    /// Number of messages in the queue.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a message (newly accepted, or found at start-up).
    pub fn insert(
        &self,
        id: MessageId,
        lane: Priority,
        env: &Envelope,
        state: &MessageState,
        size: u64,
    ) {
        let now = self.clock.now_ms();
        let mut st = self.lock();
        let mut rcpts = SmallVec::with_capacity(env.recipients.len());
        for (i, r) in env.recipients.iter().enumerate() {
            let rs = state.recipients.get(i).cloned().unwrap_or_default();
            let domain = intern(&mut st.domains, &r.domain());
            rcpts.push(RcptMem {
                address: r.address.clone().into_boxed_str(),
                domain,
                status: rs.status,
                attempts: rs.attempts,
                last: rs.last.map(Box::new),
                next_ms: rs.next_attempt_ms,
                busy: false,
            });
        }
        let entry = Entry {
            lane,
            queued_at_ms: env.queued_at_ms,
            sender: env.sender.clone().into_boxed_str(),
            rcpts,
            attempts: state.attempts,
            size,
            delay_warned: state.delay_warned,
            tickets: SmallVec::new(),
            moving: false,
            deleted: false,
        };
        st.entries.insert(id, Box::new(entry));
        schedule_domains(&mut st, id, now, &self.work);
        drop(st);
        self.changed.notify_one();
    }

    /// Moves due deferred work to the ready lanes and tells the dispatcher
    /// what to resolve and which connections to open.
    pub fn poll(&self) -> Poll {
        let now = self.clock.now_ms();
        let settings = self.settings();
        let mut st = self.lock();
        let mut poll = Poll::default();
        while let Some(Reverse((due, _, _))) = st.timer.peek() {
            if *due > now {
                break;
            }
            let Some(Reverse((due, id, domain))) = st.timer.pop() else {
                break;
            };
            let valid = st
                .entries
                .get(&id)
                .is_some_and(|e| e.ticket(&domain) == Some(Ticket::Timer(due)));
            if valid {
                make_ready(&mut st, id, &domain, now, &self.work);
            }
        }
        let st = &mut *st;
        for (name, d) in st.domains.iter_mut() {
            if (!d.waiting.is_empty() || d.stale) && !d.resolving {
                d.resolving = true;
                d.stale = false;
                poll.resolve.push(name.clone());
            }
        }
        // Sites with ready work, highest lane first, then least recently served.
        let mut candidates: Vec<(Priority, u64, Arc<str>)> = st
            .sites
            .values()
            .filter(|s| !s.suspended && s.ready() > 0)
            .filter_map(|s| {
                s.highest_ready(LaneSet::ALL)
                    .map(|l| (l, s.last_grant, s.key.clone()))
            })
            .collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, _, key) in candidates {
            let site = st.sites.get_mut(&key).expect("candidate site exists");
            if site.paused_until_ms > now {
                poll.wake_at_ms = min_opt(poll.wake_at_ms, site.paused_until_ms);
                continue;
            }
            for (pool, lanes) in settings.pools.iter().enumerate() {
                loop {
                    if st.active >= settings.max_connections {
                        break;
                    }
                    let ready = site.ready_in(*lanes);
                    let waiting_conns = site.idle[pool] + site.starting[pool];
                    if ready <= waiting_conns {
                        break;
                    }
                    let high = site.highest_ready(*lanes).expect("ready > 0");
                    let reserved = if site.regular < site.regular_slots() {
                        false
                    } else if high >= site.limits.reserved_min_lane
                        && site.reserved < site.limits.reserved
                        && site.active() < site.window()
                    {
                        true
                    } else {
                        break;
                    };
                    if reserved {
                        site.reserved += 1;
                    } else {
                        site.regular += 1;
                    }
                    site.starting[pool] += 1;
                    st.active += 1;
                    st.grant_seq += 1;
                    site.last_grant = st.grant_seq;
                    poll.grants.push(ConnGrant {
                        site: key.clone(),
                        pool,
                        lanes: *lanes,
                        reserved,
                        carried: 0,
                        state: GrantState::Starting,
                    });
                }
            }
        }
        if let Some(Reverse((due, _, _))) = st.timer.peek() {
            poll.wake_at_ms = min_opt(poll.wake_at_ms, *due);
        }
        poll
    }

    /// Records where a domain's mail goes; its waiting work becomes ready.
    pub fn resolved(&self, domain: &str, info: SiteInfo) {
        let now = self.clock.now_ms();
        let pools = self.settings().pools.len();
        let mut st = self.lock();
        let Some(d) = st.domains.get_mut(domain) else {
            return;
        };
        d.resolving = false;
        d.site = Some(info.key.clone());
        d.expires_ms = now.saturating_add(info.ttl_ms);
        let waiting = std::mem::take(&mut d.waiting);
        let key: Arc<str> = st
            .domains
            .get_key_value(domain)
            .map(|(k, _)| k.clone())
            .expect("domain");
        let suspended = st.suspended.iter().any(|p| {
            laneway_common::domain::DomainPattern::parse(p).is_ok_and(|p| p.matches(domain))
        });
        let site = st
            .sites
            .entry(info.key.clone())
            .or_insert_with(|| Site::new(info.key.clone(), info.limits.clone(), pools));
        site.set_limits(info.limits);
        if suspended {
            site.suspended = true;
        }
        for id in waiting {
            if st.entries.get(&id).and_then(|e| e.ticket(domain)) == Some(Ticket::Waiting) {
                make_ready(&mut st, id, &key, now, &self.work);
            }
        }
        drop(st);
        self.changed.notify_one();
    }

    /// A domain could not be resolved: returns its waiting work, to be
    /// completed by the caller with the failure as outcome. After a
    /// transient failure an earlier answer keeps being used for a minute;
    /// after a permanent one it is dropped.
    pub fn resolve_failed(&self, domain: &str, permanent: bool) -> Vec<WorkItem> {
        let now = self.clock.now_ms();
        let max = self.settings().max_recipients;
        let mut st = self.lock();
        let Some(d) = st.domains.get_mut(domain) else {
            return Vec::new();
        };
        d.resolving = false;
        if permanent {
            d.site = None;
        } else {
            d.expires_ms = now + 60_000;
        }
        let waiting = std::mem::take(&mut d.waiting);
        let key: Arc<str> = st
            .domains
            .get_key_value(domain)
            .map(|(k, _)| k.clone())
            .expect("domain");
        let mut out = Vec::new();
        for id in waiting {
            if let Some((item, _)) = build_item(&mut st.entries, id, &key, now, max) {
                out.push(item);
            }
        }
        out
    }

    /// Gives a connection its next item: the highest-lane ready item it may carry.
    pub fn take(&self, grant: &mut ConnGrant) -> Take {
        let now = self.clock.now_ms();
        let max = self.settings().max_recipients;
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(site) = st.sites.get_mut(&grant.site) else {
            return Take::Empty;
        };
        match grant.state {
            GrantState::Starting => site.starting[grant.pool] -= 1,
            GrantState::Idle => site.idle[grant.pool] -= 1,
            GrantState::Busy => {}
        }
        grant.state = GrantState::Busy;
        let min_lane = if grant.reserved {
            site.limits.reserved_min_lane
        } else {
            Priority::MIN
        };
        if site.suspended || grant.carried >= site.limits.messages_per_connection {
            return Take::Close;
        }
        {
            for lane in grant.lanes.iter_desc().filter(|l| *l >= min_lane) {
                loop {
                    let site = st.sites.get_mut(&grant.site).expect("site");
                    let Some((id, domain)) = site.lanes[lane.index()].first().cloned() else {
                        break;
                    };
                    if let Some(wait) = site.token_wait(now) {
                        return Take::Wait(wait);
                    }
                    site.lanes[lane.index()].remove(&(id, domain.clone()));
                    let Some((item, more)) = build_item(&mut st.entries, id, &domain, now, max)
                    else {
                        continue; // stale: the message went away or has nothing due
                    };
                    let site = st.sites.get_mut(&grant.site).expect("site");
                    site.consume_token(now);
                    if more {
                        site.lanes[lane.index()].insert((id, domain.clone()));
                        if let Some(e) = st.entries.get_mut(&id) {
                            e.set_ticket(&domain, Some(Ticket::Ready));
                        }
                    }
                    grant.carried += 1;
                    return Take::Item(item);
                }
            }
        }
        let site = st.sites.get_mut(&grant.site).expect("site");
        site.idle[grant.pool] += 1;
        grant.state = GrantState::Idle;
        Take::Empty
    }

    /// A connection closed.
    pub fn release(&self, grant: ConnGrant, report: ConnReport) -> Vec<WorkItem> {
        let now = self.clock.now_ms();
        let max = self.settings().max_recipients;
        let mut st = self.lock();
        st.active -= 1;
        let mut deferred = Vec::new();
        let Some(site) = st.sites.get_mut(&grant.site) else {
            return deferred;
        };
        match grant.state {
            GrantState::Starting => site.starting[grant.pool] -= 1,
            GrantState::Idle => site.idle[grant.pool] -= 1,
            GrantState::Busy => {}
        }
        if grant.reserved {
            site.reserved -= 1;
        } else {
            site.regular -= 1;
        }
        if let Some(h) = site.report(&report, now) {
            match h {
                Health::Down => {
                    tracing::warn!(destination = %site.key, failures = site.failures, paused_ms = site.paused_until_ms.saturating_sub(now), "destination unreachable; paused")
                }
                Health::Throttled => {
                    tracing::warn!(destination = %site.key, window = site.window(), "destination pushing back; concurrency lowered")
                }
                Health::Ok => {
                    tracing::info!(destination = %site.key, window = site.window(), "destination recovered")
                }
            }
        }
        if report.connect_failed && site.failures >= DEAD_AFTER && site.active() == 0 {
            let drained: Vec<(Priority, MessageId, Arc<str>)> = site
                .lanes
                .iter_mut()
                .enumerate()
                .flat_map(|(l, set)| {
                    let lane = Priority::new(l as i64).expect("lane");
                    std::mem::take(set)
                        .into_iter()
                        .map(move |(id, d)| (lane, id, d))
                })
                .collect();
            for (_, id, domain) in drained {
                if let Some((item, _)) = build_item(&mut st.entries, id, &domain, now, max) {
                    deferred.push(item);
                }
            }
        }
        drop(st);
        self.changed.notify_one();
        deferred
    }

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
        let now = self.clock.now_ms();
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
            e.attempts = e.attempts.max(item.attempts + 1);
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
                r.attempts += 1;
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
                        r.next_ms =
                            next_attempt_ms(&policy, r.attempts, e.queued_at_ms, now, jitter);
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
        }
        let needs_original = !failed.is_empty() || !relayed.is_empty() || !delayed.is_empty();
        if needs_original {
            let store = self.store.clone();
            let id = item.id;
            let original = tokio::task::spawn_blocking(move || store.get(id, lane)).await;
            match original {
                Ok(Ok(original)) => {
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
                Ok(Err(e)) => {
                    tracing::error!(id = %id, error = %e, "cannot read the message to write its DSN")
                }
                Err(e) => tracing::error!(id = %id, error = %e, "DSN task failed"),
            }
        }
        if !changed.is_empty() {
            self.persist(item.id, &changed).await;
        }
        applied
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
    async fn persist(&self, id: MessageId, changed: &[usize]) {
        let now = self.clock.now_ms();
        let (commit, done) = {
            let mut st = self.lock();
            let Some(e) = st.entries.get_mut(&id) else {
                return;
            };
            let lane = e.lane;
            let done = e.is_done() || (e.deleted && !e.rcpts.iter().any(|r| r.busy));
            let record = if done {
                Record::Remove(id, lane)
            } else {
                Record::Rcpts(id, lane, e.delta(changed))
            };
            let commit = self.store.record(vec![record]);
            if done {
                st.entries.remove(&id);
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

fn min_opt(a: Option<u64>, b: u64) -> Option<u64> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn intern(domains: &mut HashMap<Arc<str>, Domain>, d: &str) -> Arc<str> {
    if let Some((k, _)) = domains.get_key_value(d) {
        return k.clone();
    }
    let k: Arc<str> = Arc::from(d);
    domains.insert(k.clone(), Domain::default());
    k
}

/// Gives every domain of `id` with pending, idle recipients and no ticket
/// a ticket: on the timer if not yet due, else ready (or waiting for
/// resolution).
fn schedule_domains(st: &mut State, id: MessageId, now: u64, work: &Notify) {
    let Some(e) = st.entries.get(&id) else { return };
    let mut due: Vec<(Arc<str>, u64)> = Vec::new();
    for r in e.rcpts.iter().filter(|r| !r.status.is_final() && !r.busy) {
        if e.ticket(&r.domain).is_some() {
            continue;
        }
        match due.iter_mut().find(|(d, _)| *d == r.domain) {
            Some((_, t)) => *t = (*t).min(r.next_ms),
            None => due.push((r.domain.clone(), r.next_ms)),
        }
    }
    for (domain, at) in due {
        if at > now {
            if let Some(e) = st.entries.get_mut(&id) {
                e.set_ticket(&domain, Some(Ticket::Timer(at)));
            }
            st.timer.push(Reverse((at, id, domain)));
        } else {
            make_ready(st, id, &domain, now, work);
        }
    }
}

/// Puts `(id, domain)` in its site's lane, or in the domain's waiting list
/// when the domain was never resolved. A domain whose answer has expired
/// keeps using it while it is being resolved again (marked `stale`), so new
/// urgent mail never waits for DNS behind mail that is already queued.
fn make_ready(st: &mut State, id: MessageId, domain: &Arc<str>, now: u64, work: &Notify) {
    let Some(lane) = st.entries.get(&id).map(|e| e.lane) else {
        return;
    };
    let d = st.domains.entry(domain.clone()).or_default();
    if d.expires_ms <= now {
        d.stale = true;
    }
    let site = d.site.clone().filter(|k| st.sites.contains_key(k));
    let ticket = match site {
        Some(k) => {
            let s = st.sites.get_mut(&k).expect("site");
            s.lanes[lane.index()].insert((id, domain.clone()));
            if s.idle.iter().any(|&n| n > 0) {
                work.notify_waiters();
            }
            Ticket::Ready
        }
        None => {
            d.waiting.push(id);
            Ticket::Waiting
        }
    };
    if let Some(e) = st.entries.get_mut(&id) {
        e.set_ticket(domain, Some(ticket));
    }
}

/// Takes up to `max` due, idle, pending recipients of `id` at `domain`;
/// consumes the ticket. Returns the item and whether eligible recipients
/// remain (the caller re-queues the ticket then).
fn build_item(
    entries: &mut BTreeMap<MessageId, Box<Entry>>,
    id: MessageId,
    domain: &Arc<str>,
    now: u64,
    max: usize,
) -> Option<(WorkItem, bool)> {
    let e = entries.get_mut(&id)?;
    e.set_ticket(domain, None);
    let mut rcpts = Vec::new();
    let mut more = false;
    for (i, r) in e.rcpts.iter_mut().enumerate() {
        if r.status.is_final() || r.busy || r.domain != *domain || r.next_ms > now {
            continue;
        }
        if rcpts.len() >= max {
            more = true;
            break;
        }
        r.busy = true;
        rcpts.push((i, r.address.to_string()));
    }
    if rcpts.is_empty() {
        return None;
    }
    Some((
        WorkItem {
            id,
            lane: e.lane,
            domain: domain.clone(),
            recipients: rcpts,
            sender: e.sender.to_string(),
            attempts: e.attempts,
            queued_at_ms: e.queued_at_ms,
            size: e.size,
        },
        more,
    ))
}

#[cfg(test)]
mod tests;
