//! Dispatch: turns the scheduler's decisions into connections. One task
//! resolves domains to sites; one task per granted connection connects to
//! the site (every MX host and address in turn, from the lane's egress
//! pool), negotiates TLS per policy, then carries item after item — each
//! time the highest-lane ready one — until the site has nothing for it, the
//! connection is used up, or the daemon shuts down.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use laneway_common::config::{Config, Destination, OutboundTls};
use laneway_common::envelope::{Door, Origin, Recipient};
use laneway_common::{
    Envelope, Ingest, LaneRequest, LaneSet, Lifecycle, MessageId, Priority, Submission, metrics,
};
use laneway_spool::queue::{
    ConnGrant, ConnReport, Notifier, Outcome, Queue, SiteInfo, SiteLimits, Take, WorkItem,
};
use tokio::sync::Semaphore;

use crate::client::{self, Client, ClientError, Timeouts, Transaction};
use crate::dane::HostDane;
use crate::events::{DeliveryEvent, Events};
use crate::lookup::{HopError, Lookup, NextHop};
use crate::mta_sts::Mode;
use crate::tls::TlsClients;
use crate::tlsrpt::PolicyRef;

/// An egress pool: the lanes it carries, where it connects from, its EHLO name.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Name for logs.
    pub name: String,
    /// Lanes carried.
    pub lanes: LaneSet,
    /// Source addresses, used in turn.
    pub sources: Vec<IpAddr>,
    /// EHLO name.
    pub helo: String,
}

/// Outbound settings (swapped on reload).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Default TLS policy.
    pub tls: OutboundTls,
    /// Per-phase timeouts.
    pub timeouts: Timeouts,
    /// How long an idle connection waits for more work.
    pub idle_timeout: Duration,
    /// Egress pools; the last carries every lane no other pool names.
    pub pools: Vec<PoolSettings>,
    /// Per-domain limits.
    pub destinations: Vec<Destination>,
    /// Limits of a site without a `[[destination]]`.
    pub default_limits: SiteLimits,
    /// Honour MTA-STS policies.
    pub mta_sts: bool,
    /// Port of MTA-STS policy hosts.
    pub mta_sts_port: u16,
    /// DANE for hosts with secure TLSA records.
    pub dane: bool,
}

impl Settings {
    /// The outbound settings of a configuration.
    pub fn from_config(c: &Config) -> Settings {
        let o = &c.outbound;
        let helo = o
            .helo_name
            .clone()
            .unwrap_or_else(|| c.server.hostname.clone());
        let mut pools: Vec<PoolSettings> = o
            .pool
            .iter()
            .map(|p| PoolSettings {
                name: p.name.clone(),
                lanes: p.lanes,
                sources: p.source.clone(),
                helo: p.helo_name.clone().unwrap_or_else(|| helo.clone()),
            })
            .collect();
        let covered = pools.iter().fold(0u16, |acc, p| acc | p.lanes.bits());
        let rest = LaneSet::from_bits(!covered);
        if !rest.is_empty() {
            pools.push(PoolSettings {
                name: "default".into(),
                lanes: rest,
                sources: Vec::new(),
                helo,
            });
        }
        Settings {
            tls: o.tls,
            timeouts: Timeouts {
                connect: o.connect_timeout,
                greeting: o.greeting_timeout,
                command: o.command_timeout,
                data: o.data_timeout,
            },
            idle_timeout: o.idle_timeout,
            pools,
            destinations: c.destinations.clone(),
            default_limits: SiteLimits {
                max_connections: o.connections_per_destination,
                reserved: 0,
                reserved_min_lane: laneway_common::Priority::new(7).expect("lane"),
                rate: None,
                messages_per_connection: o.messages_per_connection,
            },
            mta_sts: o.mta_sts,
            mta_sts_port: o.mta_sts_port,
            dane: o.dane,
        }
    }

    /// The lane sets of the pools, in order (for the scheduler).
    pub fn pool_lanes(&self) -> Vec<LaneSet> {
        self.pools.iter().map(|p| p.lanes).collect()
    }

    fn destination(&self, domain: &str) -> Option<&Destination> {
        self.destinations.iter().find(|d| d.domain == domain)
    }

    fn limits_for(&self, domain: &str) -> SiteLimits {
        let d = &self.default_limits;
        match self.destination(domain) {
            None => d.clone(),
            Some(x) => SiteLimits {
                max_connections: x.max_connections.unwrap_or(d.max_connections),
                reserved: x.reserved_connections,
                reserved_min_lane: x.reserved_min_lane,
                rate: x.rate,
                messages_per_connection: x
                    .messages_per_connection
                    .unwrap_or(d.messages_per_connection),
            },
        }
    }
}

fn tls_name(t: OutboundTls) -> &'static str {
    match t {
        OutboundTls::Opportunistic => "opportunistic",
        OutboundTls::Verify => "verify",
        OutboundTls::Required => "required",
        OutboundTls::None => "none",
    }
}

/// What the daemon adds to delivery: the envelope sender of each
/// transaction (VERP bounce addresses, issue 5) and word of permanent
/// failures (to suppress hard-bouncing recipients).
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

    /// A recipient failed permanently; `remote` is whether the next hop said so.
    fn failed(
        &self,
        envelope_sender: &str,
        recipient: &str,
        lane: Priority,
        reply: &str,
        remote: bool,
    );
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

    fn failed(&self, _s: &str, _r: &str, _l: Priority, _reply: &str, _remote: bool) {}
}

/// A site's next hop and the TLS policy for it.
#[derive(Debug, Clone)]
struct Hop {
    hop: NextHop,
    tls: OutboundTls,
    /// A recipient-side policy in force (`dane`, `mta-sts`, `mta-sts-testing`).
    policy: Option<&'static str>,
    /// The policy domain and policy that TLS reports count against.
    report: Option<(String, Arc<PolicyRef>)>,
    /// Under DANE or MTA-STS: the domain's MX hosts with no recipient
    /// policy, for messages marked `TLS-Required: No` (RFC 8689 §5) that
    /// the policy would stop.
    fallback: Option<(NextHop, OutboundTls)>,
    /// Why no host is left (MTA-STS names none of the MX hosts).
    none_left: Option<String>,
}

/// The dispatcher.
pub struct Dispatcher {
    queue: Arc<Queue>,
    lookup: ArcSwap<Lookup>,
    tls: ArcSwap<TlsClients>,
    settings: ArcSwap<Settings>,
    hops: Mutex<HashMap<Arc<str>, Hop>>,
    notifier: Arc<dyn Notifier>,
    hooks: Arc<dyn Hooks>,
    events: Arc<Events>,
    lifecycle: Lifecycle,
    resolving: Semaphore,
    source_turn: AtomicUsize,
    sts: crate::mta_sts::Cache,
    reports: crate::tlsrpt::Reports,
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
    pub events: Arc<Events>,
    /// Shutdown and activity tracking.
    pub lifecycle: Lifecycle,
}

/// How TLS reports are sent.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// The reporting period.
    pub interval: Duration,
    /// The organisation and submitter: our host name.
    pub hostname: String,
    /// Sender and contact address.
    pub from: String,
    /// The lane reports travel in.
    pub lane: Priority,
}

/// A connection that is open and ready for transactions.
struct Open {
    client: Client,
    desc: String,
    /// The TLS policy it was made under (see [`tls_name`]).
    policy: &'static str,
}

/// Why no connection could be opened.
struct OpenError {
    error: ClientError,
    /// A TCP connection was made to some host.
    connected: bool,
    /// Every host reached failed on TLS policy (no STARTTLS, a failed
    /// handshake or certificate, no REQUIRETLS) rather than on transport.
    tls_refused: bool,
}

/// Where an attempt went, for the delivery events.
struct Via {
    next_hop: String,
    tls: Option<String>,
    policy: &'static str,
}

impl Open {
    fn via(&self) -> Via {
        Via {
            next_hop: self.desc.clone(),
            tls: self.client.tls.clone(),
            policy: self.policy,
        }
    }
}

fn delivered_count(outcomes: &[(usize, Outcome)]) -> usize {
    outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Delivered { .. }))
        .count()
}

impl Dispatcher {
    /// A dispatcher over its parts.
    pub fn new(p: Parts) -> Arc<Dispatcher> {
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
        })
    }

    /// Swaps in new settings, routes and TLS trust (on reload). Sites are
    /// resolved again as their answers expire.
    pub fn reload(&self, settings: Settings, lookup: Lookup, tls: TlsClients) {
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
            let poll = self.queue.poll();
            tracing::debug!(resolve = poll.resolve.len(), grants = poll.grants.len(), wake = ?poll.wake_at_ms, "poll");
            for d in poll.resolve {
                tokio::spawn(self.clone().resolve(d));
            }
            for g in poll.grants {
                tokio::spawn(self.clone().connection(g));
            }
            let now = self.queue.now_ms();
            let wait = poll
                .wake_at_ms
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

    async fn resolve(self: Arc<Self>, domain: Arc<str>) {
        let Ok(_permit) = self.resolving.acquire().await else {
            return;
        };
        let lookup = self.lookup.load_full();
        match lookup.next_hop(&domain).await {
            Ok(mut hop) => {
                let settings = self.settings.load_full();
                let mut tls = hop
                    .tls
                    .or_else(|| settings.destination(&domain).and_then(|d| d.tls))
                    .unwrap_or(settings.tls);
                let mut policy = None;
                let mut report: Option<Arc<PolicyRef>> = None;
                let mut none_left = None;
                let unfiltered = (hop.clone(), tls);
                // DANE first (RFC 8461 §2: it takes precedence over MTA-STS)
                if settings.dane
                    && hop.mx
                    && let Some((server, timeout)) = lookup.dnssec()
                    && crate::dane::mx_secure(server, &domain, timeout).await
                {
                    let port = lookup.port();
                    for h in &mut hop.hosts {
                        if let Some(d) = crate::dane::host(server, &h.name, port, timeout).await {
                            tracing::debug!(domain = %domain, host = %h.name, dane = ?d, "DANE");
                            h.dane = Some(Arc::new(d));
                            policy = Some("dane");
                        }
                    }
                    if policy.is_some() {
                        hop.site = format!("{} dane={domain}", hop.site).into();
                        let strings = hop
                            .hosts
                            .iter()
                            .filter_map(|h| match h.dane.as_deref() {
                                Some(HostDane::Tlsa(r)) => Some(r),
                                _ => None,
                            })
                            .flatten()
                            .map(|t| {
                                let hex: String =
                                    t.data.iter().map(|b| format!("{b:02x}")).collect();
                                format!("{} {} {} {hex}", t.usage, t.selector, t.matching)
                            })
                            .collect();
                        report = Some(Arc::new(PolicyRef {
                            kind: "tlsa",
                            strings,
                            mx: Vec::new(),
                        }));
                    }
                }
                if policy.is_none() && settings.mta_sts && hop.mx {
                    let found = self.mta_sts(&domain, &lookup, &settings).await;
                    let sts_ref = found.as_ref().map(|p| {
                        let mode = if p.mode == Mode::Enforce {
                            "enforce"
                        } else {
                            "testing"
                        };
                        let mut strings =
                            vec!["version: STSv1".to_string(), format!("mode: {mode}")];
                        strings.extend(p.mx.iter().map(|m| format!("mx: {m}")));
                        strings.push(format!("max_age: {}", p.max_age.as_secs()));
                        Arc::new(PolicyRef {
                            kind: "sts",
                            strings,
                            mx: p.mx.clone(),
                        })
                    });
                    match found {
                        Some(p) if p.mode == Mode::Enforce => {
                            let r = sts_ref.clone().expect("a policy");
                            for h in hop.hosts.iter().filter(|h| !p.matches(&h.name)) {
                                self.reports.failure(
                                    &domain,
                                    &r,
                                    "validation-failure",
                                    &h.name,
                                    None,
                                );
                            }
                            hop.hosts.retain(|h| p.matches(&h.name));
                            if hop.hosts.is_empty() {
                                tracing::warn!(domain = %domain, mx = ?p.mx, "MTA-STS (enforce): no MX host matches the policy; deferring");
                                none_left = Some(format!(
                                    "MTA-STS policy of {domain} (enforce, id {}) names none of its MX hosts",
                                    p.id
                                ));
                            }
                            // only verified TLS to the named hosts; a site of
                            // its own so no other domain's connection carries it
                            tls = OutboundTls::Verify;
                            hop.site = format!("{} mta-sts={domain}", hop.site).into();
                            policy = Some("mta-sts");
                            report = sts_ref;
                        }
                        Some(p) if p.mode == Mode::Testing => {
                            let misfits: Vec<&str> = hop
                                .hosts
                                .iter()
                                .filter(|h| !p.matches(&h.name))
                                .map(|h| h.name.as_str())
                                .collect();
                            if !misfits.is_empty() {
                                tracing::warn!(domain = %domain, hosts = ?misfits, mx = ?p.mx, "MTA-STS (testing): MX hosts outside the policy; delivering anyway");
                            }
                            let r = sts_ref.clone().expect("a policy");
                            for h in misfits {
                                self.reports
                                    .failure(&domain, &r, "validation-failure", h, None);
                            }
                            // labelled (and later reported) for this policy
                            // only: a site of its own here too
                            hop.site = format!("{} mta-sts-testing={domain}", hop.site).into();
                            policy = Some("mta-sts-testing");
                            report = sts_ref;
                        }
                        _ => {}
                    }
                }
                // Domains that share hosts but not a TLS policy must not
                // share connections: a connection made for an opportunistic
                // domain could otherwise carry mail that requires TLS.
                if tls != settings.tls {
                    hop.site = format!("{} tls={}", hop.site, tls_name(tls)).into();
                }
                let info = SiteInfo {
                    key: hop.site.clone(),
                    limits: settings.limits_for(&domain),
                    ttl_ms: hop.ttl.as_millis() as u64,
                };
                tracing::debug!(domain = %domain, site = %hop.site, hosts = hop.hosts.len(), "resolved");
                self.hops.lock().unwrap_or_else(|e| e.into_inner()).insert(
                    hop.site.clone(),
                    Hop {
                        hop,
                        tls,
                        policy,
                        report: report.map(|r| (domain.to_string(), r)),
                        fallback: matches!(policy, Some("dane" | "mta-sts")).then_some(unfiltered),
                        none_left,
                    },
                );
                self.queue.resolved(&domain, info);
            }
            Err(e) => {
                tracing::info!(domain = %domain, error = %e, "no next hop");
                let permanent = matches!(e, HopError::Permanent(_));
                let outcome = match e {
                    HopError::Permanent(t) => Outcome::Failed { reply: t },
                    HopError::Transient(t) => Outcome::Deferred { reply: t },
                };
                for item in self.queue.resolve_failed(&domain, permanent) {
                    self.finish_all(item, outcome.clone(), None);
                }
            }
        }
    }

    /// Whether the item's message said `TLS-Required: No` (read from the
    /// spool; only on the path where a recipient policy stopped delivery).
    async fn tls_optional(&self, item: &WorkItem) -> bool {
        let store = self.queue.store().clone();
        let (id, lane) = (item.id, item.lane);
        matches!(
            tokio::task::spawn_blocking(move || store.get(id, lane)).await,
            Ok(Ok(s)) if s.envelope.tls_optional
        )
    }

    /// Counts a failed session for the TLS report of the hop's policy domain.
    fn report_failure(&self, hop: &Hop, e: &ClientError, mx: &str, ip: Option<IpAddr>) {
        if let Some((domain, r)) = &hop.report {
            let result = crate::tlsrpt::result_type(&e.to_string());
            self.reports.failure(domain, r, result, mx, ip);
        }
    }

    /// Sends the TLS reports of each period (RFC 8460) until shutdown.
    pub async fn tls_reports(self: Arc<Self>, ingest: Arc<dyn Ingest>, r: ReportSettings) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(r.interval) => {}
                _ = self.lifecycle.shutdown_requested() => return,
            }
            let now = laneway_common::envelope::now_ms() / 1000;
            let (start, domains) = self.reports.take(now);
            for d in domains {
                let lookup = self.lookup.load_full();
                let Some(to) = lookup.tlsrpt_rua(&d.domain).await else {
                    continue;
                };
                if to.is_empty() {
                    tracing::info!(domain = %d.domain, "TLS report not sent: only https destinations, which are not supported");
                    continue;
                }
                let id = format!("{start}.{}.{}", d.domain, rand::random::<u32>());
                let contact = format!("mailto:{}", r.from);
                let v = crate::tlsrpt::json(&r.hostname, &contact, &id, start, now, &d);
                let Some(message) =
                    crate::tlsrpt::message(&r.hostname, &r.from, &to, &v, (start, now), now as i64)
                else {
                    continue;
                };
                let envelope = Envelope {
                    sender: r.from.clone(),
                    recipients: to.iter().cloned().map(Recipient::new).collect(),
                    ret: None,
                    envid: None,
                    smtputf8: false,
                    body: Default::default(),
                    require_tls: false,
                    tls_optional: false,
                    origin: Origin {
                        door: Door::Local,
                        name: "tls-report".into(),
                        ..Origin::local()
                    },
                    queued_at_ms: 0,
                    bounce_domain: None,
                };
                let sub = Submission {
                    envelope,
                    message,
                    lane: LaneRequest::fixed(r.lane),
                };
                match ingest.submit(sub).await {
                    Ok(acc) => {
                        tracing::info!(domain = %d.domain, id = %acc.id, to = ?to, "TLS report queued")
                    }
                    Err(e) => {
                        tracing::warn!(domain = %d.domain, error = %e, "cannot queue the TLS report")
                    }
                }
            }
        }
    }

    /// The MTA-STS policy in force for `domain`, if any.
    async fn mta_sts(
        &self,
        domain: &str,
        lookup: &Lookup,
        settings: &Settings,
    ) -> Option<Arc<crate::mta_sts::Policy>> {
        let txt = lookup.mta_sts_txt(domain).await;
        let tls = self.tls.load().verified.clone();
        let (port, timeout) = (
            settings.mta_sts_port,
            settings.timeouts.connect.min(crate::mta_sts::FETCH_TIMEOUT),
        );
        self.sts
            .policy(domain, txt, |id| async move {
                let (addrs, _) = lookup.addresses(&format!("mta-sts.{domain}"), port).await;
                crate::mta_sts::fetch(domain, &id, &addrs, tls, timeout).await
            })
            .await
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
                    return Some(i);
                }
                Take::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
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

    async fn connection(self: Arc<Self>, mut grant: ConnGrant) {
        let mut report = ConnReport::default();
        let Some(mut item) = self.next_item(&mut grant, None).await else {
            self.release(grant, report).await;
            return;
        };
        let hop = self
            .hops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&grant.site)
            .cloned();
        let Some(hop) = hop else {
            let o = Outcome::Deferred {
                reply: "4.4.3 Next hop no longer known; will resolve again".into(),
            };
            self.finish_all(item, o, None);
            self.release(grant, report).await;
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
                    policy: Some("tls-required-no"),
                    report: None,
                    fallback: None,
                    none_left: None,
                };
                match self.open(&fb, &pool, &settings, false).await {
                    Ok(mut o) => {
                        let res = self.deliver(&mut o, item, &fb, &pool, &settings).await;
                        report.delivered += res.0;
                        o.client.quit().await;
                    }
                    Err(e) => {
                        let o = Outcome::Deferred {
                            reply: e.error.to_string(),
                        };
                        self.finish_all(item, o, None);
                    }
                }
                self.release(grant, report).await;
                return;
            }
            Err(e) => {
                report.connect_failed = !e.connected;
                let o = Outcome::Deferred {
                    reply: e.error.to_string(),
                };
                self.finish_all(item, o, None);
                self.release(grant, report).await;
                return;
            }
        };
        let active = ::metrics::gauge!(metrics::CONNECTIONS_ACTIVE, "direction" => "out");
        active.increment(1.0);
        loop {
            let res = self.deliver(&mut open, item, &hop, &pool, &settings).await;
            report.delivered += res.0;
            report.throttled |= res.1;
            if !res.2 {
                break;
            }
            match self
                .next_item(&mut grant, Some(settings.idle_timeout))
                .await
            {
                Some(i) => item = i,
                None => break,
            }
        }
        open.client.quit().await;
        active.decrement(1.0);
        self.release(grant, report).await;
    }

    async fn release(self: &Arc<Self>, grant: ConnGrant, report: ConnReport) {
        let site = grant.site.clone();
        for item in self.queue.release(grant, report) {
            let o = Outcome::Deferred {
                reply: format!("4.4.1 Destination {site} is not reachable; deferred"),
            };
            self.finish_all(item, o, None);
        }
    }

    fn source_for(&self, pool: &PoolSettings, target: IpAddr) -> Option<IpAddr> {
        let fitting: Vec<IpAddr> = pool
            .sources
            .iter()
            .copied()
            .filter(|s| s.is_ipv4() == target.is_ipv4())
            .collect();
        if fitting.is_empty() {
            return None;
        }
        let n = self.source_turn.fetch_add(1, Ordering::Relaxed);
        Some(fitting[n % fitting.len()])
    }

    /// Connects to the first host that works. The error says whether any
    /// TCP connection was made at all (for the site's health).
    /// With `requiretls` (RFC 8689 §4.2.1) the certificate is verified
    /// whatever the destination's mode, and the host must offer REQUIRETLS.
    async fn open(
        &self,
        hop: &Hop,
        pool: &PoolSettings,
        settings: &Settings,
        requiretls: bool,
    ) -> Result<Open, OpenError> {
        let mut last = match &hop.none_left {
            Some(why) => ClientError::Tls(why.clone()),
            None => ClientError::Connect(format!("no address to connect to for {}", hop.hop.site)),
        };
        let mut connected = false;
        let mut other_failure = false;
        let tls = self.tls.load_full();
        let mode = if requiretls {
            OutboundTls::Verify
        } else {
            hop.tls
        };
        for host in &hop.hop.hosts {
            // DANE decides per host; the others keep the hop's policy
            let (mode, dane_config, policy) = match host.dane.as_deref() {
                Some(HostDane::Failed(e)) => {
                    last = ClientError::Tls(format!(
                        "{}: the TLSA lookup failed ({e}); not used without DANE",
                        host.name
                    ));
                    self.report_failure(hop, &last, &host.name, None);
                    continue;
                }
                Some(HostDane::Tlsa(records)) => {
                    match crate::dane::client_config(records.clone()) {
                        Ok(c) => (OutboundTls::Verify, Some(c), "dane"),
                        Err(e) => {
                            last = ClientError::Tls(e);
                            continue;
                        }
                    }
                }
                Some(HostDane::EncryptOnly) => (OutboundTls::Required, None, "dane"),
                None if requiretls => (mode, None, "requiretls"),
                None => match hop.policy {
                    Some(p) if p != "dane" => (mode, None, p),
                    _ => (mode, None, tls_name(mode)),
                },
            };
            let policy = if requiretls { "requiretls" } else { policy };
            // MTA-STS testing mode checks the certificate as enforce would,
            // reports a failure, and then goes on without the check
            let testing = !requiretls && policy == "mta-sts-testing";
            for addr in &host.addrs {
                let mut plain_only = mode == OutboundTls::None;
                let mut verify_testing = testing;
                loop {
                    let source = self.source_for(pool, addr.ip());
                    let tcp = match client::connect(*addr, source, settings.timeouts.connect).await
                    {
                        Ok(t) => t,
                        Err(e) => {
                            last = e;
                            other_failure = true;
                            break;
                        }
                    };
                    connected = true;
                    ::metrics::counter!(metrics::CONNECTIONS, "direction" => "out").increment(1);
                    let mut c =
                        match Client::start(tcp, &host.name, &pool.helo, settings.timeouts).await {
                            Ok(c) => c,
                            Err(e) => {
                                last = e;
                                other_failure = true;
                                break;
                            }
                        };
                    if !plain_only {
                        if c.caps.starttls {
                            let config = match &dane_config {
                                Some(c) => c.clone(),
                                None if mode == OutboundTls::Verify || verify_testing => {
                                    tls.verified.clone()
                                }
                                None => tls.any.clone(),
                            };
                            match c.starttls(config, &host.name, &pool.helo).await {
                                Ok(t) => c = t,
                                Err(e) if verify_testing => {
                                    self.report_failure(hop, &e, &host.name, Some(addr.ip()));
                                    tracing::warn!(host = %host.name, addr = %addr, error = %e, "MTA-STS (testing): the certificate fails the policy; delivering anyway");
                                    verify_testing = false;
                                    continue;
                                }
                                Err(e) if mode == OutboundTls::Opportunistic => {
                                    self.report_failure(hop, &e, &host.name, Some(addr.ip()));
                                    tracing::info!(host = %host.name, addr = %addr, error = %e, "TLS failed; retrying in plaintext (opportunistic)");
                                    plain_only = true;
                                    continue;
                                }
                                Err(e) => {
                                    other_failure |= !matches!(e, ClientError::Tls(_));
                                    self.report_failure(hop, &e, &host.name, Some(addr.ip()));
                                    last = e;
                                    break;
                                }
                            }
                        } else {
                            let e = ClientError::TlsUnavailable(format!(
                                "{} does not offer STARTTLS; TLS is required",
                                host.name
                            ));
                            self.report_failure(hop, &e, &host.name, Some(addr.ip()));
                            if matches!(mode, OutboundTls::Verify | OutboundTls::Required) {
                                last = e;
                                c.quit().await;
                                break;
                            }
                        }
                    }
                    if requiretls && !c.caps.requiretls {
                        last = ClientError::TlsUnavailable(format!(
                            "{} does not offer REQUIRETLS",
                            host.name
                        ));
                        c.quit().await;
                        break;
                    }
                    if let Some(auth) = &hop.hop.auth {
                        if c.tls.is_none() {
                            last = ClientError::TlsUnavailable(format!(
                                "refusing to send credentials to {} without TLS",
                                host.name
                            ));
                            c.quit().await;
                            break;
                        }
                        if let Err(e) = c.auth_plain(&auth.0, &auth.1).await {
                            last = e;
                            other_failure = true;
                            c.quit().await;
                            break;
                        }
                    }
                    let desc = format!("{}[{}]:{}", host.name, addr.ip(), addr.port());
                    if c.tls.is_some() {
                        ::metrics::counter!(metrics::TLS, "direction" => "out").increment(1);
                    }
                    ::metrics::counter!(metrics::TLS_POLICY, "policy" => policy).increment(1);
                    // (a testing-mode session whose check failed was counted as a failure)
                    if let Some((domain, r)) = &hop.report
                        && c.tls.is_some()
                        && verify_testing == testing
                    {
                        self.reports.success(domain, r);
                    }
                    return Ok(Open {
                        client: c,
                        desc,
                        policy,
                    });
                }
            }
        }
        Err(OpenError {
            error: last,
            connected,
            tls_refused: connected && !other_failure,
        })
    }

    /// Sends one item; returns (delivered count, throttled, reusable).
    async fn deliver(
        self: &Arc<Self>,
        open: &mut Open,
        item: WorkItem,
        hop: &Hop,
        pool: &PoolSettings,
        settings: &Settings,
    ) -> (usize, bool, bool) {
        let _activity = self.lifecycle.activity();
        let store = self.queue.store().clone();
        let (id, lane) = (item.id, item.lane);
        let spooled = tokio::task::spawn_blocking(move || store.get(id, lane)).await;
        let spooled = match spooled {
            Ok(Ok(s)) => s,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                let store = self.queue.store().clone();
                let q = tokio::task::spawn_blocking(move || store.quarantine(id, lane)).await;
                tracing::error!(id = %id, error = %e, quarantine = ?q, "corrupt spool file quarantined");
                let o = Outcome::Failed {
                    reply: format!("5.3.0 Message damaged in the spool ({e}); moved to quarantine"),
                };
                self.finish_all(item, o, None);
                return (0, false, true);
            }
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                    Ok(Ok(_)) => unreachable!("handled above"),
                };
                let o = Outcome::Deferred {
                    reply: format!("4.3.0 Cannot read the message from the spool: {why}"),
                };
                self.finish_all(item, o, None);
                return (0, false, true);
            }
        };
        let env = &spooled.envelope;
        let verified_requiretls = open.policy == tls_name(OutboundTls::Verify)
            && open.client.tls.is_some()
            && open.client.caps.requiretls;
        if env.require_tls && !verified_requiretls {
            // RFC 8689: this message needs a connection of its own — TLS with
            // a verified certificate to a host that offers REQUIRETLS.
            return match self.open(hop, pool, settings, true).await {
                Ok(mut dedicated) => {
                    let (outcomes, ..) = self.send_item(&mut dedicated, &item, &spooled).await;
                    let via = dedicated.via();
                    dedicated.client.quit().await;
                    let delivered = delivered_count(&outcomes);
                    self.finish(item, outcomes, Some(via));
                    (delivered, false, true)
                }
                Err(e) => {
                    let o = if e.tls_refused {
                        Outcome::Failed {
                            reply: format!(
                                "5.7.10 REQUIRETLS needed: no host for {} offers STARTTLS with a verified certificate and REQUIRETLS (last: {})",
                                hop.hop.site, e.error
                            ),
                        }
                    } else {
                        Outcome::Deferred {
                            reply: e.error.to_string(),
                        }
                    };
                    self.finish_all(item, o, None);
                    (0, false, true)
                }
            };
        }
        let (outcomes, throttled, reusable) = self.send_item(open, &item, &spooled).await;
        let delivered = delivered_count(&outcomes);
        let mut via = open.via();
        if env.require_tls {
            via.policy = "requiretls";
        }
        self.finish(item, outcomes, Some(via));
        (delivered, throttled, reusable)
    }

    /// Sends one spooled message over `open`, one transaction per envelope
    /// sender the hooks ask for; returns the outcomes, whether the server
    /// pushed back, and whether the connection can be used again.
    async fn send_item(
        &self,
        open: &mut Open,
        item: &WorkItem,
        spooled: &laneway_spool::Spooled,
    ) -> (Vec<(usize, Outcome)>, bool, bool) {
        let env = &spooled.envelope;
        let message = spooled.message();
        let smtputf8 = env.smtputf8
            || !env.sender.is_ascii()
            || item.recipients.iter().any(|(_, a)| !a.is_ascii());
        let eightbit =
            env.body != laneway_common::envelope::BodyType::SevenBit || !message.is_ascii();
        let ret = env.ret.map(|r| match r {
            laneway_common::envelope::DsnRet::Full => "FULL",
            laneway_common::envelope::DsnRet::Hdrs => "HDRS",
        });
        let mut outcomes = Vec::with_capacity(item.recipients.len());
        let (mut throttled, mut reusable) = (false, true);
        for (from, idxs) in self
            .hooks
            .transactions(item.id, item.lane, env, &item.recipients)
        {
            let rcpts: Vec<_> = item
                .recipients
                .iter()
                .filter(|(i, _)| idxs.contains(i))
                .map(|(i, addr)| {
                    let r = env.recipients.get(*i);
                    (
                        *i,
                        addr.as_str(),
                        r.and_then(|r| r.notify.to_param()),
                        r.and_then(|r| r.orcpt.as_deref()),
                    )
                })
                .collect();
            if !reusable {
                let o = Outcome::Deferred {
                    reply: "4.4.2 Connection lost before this transaction".into(),
                };
                outcomes.extend(rcpts.iter().map(|(i, ..)| (*i, o.clone())));
                continue;
            }
            let tx = Transaction {
                from: &from,
                rcpts,
                message,
                smtputf8,
                eightbit,
                ret,
                envid: env.envid.as_deref(),
                require_tls: env.require_tls,
            };
            let res = open.client.send(&tx).await;
            throttled |= res.throttled;
            reusable &= res.reusable;
            outcomes.extend(res.outcomes);
        }
        (outcomes, throttled, reusable)
    }

    /// [`Self::finish`] with one outcome for every recipient of the item.
    fn finish_all(self: &Arc<Self>, item: WorkItem, o: Outcome, via: Option<Via>) {
        let outcomes = item
            .recipients
            .iter()
            .map(|(i, _)| (*i, o.clone()))
            .collect();
        self.finish(item, outcomes, via);
    }

    /// Records outcomes with the scheduler and logs one event per
    /// recipient — in the background, so that the connection goes on to
    /// its next item without waiting for DSNs and spool updates (the disk
    /// may be busy with fsyncs of incoming mail). Shutdown waits for it.
    fn finish(self: &Arc<Self>, item: WorkItem, outcomes: Vec<(usize, Outcome)>, via: Option<Via>) {
        let this = self.clone();
        let activity = self.lifecycle.activity();
        tokio::spawn(async move {
            this.record(item, outcomes, via.as_ref()).await;
            drop(activity);
        });
    }

    async fn record(&self, item: WorkItem, outcomes: Vec<(usize, Outcome)>, via: Option<&Via>) {
        let next_hop = via.map(|v| v.next_hop.as_str());
        let now = self.queue.now_ms();
        let item2 = item.clone();
        let applied = self
            .queue
            .complete(item, outcomes, self.notifier.as_ref())
            .await;
        let lane = metrics::lane(item2.lane);
        for a in applied {
            let rcpt = item2
                .recipients
                .iter()
                .find(|(i, _)| *i == a.index)
                .map(|(_, a)| a.as_str())
                .unwrap_or("");
            let (result, reply) = match &a.outcome {
                Outcome::Delivered { reply, .. } => {
                    ::metrics::counter!(metrics::DELIVERED, "lane" => lane).increment(1);
                    ::metrics::histogram!(metrics::DELIVERY_LATENCY, "lane" => lane)
                        .record(now.saturating_sub(item2.queued_at_ms) as f64 / 1000.0);
                    ("delivered", reply.as_str())
                }
                Outcome::Deferred { reply } => {
                    ::metrics::counter!(metrics::DEFERRED, "lane" => lane).increment(1);
                    ("deferred", reply.as_str())
                }
                Outcome::Failed { reply } if a.expired => {
                    ::metrics::counter!(metrics::EXPIRED, "lane" => lane).increment(1);
                    ("expired", reply.as_str())
                }
                Outcome::Failed { reply } => {
                    ::metrics::counter!(metrics::BOUNCED, "lane" => lane).increment(1);
                    self.hooks
                        .failed(&item2.sender, rcpt, item2.lane, reply, next_hop.is_some());
                    ("failed", reply.as_str())
                }
            };
            let next = a.next_attempt_ms;
            self.events.record(&DeliveryEvent {
                ts_ms: now,
                id: item2.id.to_string(),
                lane: item2.lane.get(),
                from: &item2.sender,
                rcpt,
                result,
                reply,
                next_hop,
                tls: via.and_then(|v| v.tls.as_deref()),
                tls_policy: via.map(|v| v.policy),
                attempt: item2.attempts + 1,
                queue_time_ms: now.saturating_sub(item2.queued_at_ms),
                next_attempt_ms: next,
            });
        }
    }
}
