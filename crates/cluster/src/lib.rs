//! More than one Laneway node (DESIGN §4a): what the nodes share through
//! Redis, and how each goes on alone while Redis is away.
//!
//! Each node keeps its own spool and scheduler; nothing in acceptance waits
//! on Redis. Shared are the destination limits ([`limits`]), the
//! suppression list ([`suppressions`]), the bounce tokens ([`tokens`]), the
//! destination holds ([`holds`]), the shaping rules in force ([`shaping`])
//! and a view of every node ([`Cluster::view`]).
//! [`Cluster::start`] starts the tasks that keep them so, owned by the
//! returned handle and ended by [`Cluster::stop`]:
//!
//! - the heartbeat (every second): this node's record in the view, the
//!   number of live nodes (for local shares while Redis is away), and the
//!   epoch, a value that changes only when Redis lost its data;
//! - the lease renewal (every third of `[cluster] lease`);
//! - the follower of the change channel, which applies other nodes'
//!   suppressions and holds;
//! - the resync, run after every (re)subscribe, after Redis answers again
//!   and when the epoch changed: it pushes what waited for Redis and
//!   compares the replicated tables both ways (re-seeding an empty Redis).

pub mod holds;
pub mod limits;
mod link;
mod replicated;
mod scripts;
pub mod shaping;
pub mod suppressions;
pub mod tokens;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use laneway_common::admin::{ClusterView, NodeStatus};
use laneway_spool::queue::{Queue, SharedLimits};
use tokio::sync::{Mutex as AsyncMutex, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use holds::Holds;
pub use limits::{ClusterLimits, RATE_BURST};
pub use link::Down;
pub use shaping::ClusterShaping;
pub use suppressions::ClusterSuppressions;
pub use tokens::ClusterTokens;

use link::Link;
use replicated::{CHANNEL, Change};
use scripts::HEARTBEAT;

/// How often a node reports itself.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long a node's record lives without a report.
const NODE_TTL: Duration = Duration::from_secs(5);

/// What a node needs to join.
pub struct Options {
    /// `[cluster] redis`.
    pub url: String,
    /// `[cluster] redis_ca`, read.
    pub ca: Option<Vec<u8>>,
    /// `[cluster] prefix`.
    pub prefix: String,
    /// This node's name.
    pub node: String,
    /// `[cluster] lease`.
    pub lease: Duration,
}

/// This node's status, as the heartbeat publishes it.
pub type StatusFn = Arc<dyn Fn() -> NodeStatus + Send + Sync>;

/// A node's membership in the cluster; the tasks end with [`Cluster::stop`].
pub struct Cluster {
    link: Arc<Link>,
    node: String,
    limits: Arc<ClusterLimits>,
    suppressions: Arc<ClusterSuppressions>,
    tokens: Arc<ClusterTokens>,
    holds: Arc<Holds>,
    shaping: Arc<ClusterShaping>,
    status: StatusFn,
    nodes: Arc<AtomicUsize>,
    /// Set when the epoch changed: the next resync also re-seeds tokens.
    reseed: AtomicBool,
    /// A resync completed since Redis last went away (it is logged once).
    in_step: AtomicBool,
    resync: Notify,
    resync_lock: AsyncMutex<()>,
    synced: tokio::sync::watch::Sender<u64>,
    cancel: CancellationToken,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Cluster {
    /// Joins: builds the shared stores over this node's `store` and `queue`
    /// and starts the tasks. Redis need not answer yet.
    pub fn start(
        opts: Options,
        store: laneway_auth::Store,
        queue: Arc<Queue>,
        status: StatusFn,
    ) -> Result<Arc<Cluster>, String> {
        let link = Arc::new(Link::new(&opts.url, opts.ca.as_deref(), &opts.prefix)?);
        let nodes = Arc::new(AtomicUsize::new(1));
        metrics::gauge!(laneway_common::metrics::CLUSTER_CONNECTED).set(0.0);
        metrics::gauge!(laneway_common::metrics::CLUSTER_NODES).set(1.0);
        let c = Arc::new(Cluster {
            limits: Arc::new(ClusterLimits::new(
                link.clone(),
                &opts.node,
                opts.lease,
                nodes.clone(),
            )),
            suppressions: Arc::new(ClusterSuppressions::new(
                store.clone(),
                link.clone(),
                &opts.node,
            )),
            tokens: Arc::new(ClusterTokens::new(store, link.clone())),
            holds: Arc::new(Holds::new(queue, link.clone(), &opts.node)),
            shaping: Arc::new(ClusterShaping::new(link.clone(), &opts.node)),
            link,
            node: opts.node,
            status,
            nodes,
            reseed: AtomicBool::new(false),
            in_step: AtomicBool::new(false),
            resync: Notify::new(),
            resync_lock: AsyncMutex::new(()),
            synced: tokio::sync::watch::channel(0).0,
            cancel: CancellationToken::new(),
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        let tasks = vec![
            tokio::spawn(c.clone().heartbeat()),
            tokio::spawn(c.clone().renew(opts.lease / 3)),
            tokio::spawn(c.clone().follow()),
            tokio::spawn(c.clone().resyncing()),
        ];
        *c.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        tracing::info!(node = %c.node, prefix = %opts.prefix, "cluster: joining through Redis");
        Ok(c)
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The shared destination limits.
    pub fn limits(&self) -> Arc<dyn SharedLimits> {
        self.limits.clone()
    }

    /// The shared suppression list.
    pub fn suppressions(&self) -> Arc<ClusterSuppressions> {
        self.suppressions.clone()
    }

    /// The shared bounce tokens.
    pub fn tokens(&self) -> Arc<ClusterTokens> {
        self.tokens.clone()
    }

    /// The shared holds.
    pub fn holds(&self) -> Arc<Holds> {
        self.holds.clone()
    }

    /// The shared shaping rules.
    pub fn shaping(&self) -> Arc<ClusterShaping> {
        self.shaping.clone()
    }

    /// Whether Redis answered the last call.
    pub fn connected(&self) -> bool {
        self.link.is_up()
    }

    /// Resolves after the next complete resync (for tests and start-up
    /// checks), or after `timeout`; whether one completed.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.synced.subscribe();
        // a resync under way may have read Redis before the caller's change
        let seen = *rx.borrow_and_update() + u64::from(self.resync_lock.try_lock().is_err());
        self.resync.notify_one();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n > seen))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Every node alive (just this one while Redis is away).
    pub async fn view(&self) -> ClusterView {
        let me = (self.status)();
        let index = self.link.key("nodes");
        let prefix = self.link.key("node:");
        let r: Result<Vec<Option<String>>, _> = self
            .link
            .call(true, |mut c| async move {
                let ids: Vec<String> = redis::cmd("ZRANGE")
                    .arg(&index)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let keys: Vec<String> = ids.iter().map(|i| format!("{prefix}{i}")).collect();
                redis::cmd("MGET").arg(&keys).query_async(&mut c).await
            })
            .await;
        let (connected, mut nodes) = match r {
            Ok(records) => (
                true,
                records
                    .into_iter()
                    .flatten()
                    .filter_map(|j| serde_json::from_str::<NodeStatus>(&j).ok())
                    .filter(|n| n.node != self.node)
                    .collect(),
            ),
            Err(_) => (false, Vec::new()),
        };
        nodes.push(me);
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        ClusterView {
            node: self.node.clone(),
            clustered: true,
            connected,
            nodes,
        }
    }

    /// Ends the tasks and takes this node out of the view.
    pub async fn stop(&self) {
        self.cancel.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        let (index, record, node) = (
            self.link.key("nodes"),
            self.link.key(&format!("node:{}", self.node)),
            self.node.clone(),
        );
        let _ = self
            .link
            .call(true, |mut c| async move {
                redis::pipe()
                    .cmd("ZREM")
                    .arg(&index)
                    .arg(&node)
                    .ignore()
                    .cmd("DEL")
                    .arg(&record)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        tracing::info!(node = %self.node, "cluster: left");
    }

    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.cancel.cancelled() => false,
        }
    }

    async fn heartbeat(self: Arc<Self>) {
        let candidate = format!("{:016x}", rand::random::<u64>());
        let mut epoch: Option<String> = None;
        let mut was_up = false;
        loop {
            let record = serde_json::to_string(&(self.status)()).unwrap_or_default();
            let keys = (
                self.link.key(&format!("node:{}", self.node)),
                self.link.key("nodes"),
                self.link.key("epoch"),
            );
            let (node, cand) = (self.node.clone(), candidate.clone());
            let r: Result<(String, Vec<String>), _> = self
                .link
                .call(true, |mut c| async move {
                    HEARTBEAT
                        .key(&keys.0)
                        .key(&keys.1)
                        .key(&keys.2)
                        .arg(&node)
                        .arg(NODE_TTL.as_millis() as u64)
                        .arg(&record)
                        .arg(&cand)
                        .invoke_async(&mut c)
                        .await
                })
                .await;
            match r {
                Ok((now_epoch, live)) => {
                    let n = live.len().max(1);
                    self.nodes.store(n, Ordering::Relaxed);
                    metrics::gauge!(laneway_common::metrics::CLUSTER_NODES).set(n as f64);
                    if epoch.as_ref().is_some_and(|e| *e != now_epoch) {
                        tracing::warn!(
                            "cluster: Redis lost its data (restarted empty?); re-seeding it from this node"
                        );
                        self.reseed.store(true, Ordering::Relaxed);
                        self.resync.notify_one();
                    } else if !was_up {
                        self.resync.notify_one();
                    }
                    epoch = Some(now_epoch);
                    was_up = true;
                }
                Err(_) => {
                    was_up = false;
                    self.in_step.store(false, Ordering::Relaxed);
                }
            }
            if !self.sleep(HEARTBEAT_EVERY).await {
                return;
            }
        }
    }

    async fn renew(self: Arc<Self>, every: Duration) {
        while self.sleep(every.max(Duration::from_millis(300))).await {
            self.limits.renew_all().await;
        }
    }

    /// Follows the change channel on a connection of its own (pub/sub
    /// blocks it), subscribing again whenever it drops.
    async fn follow(self: Arc<Self>) {
        let channel = self.link.key(CHANNEL);
        let mut backoff = Duration::from_millis(100);
        loop {
            let client = self.link.client.clone();
            let ch = channel.clone();
            let attempt = async move {
                let mut ps = client.get_async_pubsub().await?;
                ps.subscribe(&ch).await?;
                Ok::<_, redis::RedisError>(ps)
            };
            if let Ok(Ok(ps)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
                backoff = Duration::from_millis(100);
                // what was published while unsubscribed is lost: compare
                self.resync.notify_one();
                let (mut sink, mut stream) = ps.split();
                let mut ping = tokio::time::interval(Duration::from_secs(5));
                ping.tick().await;
                loop {
                    tokio::select! {
                        m = stream.next() => match m {
                            Some(m) => self.change(&m).await,
                            None => break,
                        },
                        _ = ping.tick() => {
                            let r = tokio::time::timeout(Duration::from_secs(2), sink.ping::<redis::Value>()).await;
                            if !matches!(r, Ok(Ok(_))) {
                                break;
                            }
                        }
                        _ = self.cancel.cancelled() => return,
                    }
                }
            }
            if !self.sleep(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn change(&self, m: &redis::Msg) {
        let Ok(payload) = m.get_payload::<String>() else {
            return;
        };
        let Ok(change) = serde_json::from_str::<Change>(&payload) else {
            tracing::warn!("cluster: a change message that does not decode");
            return;
        };
        match change.t.as_str() {
            suppressions::TABLE => {
                if let Some(v) = change.entry() {
                    if v.node == self.node {
                        return;
                    }
                    if let Err(e) = self.suppressions.apply(&change.k, &v).await {
                        tracing::warn!(error = %e, "cluster: cannot apply a suppression of another node");
                    }
                }
            }
            holds::TABLE => {
                if let Some(v) = change.entry()
                    && v.node != self.node
                {
                    self.holds.apply(&change.k, v);
                }
            }
            shaping::TABLE => {
                if let Some(v) = change.entry()
                    && v.node != self.node
                {
                    self.shaping.apply(&change.k, v);
                }
            }
            _ => {}
        }
    }

    async fn resyncing(self: Arc<Self>) {
        let mut done = 0u64;
        loop {
            tokio::select! {
                _ = self.resync.notified() => {}
                _ = self.cancel.cancelled() => return,
            }
            let _one = self.resync_lock.lock().await;
            match self.resync_once().await {
                Ok(()) => {
                    done += 1;
                    self.synced.send_replace(done);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cluster: resync incomplete; trying again");
                    if !self.sleep(Duration::from_secs(1)).await {
                        return;
                    }
                    self.resync.notify_one();
                }
            }
        }
    }

    async fn resync_once(&self) -> Result<(), String> {
        let reseed = self.reseed.swap(false, Ordering::Relaxed);
        let run = async {
            let tokens = if reseed {
                self.tokens.reseed().await?
            } else {
                self.tokens.flush().await?
            };
            self.limits.renew_all().await;
            let s = self.suppressions.resync().await?;
            let (taken, given) = self.holds.resync().await?;
            let (rules_taken, rules_given) = self.shaping.resync().await?;
            Ok::<_, String>((tokens, s, taken, given, rules_taken, rules_given))
        };
        match run.await {
            Ok((tokens, s, taken, given, rules_taken, rules_given)) => {
                let changed = tokens
                    + s.pulled
                    + s.removed
                    + s.pushed
                    + taken
                    + given
                    + rules_taken
                    + rules_given
                    > 0;
                let first = !self.in_step.swap(true, Ordering::Relaxed);
                if !(changed || first || reseed) {
                    return Ok(());
                }
                tracing::info!(
                    tokens_pushed = tokens,
                    suppressions_pulled = s.pulled,
                    suppressions_removed = s.removed,
                    suppressions_pushed = s.pushed,
                    holds_taken = taken,
                    holds_given = given,
                    shaping_rules_taken = rules_taken,
                    shaping_rules_given = rules_given,
                    "cluster: in step with Redis"
                );
                Ok(())
            }
            Err(e) => {
                if reseed {
                    self.reseed.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}
