//! Replicated tables: the suppressions and the holds. Each is a Redis hash
//! (`<prefix>sup`, `<prefix>hold`) of JSON entries that carry the time
//! they were written; a write is kept only if it is newer than the entry
//! it replaces (last writer wins), and removals stay as entries without a
//! value, so that a node that missed them learns of them. Every kept write
//! is announced on the channel `<prefix>changes`, which every node
//! follows; pub/sub drops what is published while a node is away, so a
//! node compares its whole copy with the hash after every (re)subscribe
//! and whenever Redis comes back empty ([`crate::Cluster`]).
//!
//! The times are the writing node's clock (milliseconds since the Unix
//! epoch): they only order two writes of the same entry, which in practice
//! are seconds apart or more; NTP-synchronised nodes are assumed.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::link::{Down, Link};
use crate::scripts::LWW_SET;

/// The change channel, under the prefix.
pub(crate) const CHANNEL: &str = "changes";
/// Hash fields read per HSCAN call (each call is bounded by the link's
/// timeout; large tables take several).
const SCAN_COUNT: usize = 1000;

/// The time to stamp a write with: the clock in ms, but always later than
/// the last stamp of this process, so that one node's writes of an entry
/// keep their order even within a millisecond.
pub(crate) fn stamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = laneway_common::envelope::now_ms();
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// One entry of a replicated table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Versioned<T> {
    /// When it was written, ms since the Unix epoch.
    pub at: u64,
    /// The node that wrote it.
    pub node: String,
    /// The entry; `None` once removed.
    pub value: Option<T>,
}

/// A local copy of a table against Redis's (last writer wins): the remote
/// entries to take (newer, or unknown here) and the local ones to give
/// (newer here, or unknown there).
pub(crate) type Diff<T> = (Vec<(String, Versioned<T>)>, Vec<(String, Versioned<T>)>);

pub(crate) fn compare<T: Clone>(
    local: &std::collections::HashMap<String, Versioned<T>>,
    remote: Vec<(String, Versioned<T>)>,
) -> Diff<T> {
    let mut take = Vec::new();
    let mut give = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (k, rv) in remote {
        seen.insert(k.clone());
        match local.get(&k) {
            Some(lv) if lv.at > rv.at => give.push((k, lv.clone())),
            Some(lv) if lv.at == rv.at => {}
            _ => take.push((k, rv)),
        }
    }
    for (k, lv) in local.iter().filter(|(k, _)| !seen.contains(*k)) {
        give.push((k.clone(), lv.clone()));
    }
    (take, give)
}

/// What goes on the change channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Change {
    /// The table: `sup` or `hold`.
    pub t: String,
    /// The entry's key.
    pub k: String,
    /// The entry (a [`Versioned`]).
    pub v: serde_json::Value,
}

impl Change {
    /// The entry, if it decodes as a `T`.
    pub(crate) fn entry<T: DeserializeOwned>(&self) -> Option<Versioned<T>> {
        serde_json::from_value(self.v.clone()).ok()
    }
}

impl Link {
    /// Writes an entry of `table`, last writer wins. `Ok(None)` when it was
    /// kept, `Ok(Some(newer))` when Redis holds a newer one (which the
    /// caller should adopt).
    pub(crate) async fn put<T: Serialize + DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        v: &Versioned<T>,
    ) -> Result<Option<Versioned<T>>, Down> {
        let json = serde_json::to_value(v).map_err(|e| Down(e.to_string()))?;
        let change = serde_json::to_string(&Change {
            t: table.to_string(),
            k: key.to_string(),
            v: json.clone(),
        })
        .map_err(|e| Down(e.to_string()))?;
        let (hash, channel, json, at) =
            (self.key(table), self.key(CHANNEL), json.to_string(), v.at);
        let r: Vec<String> = self
            .call(false, |mut c| async move {
                let r: redis::Value = LWW_SET
                    .key(&hash)
                    .arg(key)
                    .arg(&json)
                    .arg(at)
                    .arg(&channel)
                    .arg(&change)
                    .invoke_async(&mut c)
                    .await?;
                // {1} or {0, newer}: integers and a string
                Ok(match r {
                    redis::Value::Array(items) => items
                        .into_iter()
                        .map(|i| match i {
                            redis::Value::Int(n) => n.to_string(),
                            redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                            other => format!("{other:?}"),
                        })
                        .collect(),
                    _ => Vec::new(),
                })
            })
            .await?;
        match r.as_slice() {
            [kept] if kept == "1" => Ok(None),
            [_, newer] => Ok(serde_json::from_str(newer).ok()),
            other => Err(Down(format!(
                "unexpected answer to a table write: {other:?}"
            ))),
        }
    }

    /// Every entry of `table` (entries that do not decode are skipped and
    /// logged).
    pub(crate) async fn scan<T: DeserializeOwned>(
        &self,
        table: &str,
    ) -> Result<Vec<(String, Versioned<T>)>, Down> {
        let hash = self.key(table);
        let mut cursor = 0u64;
        let mut out = Vec::new();
        loop {
            let h = hash.clone();
            let (next, page): (u64, Vec<(String, String)>) = self
                .call(false, |mut c| async move {
                    redis::cmd("HSCAN")
                        .arg(&h)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            for (k, v) in page {
                match serde_json::from_str(&v) {
                    Ok(v) => out.push((k, v)),
                    Err(e) => {
                        tracing::warn!(table, key = %k, error = %e, "cluster: skipping an entry that does not decode")
                    }
                }
            }
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }
}
