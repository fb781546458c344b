//! Dispatch: turns the scheduler's decisions into connections. One task
//! resolves each domain to a site ([`crate::resolve`]); one task per
//! granted connection opens it ([`crate::connect`]) and then carries item
//! after item — each time the highest-lane ready one — until the site has
//! nothing for it, the connection is used up, or the daemon shuts down
//! ([`crate::deliver`]).

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use laneway_common::delivery::{Outcome, Stage, Status};
use laneway_common::{Envelope, LaneSet, Lifecycle, MessageId, Priority, metrics};
use laneway_spool::queue::{
    ConnGrant, ConnReport, Notifier, Queue, SharedLimits, Slot, Take, WorkItem,
};
use tokio::sync::Semaphore;

use crate::lookup::Lookup;
use crate::policy::TlsPolicy;
use crate::resolve::Hop;
use crate::tls::TlsClients;
use laneway_common::events::EventSink;

pub use crate::settings::{PoolSettings, Settings};

/// What the daemon adds to delivery: the envelope sender of each
/// transaction (VERP bounce addresses) and word of permanent failures (to
/// suppress hard-bouncing recipients).
pub trait Hooks: Send + Sync {
    /// Groups the recipients of an item into transactions, each with its
    /// envelope sender.
    fn transactions(
        &self,
        id: MessageId,
        lane: Priority,
        envelope: &Envelope,
        recipients: &[(usize, String)],
    ) -> Vec<(String, Vec<usize>)>;

    /// A recipient failed permanently with this result.
    fn failed(&self, envelope_sender: &str, recipient: &str, lane: Priority, outcome: &Outcome);
}

/// No rewriting: one transaction with the original sender.
#[derive(Debug, Default)]
pub struct PlainSender;

impl Hooks for PlainSender {
    fn transactions(
        &self,
        _id: MessageId,
        _lane: Priority,
        env: &Envelope,
        recipients: &[(usize, String)],
    ) -> Vec<(String, Vec<usize>)> {
        vec![(
            env.sender.clone(),
            recipients.iter().map(|(i, _)| *i).collect(),
        )]
    }

    fn failed(&self, _s: &str, _r: &str, _l: Priority, _o: &Outcome) {}
}

/// The dispatcher.
pub struct Dispatcher {
    pub(crate) queue: Arc<Queue>,
    pub(crate) lookup: ArcSwap<Lookup>,
    pub(crate) tls: ArcSwap<TlsClients>,
    pub(crate) settings: ArcSwap<Settings>,
    pub(crate) hops: Mutex<HashMap<Arc<str>, Hop>>,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) hooks: Arc<dyn Hooks>,
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) resolving: Semaphore,
    pub(crate) source_turn: AtomicUsize,
    pub(crate) sts: crate::mta_sts::Cache,
    pub(crate) reports: crate::tlsrpt::Reports,
    pub(crate) limits: Option<Arc<dyn SharedLimits>>,
    pub(crate) automation: Arc<crate::Automation>,
    /// The shaping name each resolved domain rolls up to.
    pub(crate) shaping_names: Mutex<HashMap<Arc<str>, Option<Arc<str>>>>,
}

/// What a dispatcher is made of.
pub struct Parts {
    /// The scheduler it serves.
    pub queue: Arc<Queue>,
    /// Next-hop resolution.
    pub lookup: Lookup,
    /// TLS client configurations.
    pub tls: TlsClients,
    /// Outbound settings.
    pub settings: Settings,
    /// Where DSNs come from.
    pub notifier: Arc<dyn Notifier>,
    /// Envelope senders and failure reports.
    pub hooks: Arc<dyn Hooks>,
    /// The delivery event log.
    pub events: Arc<dyn EventSink>,
    /// Shutdown and activity tracking.
    pub lifecycle: Lifecycle,
    /// Limits shared with other nodes (`[cluster]`), if any.
    pub limits: Option<Arc<dyn SharedLimits>>,
}

impl Dispatcher {
    /// A dispatcher over its parts.
    pub fn new(p: Parts) -> Arc<Dispatcher> {
        let automation = Arc::new(crate::Automation::new(
            p.queue.clone(),
            p.events.clone(),
            Some(p.queue.store().root()),
            &p.settings,
        ));
        Arc::new(Dispatcher {
            queue: p.queue,
            lookup: ArcSwap::from_pointee(p.lookup),
            tls: ArcSwap::from_pointee(p.tls),
            settings: ArcSwap::from_pointee(p.settings),
            hops: Mutex::new(HashMap::new()),
            notifier: p.notifier,
            hooks: p.hooks,
            events: p.events,
            lifecycle: p.lifecycle,
            resolving: Semaphore::new(64),
            source_turn: AtomicUsize::new(0),
            sts: Default::default(),
            reports: crate::tlsrpt::Reports::new(laneway_common::envelope::now_ms() / 1000),
            limits: p.limits,
            automation,
            shaping_names: Mutex::new(HashMap::new()),
        })
    }

    /// The automatic back-off of the shaping rules.
    pub fn automation(&self) -> &Arc<crate::Automation> {
        &self.automation
    }

    /// The shaping name `domain`'s site rolls up to, if any.
    pub(crate) fn shaping_name(&self, domain: &str) -> Option<Arc<str>> {
        self.shaping_names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(domain)
            .cloned()
            .flatten()
    }

    /// Swaps in new settings, routes and TLS trust (on reload). Sites are
    /// resolved again as their answers expire.
    pub fn reload(&self, settings: Settings, lookup: Lookup, tls: TlsClients) {
        self.automation.reload(&settings);
        self.settings.store(Arc::new(settings));
        self.lookup.store(Arc::new(lookup));
        self.tls.store(Arc::new(tls));
    }

    /// Runs until shutdown.
    pub async fn run(self: Arc<Self>) {
        loop {
            if self.lifecycle.is_shutting_down() {
                return;
            }
            let rules_due = self.automation.tick();
            let poll = self.queue.poll();
            tracing::debug!(resolve = poll.resolve.len(), grants = poll.grants.len(), wake = ?poll.wake_at_ms, "poll");
            for d in poll.resolve {
                tokio::spawn(self.clone().resolve(d));
            }
            for g in poll.grants {
                tokio::spawn(self.clone().connection(g));
            }
            let now = self.queue.now_ms();
            let wait = crate::min_opt(poll.wake_at_ms, rules_due)
                .map(|t| t.saturating_sub(now))
                .unwrap_or(60_000)
                .max(1);
            tokio::select! {
                _ = self.queue.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = self.lifecycle.shutdown_requested() => return,
            }
        }
    }

    /// Whether the item's message said `TLS-Required: No` (read from the
    /// spool; only on the path where a recipient policy stopped delivery).
    async fn tls_optional(&self, item: &WorkItem) -> bool {
        matches!(
            self.queue
                .store()
                .fetch(item.id, item.lane, item.read_inline())
                .await,
            Ok(s) if s.envelope.tls_optional
        )
    }

    /// The next item for a connection; waits up to `idle` for one (or not at all).
    async fn next_item(&self, grant: &mut ConnGrant, idle: Option<Duration>) -> Option<WorkItem> {
        loop {
            if self.lifecycle.is_shutting_down() {
                return None;
            }
            let notified = self.queue.work();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.queue.take(grant) {
                Take::Item(i) => {
                    tracing::debug!(id = %i.id, lane = %i.lane, site = %grant.site, "take");
                    if self.bounced_by_rule(&i).await {
                        continue;
                    }
                    self.shared_rate(&grant.site).await;
                    return Some(i);
                }
                Take::Wait(ms) => {
                    // an open connection does not sit idle longer than
                    // its idle timeout waiting for a rate (the server
                    // would drop it); a fresh grant may wait
                    if idle.is_some_and(|idle| Duration::from_millis(ms) > idle) {
                        return None;
                    }
                    // new work (an urgent message) may not wait for the rate
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                        _ = self.lifecycle.shutdown_requested() => return None,
                    }
                }
                Take::Close => return None,
                Take::Empty => {
                    let idle = idle?;
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(idle) => return None,
                        _ = self.lifecycle.shutdown_requested() => return None,
                    }
                }
            }
        }
    }

    /// A `bounce` shaping rule holding the item's provider and lane fails
    /// it without an attempt.
    async fn bounced_by_rule(&self, item: &WorkItem) -> bool {
        let Some(name) = self.shaping_name(&item.domain) else {
            return false;
        };
        let Some(rule) = self.automation.bounces(&name, item.lane) else {
            return false;
        };
        let o = Outcome::permanent(
            Stage::Policy,
            Status::new(5, 7, 0),
            format!(
                "Not sent: shaping rule {} of {name} bounces lanes {} until {} (after: {})",
                rule.rule,
                rule.lanes,
                laneway_common::admin::rfc3339(rule.until_ms),
                rule.reply
            ),
        );
        self.record_all(item, o, None).await;
        true
    }

    /// With shared limits: waits until the cluster's rate of the site lets
    /// one more message go.
    async fn shared_rate(&self, site: &str) {
        let Some(limits) = &self.limits else { return };
        let Some(rate) = self.queue.site_limits(site).and_then(|l| l.rate) else {
            return;
        };
        while let Some(wait) = limits.send(site, rate).await {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.lifecycle.shutdown_requested() => return,
            }
        }
    }

    /// One granted connection: a shared slot first (with `[cluster]`),
    /// then open it and carry items until done.
    async fn connection(self: Arc<Self>, mut grant: ConnGrant) {
        let lease = match &self.limits {
            None => None,
            Some(l) => match self.shared_slot(l.as_ref(), &mut grant).await {
                Ok(lease) => Some(lease),
                Err(wait) => {
                    tracing::debug!(site = %grant.site, wait = ?wait, "every slot of the site is taken across the cluster");
                    let report = ConnReport {
                        shared_full_ms: (wait.as_millis() as u64).max(1),
                        ..ConnReport::default()
                    };
                    self.release(grant, report);
                    return;
                }
            },
        };
        self.clone().carry(grant).await;
        if let (Some(l), Some(lease)) = (&self.limits, lease) {
            l.disconnect(lease);
        }
    }

    /// A slot of the site across the cluster: a regular one, else — for
    /// urgent mail — one of the reserved ones, and then the connection
    /// carries only the lanes that may use them. `Err` with how long to
    /// wait when every slot it may use is taken.
    async fn shared_slot(
        &self,
        limits: &dyn SharedLimits,
        grant: &mut ConnGrant,
    ) -> Result<laneway_spool::queue::Lease, Duration> {
        let site = self.queue.site_limits(&grant.site).unwrap_or_default();
        let wait = match limits.connect(&grant.site, &site, false).await {
            Slot::Granted(lease) => return Ok(lease),
            Slot::Full(wait) => wait,
        };
        let urgent = LaneSet::range(site.reserved_min_lane, Priority::MAX);
        let has_urgent = self
            .queue
            .highest_ready(&grant.site, grant.lanes)
            .is_some_and(|l| l >= site.reserved_min_lane);
        if site.reserved == 0 || !has_urgent {
            return Err(wait);
        }
        match limits.connect(&grant.site, &site, true).await {
            Slot::Granted(lease) => {
                grant.lanes = LaneSet::from_bits(grant.lanes.bits() & urgent.bits());
                Ok(lease)
            }
            Slot::Full(wait) => Err(wait),
        }
    }

    async fn carry(self: Arc<Self>, mut grant: ConnGrant) {
        let mut report = ConnReport::default();
        let Some(mut item) = self.next_item(&mut grant, None).await else {
            self.release(grant, report);
            return;
        };
        let hop = self
            .hops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&grant.site)
            .cloned();
        let Some(hop) = hop else {
            let o = Outcome::transient(
                Stage::Dns,
                Status::new(4, 4, 3),
                "Next hop no longer known; will resolve again",
            );
            self.record_all(&item, o, None).await;
            self.release(grant, report);
            return;
        };
        let settings = self.settings.load_full();
        let pool = settings
            .pools
            .get(grant.pool)
            .cloned()
            .unwrap_or_else(|| settings.pools[0].clone());
        let mut open = match self.open(&hop, &pool, &settings, false).await {
            Ok(o) => o,
            Err(e) if hop.fallback.is_some() && self.tls_optional(&item).await => {
                // RFC 8689 §5: the sender said TLS-Required: No; the
                // recipient's policy may be ignored for this message
                report.connect_failed = !e.connected;
                let (fb, tls) = hop.fallback.clone().expect("checked");
                tracing::info!(id = %item.id, site = %grant.site, error = %e.error, "TLS-Required: No; delivering without the recipient's TLS policy");
                let fb = Hop {
                    hop: fb,
                    tls,
                    policy: Some(TlsPolicy::TlsRequiredNo),
                    report: None,
                    fallback: None,
                    none_left: None,
                    idle_timeout: None,
                };
                match self.open(&fb, &pool, &settings, false).await {
                    Ok(mut o) => {
                        let c = self.deliver(&mut o, item, &fb, &pool, &settings).await;
                        report.delivered += c.delivered;
                        o.client.quit().await;
                    }
                    Err(e) => {
                        let o = e.error.outcome(Stage::Connect, None);
                        self.record_all(&item, o, None).await;
                    }
                }
                self.release(grant, report);
                return;
            }
            Err(e) => {
                report.connect_failed = !e.connected;
                let o = e.error.outcome(Stage::Connect, None);
                self.finish_all(item, o);
                self.release(grant, report);
                return;
            }
        };
        let active = ::metrics::gauge!(metrics::CONNECTIONS_ACTIVE, "direction" => "out");
        active.increment(1.0);
        loop {
            let c = self.deliver(&mut open, item, &hop, &pool, &settings).await;
            report.delivered += c.delivered;
            report.throttled |= c.throttled;
            if !c.reusable {
                break;
            }
            match self
                .next_item(
                    &mut grant,
                    Some(hop.idle_timeout.unwrap_or(settings.idle_timeout)),
                )
                .await
            {
                Some(i) => item = i,
                None => break,
            }
        }
        open.client.quit().await;
        active.decrement(1.0);
        self.release(grant, report);
    }

    /// A connection closed: the scheduler updates the site's health; the
    /// work of a site found dead is deferred.
    fn release(self: &Arc<Self>, grant: ConnGrant, report: ConnReport) {
        let site = grant.site.clone();
        for item in self.queue.release(grant, report) {
            let o = Outcome::transient(
                Stage::Connect,
                Status::new(4, 4, 1),
                format!("Destination {site} is not reachable; deferred"),
            );
            self.finish_all(item, o);
        }
    }
}
