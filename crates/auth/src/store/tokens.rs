//! Bounce tokens: what each `b+<token>` address stood for.
//!
//! The token itself only carries the message id and recipient index (see
//! [`crate::bounce`]); the recipient address, sender and lane live here
//! until `expires_at` (acceptance time + `auth.bounce_window`). The daemon
//! records all recipients of a message in one transaction —
//! [`Store::remember_many`] — because one fsync per recipient would cap
//! acceptance at a few hundred recipients per second.

use laneway_common::MessageId;
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::codec::{Reader, Writer};
use super::{Store, StoreError, TOKEN_EXPIRY, TOKENS, db};

/// Value layout version.
const VERSION: u8 = 1;
/// Recipient index of a whole-message token.
const WHOLE_MESSAGE: u16 = 0xFFFF;

/// What a bounce token stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The recipient address the message was sent to.
    pub recipient: String,
    /// The original envelope sender (before the bounce rewrite).
    pub sender: String,
    /// The sender domain whose suppression list a hard bounce goes to.
    pub sender_domain: String,
    /// The message's lane, 0–9.
    pub lane: u8,
    /// When the token stops being honoured, milliseconds since the Unix epoch.
    pub expires_at: u64,
}

impl TokenInfo {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(VERSION)
            .u8(self.lane)
            .u64(self.expires_at)
            .str(&self.recipient)
            .str(&self.sender)
            .str(&self.sender_domain);
        w.0
    }

    fn decode(bytes: &[u8]) -> Option<TokenInfo> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return None;
        }
        let info = TokenInfo {
            lane: r.u8()?,
            expires_at: r.u64()?,
            recipient: r.str()?,
            sender: r.str()?,
            sender_domain: r.str()?,
        };
        r.done().then_some(info)
    }
}

/// The 10-byte table key.
fn key(id: MessageId, rcpt: Option<u16>) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..8].copy_from_slice(&id.as_u64().to_be_bytes());
    k[8..].copy_from_slice(&rcpt.unwrap_or(WHOLE_MESSAGE).to_be_bytes());
    k
}

/// The expiry-index key: `expires_at` then the token key.
fn expiry_key(expires_at: u64, token: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + token.len());
    k.extend_from_slice(&expires_at.to_be_bytes());
    k.extend_from_slice(token);
    k
}

impl Store {
    /// Records one token. Prefer [`Store::remember_many`] for the
    /// recipients of a message.
    pub fn remember(
        &self,
        id: MessageId,
        rcpt: Option<u16>,
        info: &TokenInfo,
    ) -> Result<(), StoreError> {
        self.write_tokens(std::iter::once((id, rcpt, info)))
    }

    /// Records many tokens in one durable transaction (one fsync).
    /// Recording a token again replaces it.
    pub fn remember_many(
        &self,
        entries: &[(MessageId, Option<u16>, TokenInfo)],
    ) -> Result<(), StoreError> {
        self.write_tokens(entries.iter().map(|(id, rcpt, info)| (*id, *rcpt, info)))
    }

    fn write_tokens<'a>(
        &self,
        entries: impl Iterator<Item = (MessageId, Option<u16>, &'a TokenInfo)>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db)?;
        insert_tokens(&txn, entries)?;
        txn.commit().map_err(db)
    }

    /// The token for message `id`, recipient `rcpt`, if recorded and not
    /// yet purged. Callers compare `expires_at` with their clock: an
    /// expired token stays readable until [`Store::purge_expired`] runs.
    pub fn lookup(
        &self,
        id: MessageId,
        rcpt: Option<u16>,
    ) -> Result<Option<TokenInfo>, StoreError> {
        let txn = redb::ReadableDatabase::begin_read(&*self.db).map_err(db)?;
        let table = txn.open_table(TOKENS).map_err(db)?;
        let Some(v) = table.get(key(id, rcpt).as_slice()).map_err(db)? else {
            return Ok(None);
        };
        TokenInfo::decode(v.value())
            .map(Some)
            .ok_or(StoreError::Corrupt("tokens"))
    }

    /// Deletes every token with `expires_at <= now` (milliseconds since the
    /// Unix epoch) in one transaction; returns how many tokens went. Meant to run
    /// periodically (e.g. hourly), so each run removes one period's worth.
    pub fn purge_expired(&self, now: u64) -> Result<usize, StoreError> {
        let txn = self.db.begin_write().map_err(db)?;
        let n = {
            let mut tokens = txn.open_table(TOKENS).map_err(db)?;
            let mut expiry = txn.open_table(TOKEN_EXPIRY).map_err(db)?;
            let end = expiry_key(now, &[0xFF; 10]);
            let mut expired: Vec<Vec<u8>> = Vec::new();
            for entry in expiry.range::<&[u8]>(..=end.as_slice()).map_err(db)? {
                let (k, ()) = entry
                    .map(|(k, v)| (k.value().to_vec(), v.value()))
                    .map_err(db)?;
                expired.push(k);
            }
            let mut removed = 0;
            for k in &expired {
                expiry.remove(k.as_slice()).map_err(db)?;
                // Only if the token still carries this expiry; a corrupt
                // value is useless and goes too.
                let current = tokens
                    .get(&k[8..])
                    .map_err(db)?
                    .map(|v| TokenInfo::decode(v.value()).map(|i| i.expires_at));
                if let Some(expires_at) = current
                    && expires_at.is_none_or(|t| t <= now)
                {
                    tokens.remove(&k[8..]).map_err(db)?;
                    removed += 1;
                }
            }
            removed
        };
        txn.commit().map_err(db)?;
        Ok(n)
    }
}

/// A page of [`Store::tokens`].
pub type TokenPage = (
    Vec<(MessageId, Option<u16>, TokenInfo)>,
    Option<(MessageId, Option<u16>)>,
);

impl Store {
    /// Up to `limit` tokens that expire after `now` (ms), in key order after
    /// `after`, and where the next page starts (`None` at the end): for
    /// copying every live token somewhere else.
    pub fn tokens(
        &self,
        after: Option<(MessageId, Option<u16>)>,
        limit: usize,
        now: u64,
    ) -> Result<TokenPage, StoreError> {
        let txn = redb::ReadableDatabase::begin_read(&*self.db).map_err(db)?;
        let table = txn.open_table(TOKENS).map_err(db)?;
        let start = after.map(|(id, r)| key(id, r));
        let range = match &start {
            Some(k) => (
                std::ops::Bound::Excluded(k.as_slice()),
                std::ops::Bound::Unbounded,
            ),
            None => (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
        };
        let mut out = Vec::new();
        for entry in table.range::<&[u8]>(range).map_err(db)? {
            let (k, v) = entry.map_err(db)?;
            let k = k.value();
            let Ok(head) = <[u8; 8]>::try_from(&k[..k.len().min(8)]) else {
                return Err(StoreError::Corrupt("tokens"));
            };
            if k.len() != 10 {
                return Err(StoreError::Corrupt("tokens"));
            }
            let id = MessageId::from_u64(u64::from_be_bytes(head));
            let idx = u16::from_be_bytes([k[8], k[9]]);
            let rcpt = (idx != WHOLE_MESSAGE).then_some(idx);
            let info = TokenInfo::decode(v.value()).ok_or(StoreError::Corrupt("tokens"))?;
            if info.expires_at > now {
                out.push((id, rcpt, info));
            }
            if out.len() == limit.max(1) {
                return Ok((out, Some((id, rcpt))));
            }
        }
        Ok((out, None))
    }
}

/// Inserts tokens and their expiry-index entries into `txn`.
fn insert_tokens<'a>(
    txn: &WriteTransaction,
    entries: impl Iterator<Item = (MessageId, Option<u16>, &'a TokenInfo)>,
) -> Result<(), StoreError> {
    let mut tokens = txn.open_table(TOKENS).map_err(db)?;
    let mut expiry = txn.open_table(TOKEN_EXPIRY).map_err(db)?;
    for (id, rcpt, info) in entries {
        let k = key(id, rcpt);
        let old = tokens
            .insert(k.as_slice(), info.encode().as_slice())
            .map_err(db)?
            .and_then(|v| TokenInfo::decode(v.value()));
        if let Some(old) = old {
            expiry
                .remove(expiry_key(old.expires_at, &k).as_slice())
                .map_err(db)?;
        }
        expiry
            .insert(expiry_key(info.expires_at, &k).as_slice(), ())
            .map_err(db)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(n: u32, expires_at: u64) -> TokenInfo {
        TokenInfo {
            recipient: format!("user{n}@example.net"),
            sender: "app@example.com".into(),
            sender_domain: "example.com".into(),
            lane: (n % 10) as u8,
            expires_at,
        }
    }

    fn open(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("auth.redb")).unwrap()
    }

    #[test]
    fn remember_and_lookup_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id = MessageId::from_u64(0xabc);
        {
            let s = open(&dir);
            s.remember(id, None, &info(0, 100)).unwrap();
            s.remember_many(&[(id, Some(0), info(1, 100)), (id, Some(1), info(2, 100))])
                .unwrap();
        }
        let s = open(&dir);
        assert_eq!(s.lookup(id, None).unwrap(), Some(info(0, 100)));
        assert_eq!(s.lookup(id, Some(0)).unwrap(), Some(info(1, 100)));
        assert_eq!(s.lookup(id, Some(1)).unwrap(), Some(info(2, 100)));
        assert_eq!(s.lookup(id, Some(2)).unwrap(), None);
        assert_eq!(s.lookup(MessageId::from_u64(0xabd), None).unwrap(), None);
    }

    #[tokio::test]
    async fn the_backend_suite() {
        let dir = tempfile::tempdir().unwrap();
        super::super::suite::tokens(&open(&dir)).await;
    }

    #[test]
    fn values_decode_strictly() {
        let i = info(3, 42);
        assert_eq!(TokenInfo::decode(&i.encode()), Some(i.clone()));
        let mut longer = i.encode();
        longer.push(0);
        assert_eq!(TokenInfo::decode(&longer), None);
        let mut other_version = i.encode();
        other_version[0] = 2;
        assert_eq!(TokenInfo::decode(&other_version), None);
        assert_eq!(TokenInfo::decode(&[]), None);
    }
}
