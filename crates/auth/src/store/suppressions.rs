//! Suppressions: addresses a sender domain must not send to.
//!
//! Lists are per sender domain — a hard bounce for `shop.example` mail
//! says nothing about `bank.example`'s. An entry's [`Scope`] says which
//! mail it stops: [`Scope::All`] (hard bounces, operator entries) or
//! [`Scope::Bulk`] (spam complaints: marketing stops, password resets still
//! go out). A later `All` upgrades a `Bulk` entry; nothing downgrades one
//! except removing it.
//!
//! Address matching: the domain part is compared case-insensitively (DNS
//! names are), the local part exactly. RFC 5321 §2.4 lets a receiving host
//! treat `Bob` and `bob` as different mailboxes, so folding the local part
//! could suppress someone who never bounced; senders that vary the case of
//! one address get one entry per spelling.
//!
//! Keys are `sender domain NUL normalised address`: unique per pair and
//! sorted by domain then address, which makes [`Store::list`]'s cursor
//! (the hex of the last key) stable under inserts and deletes.

use std::ops::Bound;

use data_encoding::HEXLOWER;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::codec::{Reader, Writer};
use super::{NewSuppression, SUPPRESSIONS, Store, StoreError, db};

/// Value layout version.
const VERSION: u8 = 1;

/// Which mail a suppression stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Only lanes below `auth.transactional_min_lane` (complaints).
    Bulk,
    /// Every lane (hard bounces, operator entries).
    All,
}

/// One suppressed address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// The address, domain part lower-cased.
    pub address: String,
    /// The sender domain whose mail it stops, lower-cased.
    pub sender_domain: String,
    /// Why, e.g. `"550 5.1.1 user unknown"` or `"complaint: abuse"`.
    pub reason: String,
    /// Which mail it stops.
    pub scope: Scope,
    /// When it was recorded, seconds since the Unix epoch.
    pub since: u64,
}

impl Store {
    /// Suppresses `address` for `sender_domain` and returns the entry now
    /// stored: the new one, or the existing one when that already covers
    /// at least `scope` (a repeat keeps the first reason and time; `Bulk`
    /// never downgrades `All`).
    pub fn suppress(&self, n: &NewSuppression) -> Result<Suppression, StoreError> {
        let (scope, reason, since) = (n.scope, n.reason.as_str(), n.since);
        let key = entry_key(&n.sender_domain, &n.address)?;
        let txn = self.db.begin_write().map_err(db)?;
        let stored = {
            let mut table = txn.open_table(SUPPRESSIONS).map_err(db)?;
            let existing = match table.get(key.as_slice()).map_err(db)? {
                Some(v) => Some(decode(&key, v.value())?),
                None => None,
            };
            match existing {
                Some(old) if old.scope >= scope => old,
                _ => {
                    let (sender_domain, address) = split_key(&key)?;
                    let new = Suppression {
                        address,
                        sender_domain,
                        reason: reason.to_string(),
                        scope,
                        since,
                    };
                    table
                        .insert(key.as_slice(), encode(&new).as_slice())
                        .map_err(db)?;
                    new
                }
            }
        };
        txn.commit().map_err(db)?;
        Ok(stored)
    }

    /// Removes the entry; `true` if there was one.
    pub fn unsuppress(&self, sender_domain: &str, address: &str) -> Result<bool, StoreError> {
        let key = entry_key(sender_domain, address)?;
        let txn = self.db.begin_write().map_err(db)?;
        let removed = {
            let mut table = txn.open_table(SUPPRESSIONS).map_err(db)?;
            table.remove(key.as_slice()).map_err(db)?.is_some()
        };
        txn.commit().map_err(db)?;
        Ok(removed)
    }

    /// The entry for `address` under `sender_domain`, if any.
    pub fn check(
        &self,
        sender_domain: &str,
        address: &str,
    ) -> Result<Option<Suppression>, StoreError> {
        let key = entry_key(sender_domain, address)?;
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(SUPPRESSIONS).map_err(db)?;
        match table.get(key.as_slice()).map_err(db)? {
            Some(v) => decode(&key, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Up to `limit` (at least 1) entries in key order (sender domain,
    /// then address), of one sender domain or of all, starting after
    /// `cursor`. Returns them and the opaque cursor for the next page,
    /// `None` at the end. Entries added or removed between pages do not
    /// make a page repeat or skip the others.
    pub fn list(
        &self,
        sender_domain: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<Suppression>, Option<String>), StoreError> {
        let limit = limit.max(1);
        let (mut lower, upper) = match sender_domain {
            Some(d) => {
                let d = domain_part(d)?;
                let mut start = d.clone().into_bytes();
                start.push(0);
                let mut end = d.into_bytes();
                end.push(1);
                (Bound::Included(start), Bound::Excluded(end))
            }
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        if let Some(c) = cursor {
            let after = HEXLOWER
                .decode(c.as_bytes())
                .map_err(|_| StoreError::BadCursor(c.to_string()))?;
            let later = match &lower {
                Bound::Included(start) => after >= *start,
                _ => true,
            };
            if let Bound::Excluded(end) = &upper
                && after >= *end
            {
                return Ok((Vec::new(), None));
            }
            if later {
                lower = Bound::Excluded(after);
            }
        }
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(SUPPRESSIONS).map_err(db)?;
        let range = (
            lower.as_ref().map(Vec::as_slice),
            upper.as_ref().map(Vec::as_slice),
        );
        let mut out = Vec::new();
        let mut last_key = None;
        for entry in table.range::<&[u8]>(range).map_err(db)? {
            let (k, v) = entry.map_err(db)?;
            if out.len() == limit {
                return Ok((out, last_key.map(|k: Vec<u8>| HEXLOWER.encode(&k))));
            }
            out.push(decode(k.value(), v.value())?);
            last_key = Some(k.value().to_vec());
        }
        Ok((out, None))
    }

    /// Number of suppression entries, all sender domains together.
    pub fn count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = txn.open_table(SUPPRESSIONS).map_err(db)?;
        table.len().map_err(db)
    }
}

/// A sender domain as stored: trimmed, no trailing dot, lower-case.
fn domain_part(domain: &str) -> Result<String, StoreError> {
    let d = domain.trim().trim_end_matches('.').to_lowercase();
    if d.is_empty() || d.contains('\0') || d.contains('@') {
        return Err(StoreError::Invalid {
            what: "sender domain",
            value: domain.to_string(),
        });
    }
    Ok(d)
}

/// An address as stored: brackets and spaces trimmed, the part after the
/// last `@` lower-cased, the local part untouched.
fn normalise_address(address: &str) -> Result<String, StoreError> {
    let a = address.trim().trim_start_matches('<').trim_end_matches('>');
    let invalid = || StoreError::Invalid {
        what: "address",
        value: address.to_string(),
    };
    if a.is_empty() || a.contains('\0') {
        return Err(invalid());
    }
    Ok(match a.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            format!("{local}@{}", domain.trim_end_matches('.').to_lowercase())
        }
        Some(_) => return Err(invalid()),
        None => a.to_string(),
    })
}

/// The sender domain and address as every backend stores them
/// (normalised as [`Store::suppress`] does), for keys elsewhere.
pub fn normalised(sender_domain: &str, address: &str) -> Result<(String, String), StoreError> {
    Ok((domain_part(sender_domain)?, normalise_address(address)?))
}

/// `sender domain NUL address`.
fn entry_key(sender_domain: &str, address: &str) -> Result<Vec<u8>, StoreError> {
    let mut k = domain_part(sender_domain)?.into_bytes();
    k.push(0);
    k.extend_from_slice(normalise_address(address)?.as_bytes());
    Ok(k)
}

/// The two halves of a key.
fn split_key(key: &[u8]) -> Result<(String, String), StoreError> {
    let nul = key
        .iter()
        .position(|&b| b == 0)
        .ok_or(StoreError::Corrupt("suppressions"))?;
    let text =
        |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| StoreError::Corrupt("suppressions"));
    Ok((text(&key[..nul])?, text(&key[nul + 1..])?))
}

fn encode(s: &Suppression) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(VERSION)
        .u8(match s.scope {
            Scope::Bulk => 0,
            Scope::All => 1,
        })
        .u64(s.since)
        .str(&s.reason);
    w.0
}

fn decode(key: &[u8], value: &[u8]) -> Result<Suppression, StoreError> {
    let (sender_domain, address) = split_key(key)?;
    let mut r = Reader(value);
    let parsed = (|| {
        if r.u8()? != VERSION {
            return None;
        }
        let scope = match r.u8()? {
            0 => Scope::Bulk,
            1 => Scope::All,
            _ => return None,
        };
        let since = r.u64()?;
        let reason = r.str()?;
        r.done().then_some((scope, since, reason))
    })();
    let (scope, since, reason) = parsed.ok_or(StoreError::Corrupt("suppressions"))?;
    Ok(Suppression {
        address,
        sender_domain,
        reason,
        scope,
        since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("auth.redb")).unwrap()
    }

    /// Durability across a reopen (the semantics are in the suite).
    #[test]
    fn entries_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let n = NewSuppression::new(
            "news.example",
            "gone@remote.test",
            "bounced 5.1.1",
            Scope::All,
            7,
        );
        open(&dir).suppress(&n).unwrap();
        let s = open(&dir);
        let got = s
            .check("news.example", "gone@remote.test")
            .unwrap()
            .unwrap();
        assert_eq!((got.scope, got.since), (Scope::All, 7));
        assert_eq!(s.count().unwrap(), 1);
    }

    #[tokio::test]
    async fn the_backend_suite() {
        let dir = tempfile::tempdir().unwrap();
        super::super::suite::suppressions(&open(&dir)).await;
        let dir = tempfile::tempdir().unwrap();
        super::super::suite::pagination(&open(&dir)).await;
    }
}
