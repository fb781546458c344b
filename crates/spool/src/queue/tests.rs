//! Scheduler tests with an injected clock: no sleeping, every decision checked.

use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use laneway_common::id::IdGenerator;
use laneway_common::ingest::BoxFuture;
use laneway_common::{Origin, Recipient, Stage};

use super::*;
use crate::store::Spooled;

struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn jitter(&self) -> f64 {
        0.5
    }
}

#[derive(Default)]
struct Notices(StdMutex<Vec<(MessageId, DsnAction, Vec<usize>)>>);

impl Notifier for Notices {
    fn notify<'a>(&'a self, _original: &'a Spooled, n: Notice) -> BoxFuture<'a, ()> {
        self.0.lock().unwrap().push((
            n.id,
            n.action,
            n.recipients.iter().map(|(i, _)| *i).collect(),
        ));
        Box::pin(async {})
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<DiskStore>,
    clock: Arc<ManualClock>,
    queue: Queue,
    ids: IdGenerator,
}

const T0: u64 = 1_800_000_000_000;

fn fixture(settings: QueueSettings) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = DiskStore::open(dir.path(), 4).unwrap();
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock(AtomicU64::new(T0)));
    let queue = Queue::new(store.clone(), settings, clock.clone());
    Fixture {
        _dir: dir,
        store,
        clock,
        queue,
        ids: IdGenerator::new(None),
    }
}

fn lane(n: i64) -> Priority {
    Priority::new(n).unwrap()
}

impl Fixture {
    fn add(&self, lane: Priority, rcpts: &[&str]) -> MessageId {
        let id = self.ids.next_id();
        let mut env = Envelope::new(
            "a@example.com",
            rcpts.iter().map(|r| Recipient::new(*r)).collect(),
            Origin::local(),
        );
        env.queued_at_ms = self.clock.now_ms();
        self.store
            .put(id, lane, &env, b"Subject: t\r\n\r\nx\r\n")
            .unwrap();
        self.queue
            .insert(id, lane, &env, &MessageState::new(rcpts.len()), 20);
        id
    }

    fn resolve_all(&self, limits: SiteLimits) -> Vec<ConnGrant> {
        let p = self.queue.poll();
        for d in &p.resolve {
            let key: Arc<str> = if d.ends_with("b.test") {
                "site-b".into()
            } else {
                "site-a".into()
            };
            self.queue.resolved(
                d,
                SiteInfo {
                    key,
                    limits: limits.clone(),
                    ttl_ms: 3_600_000,
                    shaping: Some("prov".into()),
                },
            );
        }
        let mut grants = p.grants;
        grants.extend(self.queue.poll().grants);
        grants
    }

    fn advance(&self, d: Duration) {
        self.clock
            .0
            .fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

fn item(t: Take) -> WorkItem {
    match t {
        Take::Item(i) => i,
        other => panic!("expected an item, got {other:?}"),
    }
}

fn delivered() -> Outcome {
    let mut o = Outcome::remote(
        Stage::Data,
        laneway_common::Reply::new(250, (2, 0, 0), "ok"),
        None,
    );
    o.dsn_passed = true;
    o
}

fn later_reply(text: &str) -> Outcome {
    Outcome::remote(
        Stage::Rcpt,
        laneway_common::Reply::new(451, (4, 3, 0), text),
        None,
    )
}

fn failed(text: &str) -> Outcome {
    Outcome::remote(
        Stage::Rcpt,
        laneway_common::Reply::new(550, (5, 1, 1), text),
        None,
    )
}

#[tokio::test]
async fn highest_lane_first_then_fifo() {
    let f = fixture(QueueSettings::default());
    let bulk: Vec<_> = (0..5).map(|_| f.add(lane(0), &["x@a.test"])).collect();
    let mid = f.add(lane(4), &["y@a.test"]);
    let urgent = f.add(lane(9), &["z@a.test"]);
    let mut grants = f.resolve_all(SiteLimits {
        max_connections: 1,
        ..Default::default()
    });
    assert_eq!(grants.len(), 1, "one connection allowed");
    let g = &mut grants[0];
    let order: Vec<MessageId> = (0..7).map(|_| item(f.queue.take(g)).id).collect();
    let mut want = vec![urgent, mid];
    want.extend(bulk);
    assert_eq!(order, want);
    assert!(matches!(f.queue.take(g), Take::Empty));
}

#[tokio::test]
async fn an_urgent_message_overtakes_a_backlog_between_transactions() {
    let f = fixture(QueueSettings::default());
    for _ in 0..100 {
        f.add(lane(0), &["x@a.test"]);
    }
    let mut grants = f.resolve_all(SiteLimits {
        max_connections: 2,
        ..Default::default()
    });
    assert_eq!(grants.len(), 2);
    let a = item(f.queue.take(&mut grants[0]));
    let b = item(f.queue.take(&mut grants[1]));
    assert_eq!((a.lane, b.lane), (lane(0), lane(0)));
    let urgent = f.add(lane(9), &["u@a.test"]);
    // the next slot to free up takes the urgent one
    let n = Notices::default();
    f.queue.complete(&a, vec![(0, delivered())], &n).await;
    assert_eq!(item(f.queue.take(&mut grants[0])).id, urgent);
}

#[tokio::test]
async fn reserved_slots_carry_only_high_lanes() {
    let f = fixture(QueueSettings::default());
    for _ in 0..10 {
        f.add(lane(0), &["x@a.test"]);
    }
    let limits = SiteLimits {
        max_connections: 3,
        reserved: 1,
        reserved_min_lane: lane(7),
        ..Default::default()
    };
    let mut grants = f.resolve_all(limits);
    assert_eq!(grants.len(), 2, "bulk may only use the unreserved slots");
    assert!(grants.iter().all(|g| !g.reserved));
    for g in grants.iter_mut() {
        item(f.queue.take(g));
    }
    let urgent = f.add(lane(8), &["u@a.test"]);
    let mut more = f.queue.poll().grants;
    assert_eq!(more.len(), 1);
    assert!(more[0].reserved);
    assert_eq!(item(f.queue.take(&mut more[0])).id, urgent);
    // the reserved connection never carries bulk
    assert!(matches!(f.queue.take(&mut more[0]), Take::Empty));
}

#[tokio::test]
async fn deferral_waits_on_the_timer_and_survives_a_restart() {
    let settings = QueueSettings {
        policy: laneway_common::config::Queue {
            retry_base: Duration::from_secs(60),
            ..Default::default()
        },
        ..Default::default()
    };
    let f = fixture(settings.clone());
    let id = f.add(lane(5), &["x@a.test"]);
    let mut g = f.resolve_all(SiteLimits::default());
    let it = item(f.queue.take(&mut g[0]));
    let n = Notices::default();
    f.queue
        .complete(&it, vec![(0, later_reply("try later"))], &n)
        .await;
    assert!(
        matches!(f.queue.take(&mut g[0]), Take::Empty),
        "deferred work is not ready"
    );
    let p = f.queue.poll();
    assert_eq!(p.wake_at_ms, Some(T0 + 60_000));
    // the state on disk has the attempt and the next time
    drop(f.queue);
    let dir = f._dir;
    drop(f.store);
    let (store, rec, _) = DiskStore::open(dir.path(), 4).unwrap();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].id, id);
    assert_eq!(rec[0].state.attempts, 1);
    assert_eq!(rec[0].state.recipients[0].attempts, 1);
    assert_eq!(rec[0].state.recipients[0].next_attempt_ms, T0 + 60_000);
    assert_eq!(
        rec[0].state.recipients[0]
            .last
            .as_ref()
            .map(Outcome::to_string)
            .as_deref(),
        Some("451 4.3.0 try later")
    );
    // a new queue over the recovered spool respects the schedule
    let clock = Arc::new(ManualClock(AtomicU64::new(T0 + 1000)));
    let q = Queue::new(Arc::new(store), settings, clock.clone());
    let r = &rec[0];
    q.insert(r.id, r.lane, &r.envelope, &r.state, r.size);
    let p = q.poll();
    assert!(p.resolve.is_empty() && p.grants.is_empty());
    assert_eq!(p.wake_at_ms, Some(T0 + 60_000));
    clock.0.store(T0 + 60_000, Ordering::SeqCst);
    assert_eq!(q.poll().resolve.len(), 1);
}

#[tokio::test]
async fn delivered_messages_leave_the_spool() {
    let f = fixture(QueueSettings::default());
    let id = f.add(lane(4), &["x@a.test", "y@b.test"]);
    let mut g = f.resolve_all(SiteLimits::default());
    assert_eq!(g.len(), 2, "two sites, one connection each");
    let n = Notices::default();
    let a = item(f.queue.take(&mut g[0]));
    let b = item(f.queue.take(&mut g[1]));
    assert_ne!(a.domain, b.domain);
    // an outcome for a recipient the item does not carry is ignored
    let (ia, ib) = (a.recipients[0].0, b.recipients[0].0);
    f.queue
        .complete(&a, vec![(ia, delivered()), (ib, delivered())], &n)
        .await;
    assert!(
        f.store.get(id, lane(4)).is_ok(),
        "one recipient still pending"
    );
    f.queue.complete(&b, vec![(ib, delivered())], &n).await;
    assert!(
        f.store.get(id, lane(4)).is_err(),
        "removed when all are done"
    );
    assert!(f.queue.is_empty());
    assert!(n.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn failures_and_expiry_ask_for_dsns() {
    let settings = QueueSettings {
        policy: laneway_common::config::Queue {
            retry_base: Duration::from_secs(60),
            max_age: Duration::from_secs(300),
            delay_warning: Duration::from_secs(120),
            ..Default::default()
        },
        ..Default::default()
    };
    let f = fixture(settings);
    let id = f.add(lane(2), &["x@a.test", "y@a.test"]);
    let mut g = f.resolve_all(SiteLimits::default());
    let n = Notices::default();
    let it = item(f.queue.take(&mut g[0]));
    assert_eq!(it.recipients.len(), 2, "same domain: one transaction");
    f.queue
        .complete(
            &it,
            vec![(0, failed("no such user")), (1, later_reply("later"))],
            &n,
        )
        .await;
    assert_eq!(
        n.0.lock().unwrap().clone(),
        vec![(id, DsnAction::Failed, vec![0])]
    );
    // deferred again at 100 s (no warning yet), then at 230 s (past the
    // 120 s delay warning: one delay DSN), then at 330 s (past max_age: failed)
    let later = || vec![(1, later_reply("later"))];
    for step in [100, 130] {
        f.advance(Duration::from_secs(step));
        f.queue.poll();
        let it = item(f.queue.take(&mut g[0]));
        f.queue.complete(&it, later(), &n).await;
    }
    let got = n.0.lock().unwrap().clone();
    assert!(got.contains(&(id, DsnAction::Delayed, vec![1])), "{got:?}");
    f.advance(Duration::from_secs(100));
    f.queue.poll();
    let it = item(f.queue.take(&mut g[0]));
    f.queue.complete(&it, later(), &n).await;
    let got = n.0.lock().unwrap().clone();
    assert_eq!(
        got.iter()
            .filter(|(_, a, _)| *a == DsnAction::Delayed)
            .count(),
        1
    );
    assert_eq!(got.last().unwrap(), &(id, DsnAction::Failed, vec![1]));
    assert!(f.queue.is_empty());
}

#[tokio::test]
async fn sites_share_the_global_limit_highest_lane_first() {
    let f = fixture(QueueSettings {
        max_connections: 1,
        ..Default::default()
    });
    f.add(lane(1), &["x@a.test"]);
    f.add(lane(6), &["y@b.test"]);
    let g = f.resolve_all(SiteLimits::default());
    assert_eq!(g.len(), 1);
    assert_eq!(
        &*g[0].site, "site-b",
        "the site with the higher lane goes first"
    );
}

#[tokio::test]
async fn an_unreachable_site_defers_its_work_after_repeated_failures() {
    let f = fixture(QueueSettings::default());
    for _ in 0..5 {
        f.add(lane(3), &["x@a.test"]);
    }
    let mut deferred = Vec::new();
    for round in 0..DEAD_AFTER {
        let mut g = if round == 0 {
            f.resolve_all(SiteLimits::default())
        } else {
            f.advance(Duration::from_secs(600));
            f.queue.poll().grants
        };
        assert!(!g.is_empty(), "round {round}: a probe connection");
        let mut first = g.remove(0);
        for other in g {
            deferred.extend(f.queue.release(other, ConnReport::default()));
        }
        let it = item(f.queue.take(&mut first));
        let n = Notices::default();
        f.queue
            .complete(&it, vec![(0, later_reply("connect failed"))], &n)
            .await;
        deferred.extend(f.queue.release(
            first,
            ConnReport {
                connect_failed: true,
                ..Default::default()
            },
        ));
    }
    // everything ready but the probe in flight is handed back for deferral
    assert_eq!(deferred.len(), 4);
    assert!(f.queue.poll().grants.is_empty());
}

#[tokio::test]
async fn unresolvable_domains_hand_back_their_work() {
    let f = fixture(QueueSettings::default());
    let id = f.add(lane(4), &["x@nowhere.test"]);
    let p = f.queue.poll();
    assert_eq!(p.resolve.len(), 1);
    let items = f.queue.resolve_failed(&p.resolve[0], false);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, id);
    assert!(
        f.queue.poll().resolve.is_empty(),
        "not resolved again until due"
    );
}

#[tokio::test]
async fn rate_limits_space_out_messages() {
    let f = fixture(QueueSettings::default());
    for _ in 0..3 {
        f.add(lane(4), &["x@a.test"]);
    }
    let mut g = f.resolve_all(SiteLimits {
        max_connections: 1,
        rate: Some("2/s".parse().unwrap()),
        ..Default::default()
    });
    item(f.queue.take(&mut g[0]));
    assert!(matches!(f.queue.take(&mut g[0]), Take::Wait(500)));
    f.advance(Duration::from_millis(500));
    item(f.queue.take(&mut g[0]));
}

#[tokio::test]
async fn a_used_up_connection_is_told_to_close() {
    let f = fixture(QueueSettings::default());
    for _ in 0..3 {
        f.add(lane(4), &["x@a.test"]);
    }
    let mut g = f.resolve_all(SiteLimits {
        max_connections: 1,
        messages_per_connection: 2,
        ..Default::default()
    });
    item(f.queue.take(&mut g[0]));
    item(f.queue.take(&mut g[0]));
    assert!(matches!(f.queue.take(&mut g[0]), Take::Close));
    let g0 = g.remove(0);
    f.queue.release(
        g0,
        ConnReport {
            delivered: 2,
            ..Default::default()
        },
    );
    let mut fresh = f.queue.poll().grants;
    assert_eq!(fresh.len(), 1, "a fresh connection for the rest");
    item(f.queue.take(&mut fresh[0]));
}

#[tokio::test]
async fn summary_and_listing() {
    let f = fixture(QueueSettings::default());
    let a = f.add(lane(0), &["x@a.test"]);
    let b = f.add(lane(9), &["y@b.test"]);
    let c = f.add(lane(9), &["z@a.test"]);
    f.resolve_all(SiteLimits::default());
    let s = f.queue.summary();
    assert_eq!(s.total, 3);
    assert_eq!(s.lanes[9].count, 2);
    assert_eq!(s.lanes[0].count, 1);
    assert_eq!(s.ready, 3);
    assert_eq!(s.destinations.len(), 2);
    assert_eq!(s.destinations[0].site, "site-a", "most ready first");
    assert_eq!(s.destinations[0].domains, vec!["a.test"]);
    let per_lane =
        |f: fn(&laneway_common::admin::LaneSummary) -> u64| [0, 9].map(|l| f(&s.lanes[l]));
    assert_eq!(per_lane(|l| l.ready), [1, 2]);
    assert_eq!(per_lane(|l| l.in_total), [1, 2]);
    assert_eq!(per_lane(|l| l.out_total), [0, 0]);
    let (all, next) = f.queue.list(&Default::default());
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a, b, c]);
    assert_eq!(next, None);
    let page = laneway_common::admin::MessageFilter {
        limit: Some(2),
        ..Default::default()
    };
    let (first, next) = f.queue.list(&page);
    assert_eq!(first.len(), 2);
    let (rest, _) = f.queue.list(&laneway_common::admin::MessageFilter {
        cursor: next,
        ..page
    });
    assert_eq!(rest.iter().map(|m| m.id).collect::<Vec<_>>(), vec![c]);
    let (in_a, _) = f.queue.list(&laneway_common::admin::MessageFilter {
        domain: Some("A.TEST".into()),
        lane: Some(lane(9)),
        ..Default::default()
    });
    assert_eq!(in_a.iter().map(|m| m.id).collect::<Vec<_>>(), vec![c]);
    assert_eq!(in_a[0].state, "ready");
}

#[tokio::test]
async fn delete_retry_flush_and_relane() {
    let f = fixture(QueueSettings::default());
    let a = f.add(lane(0), &["x@a.test"]);
    let b = f.add(lane(0), &["y@a.test"]);
    let mut g = f.resolve_all(SiteLimits {
        max_connections: 1,
        ..Default::default()
    });
    // defer a
    let it = item(f.queue.take(&mut g[0]));
    assert_eq!(it.id, a);
    let n = Notices::default();
    f.queue
        .complete(&it, vec![(0, later_reply("later"))], &n)
        .await;
    assert_eq!(f.queue.list(&Default::default()).0[0].state, "deferred");
    let d = &f.queue.summary().destinations[0];
    assert_eq!((d.ready, d.deferred), (1, 1), "b ready, a deferred");
    assert!(
        f.queue.list(&Default::default()).0[0]
            .next_attempt
            .is_some()
    );
    // re-lane b to 8 on disk and in the scheduler
    f.queue.set_lane(b, lane(8)).await.unwrap();
    assert!(f.store.get(b, lane(8)).is_ok());
    assert!(f.store.get(b, lane(0)).is_err());
    // retry a now: both ready, b (lane 8) first
    f.queue.retry_now(a).unwrap();
    assert_eq!(item(f.queue.take(&mut g[0])).id, b);
    let it = item(f.queue.take(&mut g[0]));
    assert_eq!(it.id, a);
    // delete a while it is being delivered: gone once the attempt ends
    f.queue.delete(a, Some(&n)).await.unwrap();
    assert_eq!(n.0.lock().unwrap().last().unwrap().1, DsnAction::Failed);
    f.queue
        .complete(&it, vec![(0, later_reply("later"))], &n)
        .await;
    assert!(f.store.get(a, lane(0)).is_err());
    assert!(
        f.queue
            .list(&Default::default())
            .0
            .iter()
            .all(|m| m.id != a)
    );
    assert_eq!(f.queue.flush(), 0);
    // lane 0 took both in; b left it for lane 8, a left the queue
    let s = f.queue.summary();
    let io = |l: usize| (s.lanes[l].in_total, s.lanes[l].out_total);
    assert_eq!((io(0), io(8)), ((2, 2), (1, 0)));
}

#[tokio::test]
async fn a_suspended_destination_keeps_its_mail() {
    let f = fixture(QueueSettings::default());
    f.add(lane(5), &["x@a.test"]);
    f.queue.suspend("a.test");
    let g = f.resolve_all(SiteLimits::default());
    assert!(g.is_empty(), "no connection to a suspended site");
    assert_eq!(f.queue.summary().suspended_domains, vec!["a.test"]);
    f.queue.resume("a.test");
    let mut g = f.queue.poll().grants;
    assert_eq!(g.len(), 1);
    item(f.queue.take(&mut g[0]));
}

/// A notifier whose first notice waits until the test opens the gate.
#[derive(Default)]
struct Gate {
    calls: AtomicU64,
    entered: tokio::sync::Notify,
    open: tokio::sync::Notify,
}

impl Notifier for Gate {
    fn notify<'a>(&'a self, _original: &'a Spooled, _n: Notice) -> BoxFuture<'a, ()> {
        let first = self.calls.fetch_add(1, Ordering::SeqCst) == 0;
        Box::pin(async move {
            if first {
                self.entered.notify_one();
                self.open.notified().await;
            }
        })
    }
}

/// Two sites fail one message's recipients at the same time: its files
/// stay until the last DSN is written (the completion that finished the
/// message used to remove them while the other still needed them).
#[tokio::test]
async fn a_message_stays_until_its_last_dsn_is_written() {
    let f = fixture(QueueSettings::default());
    let id = f.add(lane(4), &["x@a.test", "y@b.test"]);
    let mut g = f.resolve_all(SiteLimits::default());
    assert_eq!(g.len(), 2, "one grant per site");
    let (ia, ib) = (item(f.queue.take(&mut g[0])), item(f.queue.take(&mut g[1])));
    let gate = Gate::default();
    let first = f
        .queue
        .complete(&ia, vec![(ia.recipients[0].0, failed("gone"))], &gate);
    tokio::pin!(first);
    tokio::select! {
        _ = &mut first => panic!("the first notice waits for the gate"),
        _ = gate.entered.notified() => {}
    }
    f.queue
        .complete(&ib, vec![(ib.recipients[0].0, failed("gone"))], &gate)
        .await;
    assert!(
        f.store.get(id, lane(4)).is_ok(),
        "kept while the first DSN is being written"
    );
    gate.open.notify_one();
    first.await;
    assert!(f.store.get(id, lane(4)).is_err(), "removed after the last");
    assert!(f.queue.is_empty());
}

fn restriction(mode: RestrictMode, until: u64) -> Vec<(Arc<str>, Restriction)> {
    vec![(
        "prov".into(),
        Restriction {
            lanes: "0-4".parse().unwrap(),
            mode,
            rate: Some("2/s".parse().unwrap()),
            max_connections: Some(1),
            until_ms: until,
            ramp_until_ms: until + 8000,
        },
    )]
}

#[tokio::test]
async fn a_suspension_stops_the_bulk_lanes_only_and_survives_push_back() {
    let f = fixture(QueueSettings::default());
    for _ in 0..10 {
        f.add(lane(0), &["x@a.test"]);
    }
    let limits = SiteLimits {
        max_connections: 3,
        reserved: 1,
        ..Default::default()
    };
    let mut g = f.resolve_all(limits);
    assert_eq!(g.len(), 2);
    item(f.queue.take(&mut g[0]));
    f.queue
        .set_restrictions(restriction(RestrictMode::Suspend, T0 + 60_000));
    // the open connections carry no bulk now, and none is opened for it
    assert!(matches!(f.queue.take(&mut g[1]), Take::Empty));
    assert!(f.queue.poll().grants.is_empty());
    let urgent = f.add(lane(9), &["u@a.test"]);
    assert_eq!(item(f.queue.take(&mut g[1])).id, urgent);
    // a 421 on a held site halves nothing and pauses nothing
    let g0 = g.remove(0);
    f.queue.release(
        g0,
        ConnReport {
            throttled: true,
            ..Default::default()
        },
    );
    let urgent2 = f.add(lane(9), &["u2@a.test"]);
    let mut more = f.queue.poll().grants;
    assert_eq!(more.len(), 1, "urgent mail gets a connection at once");
    assert_eq!(item(f.queue.take(&mut more[0])).id, urgent2);
    // once the hold is over the bulk lanes come back at the ramp's floor
    f.advance(Duration::from_millis(60_000));
    item(f.queue.take(&mut more[0]));
    assert!(matches!(f.queue.take(&mut more[0]), Take::Wait(500)));
    // … and at the end of the ramp at the site's own limits
    f.advance(Duration::from_millis(8_000));
    item(f.queue.take(&mut more[0]));
    item(f.queue.take(&mut more[0]));
}

#[tokio::test]
async fn a_throttle_caps_the_bulk_lanes_but_not_the_urgent_ones() {
    let f = fixture(QueueSettings::default());
    for _ in 0..10 {
        f.add(lane(0), &["x@a.test"]);
    }
    f.queue
        .set_restrictions(restriction(RestrictMode::Throttle, T0 + 60_000));
    let limits = SiteLimits {
        max_connections: 4,
        reserved: 1,
        ..Default::default()
    };
    let mut g = f.resolve_all(limits);
    assert_eq!(g.len(), 1, "one regular connection while throttled");
    item(f.queue.take(&mut g[0]));
    assert!(matches!(f.queue.take(&mut g[0]), Take::Wait(500)));
    // urgent mail does not wait for the bulk lanes' rate
    let urgent = f.add(lane(9), &["u@a.test"]);
    assert_eq!(item(f.queue.take(&mut g[0])).id, urgent);
    let urgent2 = f.add(lane(9), &["u2@a.test"]);
    let mut more = f.queue.poll().grants;
    assert_eq!(more.len(), 1);
    assert!(more[0].reserved, "the reserved slot stays open");
    assert_eq!(item(f.queue.take(&mut more[0])).id, urgent2);
    f.advance(Duration::from_millis(500));
    assert_eq!(item(f.queue.take(&mut g[0])).lane, lane(0));
}
