//! The suppression list shared by every node.
//!
//! Lookups (at every RCPT and submission) read this node's durable local
//! copy — today's redb store — and never wait on Redis. Writes go to the
//! local copy first (durable before they are acknowledged), then to the
//! replicated table `<prefix>sup` ([`crate::replicated`]), whose change
//! announcements the other nodes apply to their copies within
//! milliseconds. A write Redis could not take waits in memory and is
//! pushed when Redis answers again; a full comparison after every
//! (re)subscribe both pulls what this node missed and pushes what Redis
//! lacks, so a Redis that came back empty is re-seeded from the nodes'
//! copies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use laneway_auth::store::{NewSuppression, StoreFuture, normalised};
use laneway_auth::{Scope, Store, StoreError, Suppression, SuppressionStore};
use serde::{Deserialize, Serialize};

use crate::link::Link;
use crate::replicated::Versioned;

/// The table's name.
pub(crate) const TABLE: &str = "sup";
/// Local entries read per page when comparing with Redis.
const PAGE: usize = 1000;

/// A suppression as replicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    reason: String,
    scope: Scope,
    since: u64,
}

/// The table key of an entry: sender domain, NUL, address (both
/// normalised; neither may hold a NUL).
fn key(sender_domain: &str, address: &str) -> String {
    format!("{sender_domain}\0{address}")
}

fn split(key: &str) -> Option<(&str, &str)> {
    key.split_once('\0')
}

/// What one comparison with Redis did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resync {
    /// Entries taken from Redis into the local copy.
    pub pulled: usize,
    /// Local entries removed because another node removed them.
    pub removed: usize,
    /// Local entries Redis lacked, pushed to it.
    pub pushed: usize,
}

/// [`SuppressionStore`] over the local copy and Redis.
pub struct ClusterSuppressions {
    local: Store,
    link: Arc<Link>,
    node: String,
    /// Writes Redis has not taken yet, by key (the latest of each).
    pending: Mutex<HashMap<String, Versioned<Entry>>>,
}

impl ClusterSuppressions {
    /// The shared list over `local`, on its own connection to Redis at
    /// `url` (a node gets its from [`crate::Cluster`], which also follows
    /// the other nodes' changes; this is for tools and tests).
    pub fn connect(url: &str, prefix: &str, node: &str, local: Store) -> Result<Self, String> {
        Ok(ClusterSuppressions::new(
            local,
            Arc::new(Link::new(url, None, prefix)?),
            node,
        ))
    }

    pub(crate) fn new(local: Store, link: Arc<Link>, node: &str) -> ClusterSuppressions {
        ClusterSuppressions {
            local,
            link,
            node: node.to_string(),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn stamp(&self, value: Option<Entry>) -> Versioned<Entry> {
        Versioned {
            at: crate::replicated::stamp(),
            node: self.node.clone(),
            value,
        }
    }

    /// Writes to Redis, or keeps the write for later.
    async fn push(&self, key: String, v: Versioned<Entry>) {
        match self.link.put(TABLE, &key, &v).await {
            Ok(None) => {}
            Ok(Some(newer)) => {
                if let Err(e) = self.apply(&key, &newer).await {
                    tracing::warn!(error = %e, "cluster: cannot adopt a newer suppression entry");
                }
            }
            Err(_) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, v);
            }
        }
    }

    /// Applies an entry another node wrote to the local copy; whether it
    /// changed anything.
    pub(crate) async fn apply(&self, key: &str, v: &Versioned<Entry>) -> Result<bool, StoreError> {
        let Some((domain, address)) = split(key) else {
            return Ok(false);
        };
        let local = SuppressionStore::check(&self.local, domain, address).await?;
        match (&v.value, local) {
            (Some(e), local) if local.as_ref().is_none_or(|l| l.scope < e.scope) => {
                let n = NewSuppression::new(domain, address, &e.reason, e.scope, e.since);
                SuppressionStore::suppress(&self.local, &n).await?;
                Ok(true)
            }
            // a removal wins over what it is newer than
            (None, Some(l)) if l.since.saturating_mul(1000) <= v.at => {
                SuppressionStore::unsuppress(&self.local, domain, address).await
            }
            _ => Ok(false),
        }
    }

    /// Pushes the writes Redis missed, then compares the whole local copy
    /// with Redis's table both ways.
    pub async fn resync(&self) -> Result<Resync, String> {
        let pending: Vec<_> = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (k, v) in pending {
            self.push(k, v).await;
        }
        if !self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            return Err("Redis is still unreachable".into());
        }
        let remote: HashMap<String, Versioned<Entry>> = self
            .link
            .scan(TABLE)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        let mut r = Resync::default();
        let mut local = HashMap::new();
        let mut cursor = None;
        loop {
            let (page, next) = SuppressionStore::list(&self.local, None, PAGE, cursor.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            for s in page {
                local.insert(key(&s.sender_domain, &s.address), s);
            }
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        for (k, v) in &remote {
            let changes = match (&v.value, local.get(k)) {
                (Some(e), l) => l.is_none_or(|l| l.scope < e.scope),
                (None, Some(l)) => l.since.saturating_mul(1000) <= v.at,
                (None, None) => false,
            };
            if changes && self.apply(k, v).await.map_err(|e| e.to_string())? {
                match v.value {
                    Some(_) => r.pulled += 1,
                    None => r.removed += 1,
                }
            }
        }
        for (k, s) in &local {
            let wanted = match remote.get(k) {
                None => true,
                Some(v) => match &v.value {
                    Some(e) => e.scope < s.scope,
                    None => v.at < s.since.saturating_mul(1000),
                },
            };
            if wanted {
                let v = Versioned {
                    at: s.since.saturating_mul(1000),
                    node: self.node.clone(),
                    value: Some(entry(s)),
                };
                self.link
                    .put(TABLE, k, &v)
                    .await
                    .map_err(|e| e.to_string())?;
                r.pushed += 1;
            }
        }
        Ok(r)
    }

    /// Writes waiting for Redis.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn entry(s: &Suppression) -> Entry {
    Entry {
        reason: s.reason.clone(),
        scope: s.scope,
        since: s.since,
    }
}

impl SuppressionStore for ClusterSuppressions {
    fn check<'a>(
        &'a self,
        sender_domain: &'a str,
        address: &'a str,
    ) -> StoreFuture<'a, Option<Suppression>> {
        SuppressionStore::check(&self.local, sender_domain, address)
    }

    fn suppress<'a>(&'a self, n: &'a NewSuppression) -> StoreFuture<'a, Suppression> {
        Box::pin(async move {
            let s = SuppressionStore::suppress(&self.local, n).await?;
            let v = self.stamp(Some(entry(&s)));
            self.push(key(&s.sender_domain, &s.address), v).await;
            Ok(s)
        })
    }

    fn unsuppress<'a>(&'a self, sender_domain: &'a str, address: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (d, a) = normalised(sender_domain, address)?;
            let had = SuppressionStore::unsuppress(&self.local, &d, &a).await?;
            // other nodes may hold it even when this one did not
            self.push(key(&d, &a), self.stamp(None)).await;
            Ok(had)
        })
    }

    fn list<'a>(
        &'a self,
        sender_domain: Option<&'a str>,
        limit: usize,
        cursor: Option<&'a str>,
    ) -> StoreFuture<'a, (Vec<Suppression>, Option<String>)> {
        SuppressionStore::list(&self.local, sender_domain, limit, cursor)
    }

    fn count(&self) -> StoreFuture<'_, u64> {
        SuppressionStore::count(&self.local)
    }
}
