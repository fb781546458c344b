//! Handing out work: resolving domains to sites, granting connections
//! within the global and per-site limits (highest lane first, round robin
//! between sites), giving each connection its next item, and taking
//! connections back.

use std::cmp::Reverse;
use std::sync::Arc;

use laneway_common::{LaneSet, MessageId, Priority};

use super::compact::DomainId;
use super::restrict::{Held, Phase};
use super::site::{GrantState, Site};
use super::{
    ConnGrant, ConnReport, DEAD_AFTER, Health, Poll, Queue, SiteInfo, Take, Ticket, WorkItem,
    build_item, make_ready, min_opt,
};

impl Queue {
    /// The highest of `lanes` with ready work at a site.
    pub fn highest_ready(&self, site: &str, lanes: LaneSet) -> Option<Priority> {
        self.lock()
            .sites
            .get(site)
            .and_then(|s| s.highest_ready(lanes))
    }

    /// The limits in force at a site.
    pub fn site_limits(&self, site: &str) -> Option<super::SiteLimits> {
        self.lock().sites.get(site).map(|s| s.limits.clone())
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
                .is_some_and(|e| e.ticket(domain) == Some(Ticket::Timer(due)));
            if valid {
                make_ready(&mut st, id, domain, now, &self.work);
            }
        }
        let st = &mut *st;
        for d in st.domains.iter_mut() {
            if (!d.waiting.is_empty() || d.stale) && !d.resolving {
                d.resolving = true;
                d.stale = false;
                poll.resolve.push(d.name.clone());
            }
        }
        // Sites with ready work, highest lane first, then least recently served.
        // (Lanes a shaping rule suspends have no ready work here.)
        let mut candidates: Vec<(Priority, u64, Arc<str>)> = st
            .sites
            .values()
            .filter(|s| !s.suspended && s.ready() > 0)
            .filter_map(|s| {
                let open = open_lanes(held(&st.restrictions, s), LaneSet::ALL, now);
                s.highest_ready(open)
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
            let hold = held(&st.restrictions, site);
            // a rule holding the site: its regular connections may be
            // capped, and its reserved ones stay open to urgent lanes
            // however far the window has shrunk
            let cap = hold.and_then(|h| h.restriction.regular_cap(now));
            let guaranteed = hold.is_some_and(|h| h.restriction.phase(now) != Phase::Over);
            let regular_slots = cap.map_or(site.regular_slots(), |c| site.regular_slots().min(c));
            // held lanes waiting for the rule's rate ask for no connection
            // until it allows the next message
            let rate_wait = hold.and_then(|h| h.token_wait(now).map(|w| (h.restriction.lanes, w)));
            if let Some((_, w)) = rate_wait {
                poll.wake_at_ms = min_opt(poll.wake_at_ms, now + w);
            }
            for (pool, lanes) in settings.pools.iter().enumerate() {
                // the connection may carry all of the pool's lanes (a
                // suspension may end while it is open); only the lanes
                // open now ask for one
                let mut open = open_lanes(hold, *lanes, now);
                if let Some((held_lanes, _)) = rate_wait {
                    open = LaneSet::from_bits(open.bits() & !held_lanes.bits());
                }
                loop {
                    if st.active >= settings.max_connections
                        || open.is_empty()
                        || !site.pool_has_room(pool)
                    {
                        break;
                    }
                    let ready = site.ready_in(open);
                    let waiting_conns = site.idle[pool] + site.starting[pool];
                    if ready <= waiting_conns {
                        break;
                    }
                    let high = site.highest_ready(open).expect("ready > 0");
                    let reserved = if site.regular < regular_slots {
                        false
                    } else if high >= site.limits.reserved_min_lane
                        && site.reserved < site.limits.reserved
                        && (site.active() < site.window() || guaranteed)
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
                    if let Some(n) = site.pool_open.get_mut(pool) {
                        *n += 1;
                    }
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
        // a suspension's end opens its lanes again
        for h in st.restrictions.values() {
            if h.restriction.phase(now) == Phase::Hold {
                poll.wake_at_ms = min_opt(poll.wake_at_ms, h.restriction.until_ms);
            }
        }
        poll
    }

    /// Records where a domain's mail goes; its waiting work becomes ready.
    pub fn resolved(&self, domain: &str, info: SiteInfo) {
        let now = self.clock.now_ms();
        let pools = self.settings().pools.len();
        let mut st = self.lock();
        let Some(key) = st.domains.find(domain) else {
            return;
        };
        let d = st.domains.get_mut(key);
        d.resolving = false;
        d.site = Some(info.key.clone());
        d.expires_ms = now.saturating_add(info.ttl_ms);
        let waiting = std::mem::take(&mut d.waiting);
        let suspended = st.suspended.iter().any(|p| {
            laneway_common::domain::DomainPattern::parse(p).is_ok_and(|p| p.matches(domain))
        });
        let site = st
            .sites
            .entry(info.key.clone())
            .or_insert_with(|| Site::new(info.key.clone(), info.limits.clone(), pools));
        site.set_limits(info.limits);
        site.shaping = info.shaping;
        if suspended {
            site.suspended = true;
        }
        for id in waiting {
            if st.entries.get(&id).and_then(|e| e.ticket(key)) == Some(Ticket::Waiting) {
                make_ready(&mut st, id, key, now, &self.work);
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
        let Some(key) = st.domains.find(domain) else {
            return Vec::new();
        };
        let d = st.domains.get_mut(key);
        d.resolving = false;
        if permanent {
            d.site = None;
        } else {
            d.expires_ms = now + 60_000;
        }
        let waiting = std::mem::take(&mut d.waiting);
        let st = &mut *st;
        let mut out = Vec::new();
        for id in waiting {
            if let Some((item, _)) = build_item(&mut st.entries, &st.domains, id, key, now, max) {
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
        let shaping = site.shaping.clone();
        let hold = held(&st.restrictions, site);
        if !grant.reserved
            && let Some(cap) = hold.and_then(|h| h.restriction.regular_cap(now))
            && site.regular > cap
        {
            return Take::Close; // a rule throttles the site to fewer connections
        }
        let open = open_lanes(hold, grant.lanes, now);
        let mut held_wait = None;
        {
            for lane in open.iter_desc().filter(|l| *l >= min_lane) {
                loop {
                    let site = st.sites.get_mut(&grant.site).expect("site");
                    let Some((id, domain)) = site.lanes[lane.index()].first().copied() else {
                        break;
                    };
                    let hold = shaping.as_ref().and_then(|n| st.restrictions.get(n));
                    if let Some(h) = hold.filter(|h| h.limits(lane, now))
                        && let Some(wait) = h.token_wait(now)
                    {
                        // this lane waits for the rule's rate; a lower one may not
                        held_wait = min_opt(held_wait, wait);
                        break;
                    }
                    if let Some(wait) = site.token_wait(now) {
                        return Take::Wait(wait);
                    }
                    if let Some(wait) = site.pool_token_wait(grant.pool, now) {
                        return Take::Wait(wait);
                    }
                    site.lanes[lane.index()].remove(&(id, domain));
                    let Some((item, more)) =
                        build_item(&mut st.entries, &st.domains, id, domain, now, max)
                    else {
                        continue; // stale: the message went away or has nothing due
                    };
                    let site = st.sites.get_mut(&grant.site).expect("site");
                    site.consume_token(now);
                    site.consume_pool_token(grant.pool, now);
                    if let Some(h) = shaping.as_ref().and_then(|n| st.restrictions.get_mut(n))
                        && h.limits(lane, now)
                    {
                        h.consume(now);
                    }
                    if more {
                        site.lanes[lane.index()].insert((id, domain));
                        if let Some(e) = st.entries.get_mut(&id) {
                            e.set_ticket(domain, Some(Ticket::Ready));
                        }
                    }
                    grant.carried += 1;
                    return Take::Item(item);
                }
            }
        }
        if let Some(wait) = held_wait {
            return Take::Wait(wait);
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
        let mut guard = self.lock();
        let st = &mut *guard;
        st.active -= 1;
        let mut deferred = Vec::new();
        let Some(site) = st.sites.get_mut(&grant.site) else {
            return deferred;
        };
        let mut report = report;
        if held(&st.restrictions, site).is_some_and(|h| h.restriction.phase(now) == Phase::Hold) {
            // a shaping rule answers the push-back: no halving, no pause
            // that would stop the urgent lanes too
            report.throttled = false;
        }
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
        if let Some(n) = site.pool_open.get_mut(grant.pool) {
            *n = n.saturating_sub(1);
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
            let drained: Vec<(Priority, MessageId, DomainId)> = site
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
                if let Some((item, _)) =
                    build_item(&mut st.entries, &st.domains, id, domain, now, max)
                {
                    deferred.push(item);
                }
            }
        }
        drop(guard);
        self.changed.notify_one();
        deferred
    }
}

/// The restriction held on `site`'s shaping name, if any.
fn held<'a>(
    restrictions: &'a std::collections::HashMap<Arc<str>, Held>,
    site: &Site,
) -> Option<&'a Held> {
    restrictions.get(site.shaping.as_ref()?)
}

/// `lanes` less those a restriction suspends now.
fn open_lanes(hold: Option<&Held>, lanes: LaneSet, now: u64) -> LaneSet {
    let blocked = hold.map(|h| h.restriction.blocked(now)).unwrap_or_default();
    LaneSet::from_bits(lanes.bits() & !blocked.bits())
}
