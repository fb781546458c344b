//! Destination limits across nodes: connection slots as expiring leases
//! (a node that dies gives its slots back after `[cluster] lease`; the
//! leases of open connections are renewed every third of it) and message
//! rates as one GCRA per site, both on Redis's clock.
//!
//! While Redis is away each node goes on alone with its share: the limit
//! divided by the nodes last seen (at least one slot, so mail never
//! stalls), through the same calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use laneway_common::config::units::Rate;
use laneway_common::ingest::BoxFuture;
use laneway_spool::queue::{Lease, SharedLimits, SiteLimits, Slot};

use crate::link::Link;
use crate::scripts::{GCRA, LEASE_RENEW, LEASE_TAKE};

/// Cells a site's rate may send back to back (a GCRA burst of 1 would
/// under-admit: each overshoot past the arrival time is lost).
pub const RATE_BURST: u64 = 2;

/// A short, stable name for a site key (site keys hold host lists).
pub(crate) fn site_hash(site: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, site.as_bytes());
    data_encoding::HEXLOWER.encode(&d.as_ref()[..10])
}

#[derive(Default)]
struct LocalSite {
    open: usize,
    next_ms: f64,
}

/// [`SharedLimits`] on Redis, with local shares as the fallback.
pub struct ClusterLimits {
    link: Arc<Link>,
    node: String,
    boot: String,
    lease: Duration,
    seq: AtomicU64,
    /// Leases held on Redis: lease id → set key.
    held: Mutex<HashMap<String, String>>,
    /// Local shares while Redis is away.
    local: Mutex<HashMap<Arc<str>, LocalSite>>,
    nodes: Arc<std::sync::atomic::AtomicUsize>,
    started: Instant,
}

impl ClusterLimits {
    pub(crate) fn new(
        link: Arc<Link>,
        node: &str,
        lease: Duration,
        nodes: Arc<std::sync::atomic::AtomicUsize>,
    ) -> ClusterLimits {
        ClusterLimits {
            link,
            node: node.to_string(),
            boot: format!("{:08x}", rand::random::<u32>()),
            lease,
            seq: AtomicU64::new(0),
            held: Mutex::new(HashMap::new()),
            local: Mutex::new(HashMap::new()),
            nodes,
            started: Instant::now(),
        }
    }

    fn share(&self, limit: usize) -> usize {
        let n = self.nodes.load(Ordering::Relaxed).max(1);
        (limit / n).max(1)
    }

    fn local_connect(&self, site: &str, limit: usize) -> Slot {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let s = local.entry(Arc::from(site)).or_default();
        if s.open >= self.share(limit) {
            return Slot::Full(Duration::from_millis(500));
        }
        s.open += 1;
        Slot::Granted(Lease {
            site: Arc::from(site),
            id: String::new(),
            local: true,
        })
    }

    fn local_send(&self, site: &str, rate: Rate) -> Option<Duration> {
        let now = self.started.elapsed().as_secs_f64() * 1000.0;
        let n = self.nodes.load(Ordering::Relaxed).max(1) as f64;
        let interval = 1000.0 * n / rate.per_second();
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let s = local.entry(Arc::from(site)).or_default();
        if s.next_ms > now + 0.5 {
            return Some(Duration::from_millis((s.next_ms - now).ceil() as u64));
        }
        s.next_ms = s.next_ms.max(now) + interval;
        None
    }

    /// Renews every lease held (every third of the lease time, until the
    /// cluster stops).
    pub(crate) async fn renew_all(&self) {
        let held: Vec<(String, String)> = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, key)| (id.clone(), key.clone()))
            .collect();
        let ms = self.lease.as_millis() as u64;
        for (id, key) in held {
            let i = id.clone();
            let r: Result<i64, _> = self
                .link
                .call(false, |mut c| async move {
                    LEASE_RENEW
                        .key(&key)
                        .arg(&i)
                        .arg(ms)
                        .invoke_async(&mut c)
                        .await
                })
                .await;
            if let Ok(0) = r {
                tracing::info!(lease = %id, "cluster: a connection lease was lost (Redis restarted?) and is taken again");
            }
        }
    }
}

impl SharedLimits for ClusterLimits {
    fn connect<'a>(
        &'a self,
        site: &'a str,
        limits: &'a SiteLimits,
        reserved: bool,
    ) -> BoxFuture<'a, Slot> {
        Box::pin(async move {
            // a regular connection leaves the reserved slots to urgent lanes
            let limit = if reserved {
                limits.max_connections
            } else {
                limits
                    .max_connections
                    .saturating_sub(limits.reserved)
                    .max(1)
            };
            let key = self.link.key(&format!("conn:{}", site_hash(site)));
            let id = format!(
                "{}:{}:{}",
                self.node,
                self.boot,
                self.seq.fetch_add(1, Ordering::Relaxed)
            );
            let ms = self.lease.as_millis() as u64;
            let (k, i) = (key.clone(), id.clone());
            let r: Result<(i64, i64), _> = self
                .link
                .call(false, |mut c| async move {
                    LEASE_TAKE
                        .key(&k)
                        .arg(&i)
                        .arg(limit)
                        .arg(ms)
                        .invoke_async(&mut c)
                        .await
                })
                .await;
            match r {
                Ok((1, _)) => {
                    self.held
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id.clone(), key);
                    Slot::Granted(Lease {
                        site: Arc::from(site),
                        id,
                        local: false,
                    })
                }
                Ok((_, wait_ms)) => {
                    Slot::Full(Duration::from_millis(wait_ms.clamp(50, 1000) as u64))
                }
                Err(_) => self.local_connect(site, limit),
            }
        })
    }

    fn disconnect(&self, lease: Lease) {
        if lease.local {
            let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = local.get_mut(&lease.site) {
                s.open = s.open.saturating_sub(1);
            }
            return;
        }
        let key = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&lease.id);
        if let Some(key) = key {
            let link = self.link.clone();
            tokio::spawn(async move {
                // a lost release costs the slot until the lease runs out
                let _ = link
                    .call(false, |mut c| async move {
                        redis::cmd("ZREM")
                            .arg(&key)
                            .arg(&lease.id)
                            .query_async::<i64>(&mut c)
                            .await
                    })
                    .await;
            });
        }
    }

    fn send<'a>(&'a self, site: &'a str, rate: Rate) -> BoxFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let interval_us =
                ((rate.per.as_micros() as f64 / f64::from(rate.count.max(1))).ceil() as u64).max(1);
            let key = self.link.key(&format!("rate:{}", site_hash(site)));
            let r: Result<(i64, i64), _> = self
                .link
                .call(false, |mut c| async move {
                    GCRA.key(&key)
                        .arg(interval_us)
                        .arg(RATE_BURST)
                        .invoke_async(&mut c)
                        .await
                })
                .await;
            match r {
                Ok((1, _)) => None,
                Ok((_, wait_us)) => Some(Duration::from_micros(wait_us.max(1) as u64)),
                Err(_) => self.local_send(site, rate),
            }
        })
    }
}
