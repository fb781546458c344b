//! Destination holds shared by every node: `laneway queue suspend/resume`
//! on any node, and `[[destination]] hold = true` in any node's
//! configuration, hold the destination on all of them.
//!
//! The holds are the replicated table `<prefix>hold` ([`crate::replicated`]):
//! a pattern (see `DomainPattern`) → held or resumed, by whom. Every node
//! keeps the whole table in memory (it is small) and makes the scheduler
//! hold exactly the patterns held in it. A node writes its configuration's
//! holds at start and at each reload (as one node does today: a reload
//! holds them again even after a `resume`), and resumes the ones it wrote
//! that its configuration no longer has.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use laneway_spool::queue::{Queue, pattern_key};
use serde::{Deserialize, Serialize};

use crate::link::Link;
use crate::replicated::Versioned;

/// The table's name.
pub(crate) const TABLE: &str = "hold";

/// A hold as replicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hold {
    /// `admin` (suspend) or `config` (a `[[destination]] hold`).
    pub by: String,
}

#[derive(Default)]
struct State {
    table: HashMap<String, Versioned<Hold>>,
    /// This node's configuration holds.
    config: BTreeSet<String>,
}

/// The shared holds of this node.
pub struct Holds {
    queue: Arc<Queue>,
    link: Arc<Link>,
    node: String,
    state: Mutex<State>,
}

impl Holds {
    pub(crate) fn new(queue: Arc<Queue>, link: Arc<Link>, node: &str) -> Holds {
        Holds {
            queue,
            link,
            node: node.to_string(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the scheduler hold what the table holds.
    fn enforce(&self) {
        let held: Vec<String> = self
            .lock()
            .table
            .iter()
            .filter(|(_, v)| v.value.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        self.queue.set_holds(&held);
    }

    /// Writes a hold here (applied at once) and to Redis (in the
    /// background; kept for later while Redis is away).
    fn write(self: &Arc<Self>, pattern: &str, hold: Option<Hold>) {
        let key = pattern_key(pattern);
        let v = Versioned {
            at: crate::replicated::stamp(),
            node: self.node.clone(),
            value: hold,
        };
        self.lock().table.insert(key.clone(), v.clone());
        self.enforce();
        let this = self.clone();
        tokio::spawn(async move { this.push(&key, &v).await });
    }

    async fn push(&self, key: &str, v: &Versioned<Hold>) {
        match self.link.put(TABLE, key, v).await {
            Ok(None) => {}
            Ok(Some(newer)) => self.apply(key, newer),
            // the next comparison with Redis gives it
            Err(e) => {
                tracing::debug!(error = %e, pattern = key, "cluster: hold kept for when Redis answers")
            }
        }
    }

    /// `laneway queue suspend PATTERN` on this node.
    pub fn suspend(self: &Arc<Self>, pattern: &str) {
        self.write(pattern, Some(Hold { by: "admin".into() }));
    }

    /// `laneway queue resume PATTERN` on this node.
    pub fn resume(self: &Arc<Self>, pattern: &str) {
        self.write(pattern, None);
    }

    /// This node's configuration holds (at start and on reload).
    pub fn configure(self: &Arc<Self>, patterns: &[String]) {
        let new: BTreeSet<String> = patterns.iter().map(|p| pattern_key(p)).collect();
        let gone: Vec<String> = {
            let mut st = self.lock();
            let old = std::mem::replace(&mut st.config, new.clone());
            old.difference(&new).cloned().collect()
        };
        for p in &new {
            tracing::info!(domain = %p, "destination held by configuration (on every node)");
            self.write(
                p,
                Some(Hold {
                    by: "config".into(),
                }),
            );
        }
        for p in gone {
            self.write(&p, None);
        }
    }

    /// A change another node made.
    pub(crate) fn apply(&self, key: &str, v: Versioned<Hold>) {
        {
            let mut st = self.lock();
            if st.table.get(key).is_some_and(|cur| cur.at >= v.at) {
                return;
            }
            st.table.insert(key.to_string(), v);
        }
        self.enforce();
    }

    /// Compares the table with Redis's both ways (last writer wins);
    /// returns how many entries were taken and given.
    pub(crate) async fn resync(self: &Arc<Self>) -> Result<(usize, usize), String> {
        let remote = self
            .link
            .scan::<Hold>(TABLE)
            .await
            .map_err(|e| e.to_string())?;
        let (taken, give) = {
            let mut st = self.lock();
            let (take, give) = crate::replicated::compare(&st.table, remote);
            let taken = take.len();
            st.table.extend(take);
            // configuration holds of an earlier run that this one dropped
            let config = st.config.clone();
            let mine: Vec<String> = st
                .table
                .iter()
                .filter(|(k, v)| {
                    v.node == self.node
                        && v.value.as_ref().is_some_and(|h| h.by == "config")
                        && !config.contains(*k)
                })
                .map(|(k, _)| k.clone())
                .collect();
            drop(st);
            for k in mine {
                self.write(&k, None);
            }
            (taken, give)
        };
        self.enforce();
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

    /// The patterns held now.
    pub fn held(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .lock()
            .table
            .iter()
            .filter(|(_, v)| v.value.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }
}
