//! Shaping rules in force, shared by every node: a provider pushing back at
//! one node (its automation rule starts there) is held on all of them, and
//! `laneway shaping clear` on any node ends it everywhere.
//!
//! The replicated table `<prefix>shaping` ([`crate::replicated`]): a
//! provider (or shaping domain) name → the active rule as JSON, or removed
//! when cleared. The rule's own times say when it holds and when its ramp
//! is over, so an ended rule needs no write: every node sees it end. This
//! crate keeps the entries opaque; the daemon turns them into the
//! automation's rules ([`ClusterShaping::on_change`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

use crate::link::Link;
use crate::replicated::Versioned;

/// The table's name.
pub(crate) const TABLE: &str = "shaping";

/// What is told of a rule another node started (`Some`) or cleared.
pub type OnChange = Box<dyn Fn(&str, Option<Value>) + Send + Sync>;

/// The shared shaping rules of this node.
pub struct ClusterShaping {
    link: Arc<Link>,
    node: String,
    table: Mutex<HashMap<String, Versioned<Value>>>,
    on_change: OnceLock<OnChange>,
}

impl ClusterShaping {
    pub(crate) fn new(link: Arc<Link>, node: &str) -> ClusterShaping {
        ClusterShaping {
            link,
            node: node.to_string(),
            table: Mutex::new(HashMap::new()),
            on_change: OnceLock::new(),
        }
    }

    /// Where other nodes' rules go; told at once of those already known
    /// (a resync may have run before).
    pub fn on_change(&self, f: OnChange) {
        if self.on_change.set(f).is_err() {
            return;
        }
        let known: Vec<(String, Option<Value>)> = self
            .lock()
            .iter()
            .filter(|(_, v)| v.node != self.node)
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect();
        if let Some(f) = self.on_change.get() {
            for (k, v) in known {
                f(&k, v);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Versioned<Value>>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A rule this node started (`Some`) or cleared: kept here and written
    /// to Redis in the background (kept for the next resync while Redis is
    /// away).
    pub fn publish(self: &Arc<Self>, provider: &str, rule: Option<Value>) {
        let v = Versioned {
            at: crate::replicated::stamp(),
            node: self.node.clone(),
            value: rule,
        };
        self.lock().insert(provider.to_string(), v.clone());
        let (this, key) = (self.clone(), provider.to_string());
        tokio::spawn(async move {
            match this.link.put(TABLE, &key, &v).await {
                Ok(None) => {}
                Ok(Some(newer)) => this.apply(&key, newer),
                Err(e) => {
                    tracing::debug!(error = %e, provider = %key, "cluster: shaping rule kept for when Redis answers")
                }
            }
        });
    }

    /// A change another node made.
    pub(crate) fn apply(&self, key: &str, v: Versioned<Value>) {
        {
            let mut t = self.lock();
            if t.get(key).is_some_and(|cur| cur.at >= v.at) {
                return;
            }
            t.insert(key.to_string(), v.clone());
        }
        if let Some(f) = self.on_change.get() {
            f(key, v.value);
        }
    }

    /// Compares the table with Redis's both ways (last writer wins);
    /// returns how many entries were taken and given.
    pub(crate) async fn resync(&self) -> Result<(usize, usize), String> {
        let remote = self
            .link
            .scan::<Value>(TABLE)
            .await
            .map_err(|e| e.to_string())?;
        let (take, give) = crate::replicated::compare(&self.lock(), remote);
        let taken = take.len();
        for (k, v) in take {
            self.apply(&k, v);
        }
        let given = give.len();
        for (k, v) in give {
            if let Some(newer) = self
                .link
                .put(TABLE, &k, &v)
                .await
                .map_err(|e| e.to_string())?
            {
                self.apply(&k, newer);
            }
        }
        Ok((taken, given))
    }
}
