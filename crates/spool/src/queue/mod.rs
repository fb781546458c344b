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
mod compact;
mod complete;
mod export;
mod grants;
pub mod limits;
mod restrict;
mod retry;
mod site;
mod types;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use laneway_common::events::{Event, EventSink, EventType};
use laneway_common::{Envelope, MessageId, Priority};
use smallvec::SmallVec;
use tokio::sync::Notify;

pub use admin::pattern_key;
use compact::{Addr, DomainId, Domains, Entries, Ticket, TicketSlot};
pub use export::Exported;
pub use limits::{Lease, SharedLimits, Slot};
pub use restrict::{Phase, RestrictMode, Restriction};
pub use retry::{expiry_ms, next_attempt_ms};
use site::Site;
pub use site::{ConnGrant, ConnReport, Health, PoolLimit, SiteLimits};

pub use laneway_common::delivery::Outcome;

use crate::journal::Delta;
use crate::state::{MessageState, RcptState, RcptStatus};
use crate::store::DiskStore;

/// Consecutive failed connections after which a site's ready work is
/// deferred instead of waiting for it to come back.
const DEAD_AFTER: u32 = 3;

pub use types::{
    Applied, AttemptVia, Clock, DsnAction, Notice, Notifier, Poll, QueueSettings, SiteInfo,
    SystemClock, Take, WorkItem,
};

#[derive(Debug)]
struct RcptMem {
    address: Addr,
    domain: DomainId,
    status: RcptStatus,
    /// u16 (saturating), as the message's: see the size test.
    attempts: u16,
    last: Option<Box<Outcome>>,
    next_ms: u64,
    busy: bool,
}

#[derive(Debug)]
struct Entry {
    lane: Priority,
    queued_at_ms: u64,
    /// Shared with the other queued messages of the same sender (see
    /// [`Senders`]). Not an `Arc<String>` (8 bytes here, not 16): a sender
    /// of its own (VERP) would then take two allocations, not one.
    sender: Arc<str>,
    rcpts: SmallVec<[RcptMem; 1]>,
    /// u16 (saturating), not u32: it keeps an entry within 128 bytes (see the size test).
    attempts: u16,
    size: u64,
    delay_warned: bool,
    tickets: SmallVec<[TicketSlot; 1]>,
    /// Being moved to another lane by an operator.
    moving: bool,
    /// Deleted by an operator while being delivered: drop it when done.
    deleted: bool,
    /// Completions reading the message for a DSN right now: its files stay
    /// until the last one is done.
    readers: u8,
    /// What only its events need (absent for most messages).
    extra: Option<Box<Extra>>,
}

/// Envelope facts carried into a message's events.
#[derive(Debug, Default)]
struct Extra {
    metadata: std::collections::BTreeMap<String, String>,
    envid: Option<String>,
    orcpt: Vec<Option<String>>,
}

impl Entry {
    /// An event about recipient `idx` of this message.
    fn event(&self, kind: EventType, id: MessageId, idx: usize) -> Event {
        let rcpt = self.rcpts.get(idx).map(|r| &*r.address).unwrap_or("");
        let mut e = Event::new(kind, id, self.lane.get(), &*self.sender, rcpt);
        if let Some(x) = &self.extra {
            e.metadata = x.metadata.clone();
            e.envid = x.envid.clone();
            e.orcpt = x.orcpt.get(idx).cloned().flatten();
        }
        e
    }
}

impl Entry {
    fn ticket(&self, domain: DomainId) -> Option<Ticket> {
        self.tickets
            .iter()
            .find(|s| s.domain == domain)
            .map(TicketSlot::ticket)
    }

    fn set_ticket(&mut self, domain: DomainId, t: Option<Ticket>) {
        self.tickets.retain(|s| s.domain != domain);
        if let Some(t) = t {
            self.tickets.push(TicketSlot::new(domain, t));
        }
    }

    /// Its tickets, by domain.
    fn tickets(&self) -> impl Iterator<Item = (DomainId, Ticket)> + '_ {
        self.tickets.iter().map(|s| (s.domain, s.ticket()))
    }

    fn is_done(&self) -> bool {
        self.rcpts.iter().all(|r| r.status.is_final())
    }

    /// What changed for the recipients `changed`, as a journal record.
    fn delta(&self, changed: &[usize]) -> Delta {
        Delta {
            n: self.rcpts.len() as u32,
            attempts: self.attempts.into(),
            delay_warned: self.delay_warned,
            rcpts: changed
                .iter()
                .filter_map(|&i| {
                    let r = self.rcpts.get(i)?;
                    Some((
                        i as u32,
                        RcptState {
                            status: r.status,
                            attempts: r.attempts.into(),
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
    name: Arc<str>,
    site: Option<Arc<str>>,
    expires_ms: u64,
    waiting: Vec<MessageId>,
    resolving: bool,
    /// The answer expired while mail still used it: resolve again.
    stale: bool,
}

#[derive(Debug, Default)]
struct State {
    entries: Entries,
    domains: Domains,
    sites: HashMap<Arc<str>, Site>,
    timer: BinaryHeap<Reverse<(u64, MessageId, DomainId)>>,
    active: usize,
    grant_seq: u64,
    suspended: HashSet<String>,
    /// Active shaping rules' restrictions, by shaping name.
    restrictions: HashMap<Arc<str>, restrict::Held>,
    /// Messages that entered and left each lane since start-up.
    lane_in: [u64; 10],
    lane_out: [u64; 10],
    senders: Senders,
}

/// The last few envelope senders, so that the messages of one campaign
/// (which arrive together, from one sender) share one copy of it: an
/// allocation of 48 bytes or more less per queued message, which costs
/// about 190 in all (see the spool crate's `queue_memory` example). A small
/// fixed set, not an interner: it never needs sweeping.
#[derive(Debug, Default)]
struct Senders {
    recent: [Option<Arc<str>>; 8],
    next: usize,
}

impl Senders {
    fn get(&mut self, sender: &str) -> Arc<str> {
        if let Some(s) = self.recent.iter().flatten().find(|s| ***s == *sender) {
            return s.clone();
        }
        let s: Arc<str> = Arc::from(sender);
        self.recent[self.next] = Some(s.clone());
        self.next = (self.next + 1) % self.recent.len();
        s
    }
}

/// The scheduler. Cheap to share (`Arc<Queue>`).
pub struct Queue {
    state: Mutex<State>,
    store: Arc<DiskStore>,
    settings: Mutex<QueueSettings>,
    clock: Arc<dyn Clock>,
    changed: Notify,
    work: Notify,
    events: std::sync::OnceLock<Arc<dyn EventSink>>,
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
            events: std::sync::OnceLock::new(),
        }
    }

    /// Where the events of delivery attempts go (written into the journal
    /// with the outcomes they report). Without one, none are made.
    pub fn set_events(&self, sink: Arc<dyn EventSink>) {
        let _ = self.events.set(sink);
    }

    /// The event sink, if any.
    pub fn events(&self) -> Option<&Arc<dyn EventSink>> {
        self.events.get()
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

    /// Every resolved domain is resolved again at the next poll, its
    /// current site used meanwhile (on reload: changed limits, shaping and
    /// TLS settings apply now, not when the DNS answer expires).
    pub fn refresh_sites(&self) {
        let mut st = self.lock();
        for d in st.domains.iter_mut().filter(|d| d.site.is_some()) {
            d.expires_ms = 0;
            d.stale = true;
        }
        drop(st);
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
            let domain = st.domains.intern(&r.domain());
            rcpts.push(RcptMem {
                address: Addr::new(&r.address),
                domain,
                status: rs.status,
                attempts: u16::try_from(rs.attempts).unwrap_or(u16::MAX),
                last: rs.last.map(Box::new),
                next_ms: rs.next_attempt_ms,
                busy: false,
            });
        }
        let entry = Entry {
            lane,
            queued_at_ms: env.queued_at_ms,
            sender: st.senders.get(&env.sender),
            rcpts,
            attempts: u16::try_from(state.attempts).unwrap_or(u16::MAX),
            size,
            delay_warned: state.delay_warned,
            tickets: SmallVec::new(),
            moving: false,
            deleted: false,
            readers: 0,
            extra: extra_of(env),
        };
        st.entries.insert(id, entry);
        st.lane_in[lane.index()] += 1;
        schedule_domains(&mut st, id, now, &self.work);
        drop(st);
        self.changed.notify_one();
    }
}

/// What of an envelope only events need, if anything.
fn extra_of(env: &Envelope) -> Option<Box<Extra>> {
    let orcpt: Vec<Option<String>> = env.recipients.iter().map(|r| r.orcpt.clone()).collect();
    if env.metadata.is_empty() && env.envid.is_none() && orcpt.iter().all(Option::is_none) {
        return None;
    }
    Some(Box::new(Extra {
        metadata: env.metadata.clone(),
        envid: env.envid.clone(),
        orcpt,
    }))
}

fn min_opt(a: Option<u64>, b: u64) -> Option<u64> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// Gives every domain of `id` with pending, idle recipients and no ticket
/// a ticket: on the timer if not yet due, else ready (or waiting for
/// resolution).
fn schedule_domains(st: &mut State, id: MessageId, now: u64, work: &Notify) {
    let Some(e) = st.entries.get(&id).filter(|e| !e.moving) else {
        return;
    };
    let mut due: SmallVec<[(DomainId, u64); 2]> = SmallVec::new();
    for r in e.rcpts.iter().filter(|r| !r.status.is_final() && !r.busy) {
        if e.ticket(r.domain).is_some() {
            continue;
        }
        match due.iter_mut().find(|(d, _)| *d == r.domain) {
            Some((_, t)) => *t = (*t).min(r.next_ms),
            None => due.push((r.domain, r.next_ms)),
        }
    }
    for (domain, at) in due {
        if at > now {
            if let Some(e) = st.entries.get_mut(&id) {
                e.set_ticket(domain, Some(Ticket::Timer(at)));
            }
            st.timer.push(Reverse((at, id, domain)));
        } else {
            make_ready(st, id, domain, now, work);
        }
    }
}

/// Puts `(id, domain)` in its site's lane, or in the domain's waiting list
/// when the domain was never resolved. A domain whose answer has expired
/// keeps using it while it is being resolved again (marked `stale`), so new
/// urgent mail never waits for DNS behind mail that is already queued.
fn make_ready(st: &mut State, id: MessageId, domain: DomainId, now: u64, work: &Notify) {
    let Some(lane) = st.entries.get(&id).map(|e| e.lane) else {
        return;
    };
    let d = st.domains.get_mut(domain);
    if d.expires_ms <= now {
        d.stale = true;
    }
    let site = d.site.clone().filter(|k| st.sites.contains_key(k));
    let ticket = match site {
        Some(k) => {
            let s = st.sites.get_mut(&k).expect("site");
            s.lanes[lane.index()].insert((id, domain));
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
    entries: &mut Entries,
    domains: &Domains,
    id: MessageId,
    domain: DomainId,
    now: u64,
    max: usize,
) -> Option<(WorkItem, bool)> {
    let e = entries.get_mut(&id)?;
    e.set_ticket(domain, None);
    let mut rcpts = Vec::new();
    let mut more = false;
    for (i, r) in e.rcpts.iter_mut().enumerate() {
        if r.status.is_final() || r.busy || r.domain != domain || r.next_ms > now {
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
            domain: domains.name(domain).clone(),
            recipients: rcpts,
            sender: e.sender.to_string(),
            attempts: e.attempts.into(),
            queued_at_ms: e.queued_at_ms,
            size: e.size,
        },
        more,
    ))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod memory_tests {
    use super::*;

    #[test]
    fn a_queued_message_entry_stays_within_128_bytes() {
        // every byte of it is a MiB with a million queued (the entries sit
        // in one slab, see `Entries`)
        let n = std::mem::size_of::<Option<Entry>>();
        assert!(n <= 128, "Entry grew to {n} bytes");
    }

    #[test]
    fn messages_of_one_sender_share_its_copy_and_the_set_stays_small() {
        let mut s = Senders::default();
        let a = s.get("news@shop.example");
        let b = s.get("news@shop.example");
        assert!(Arc::ptr_eq(&a, &b), "one copy for one sender");
        for i in 0..8 {
            s.get(&format!("other{i}@example.net"));
        }
        assert_eq!(s.recent.iter().flatten().count(), 8, "at most eight kept");
        let c = s.get("news@shop.example");
        assert_eq!(&*c, "news@shop.example");
        assert!(
            !Arc::ptr_eq(&a, &c),
            "pushed out by eight others, then made anew"
        );
    }
}
