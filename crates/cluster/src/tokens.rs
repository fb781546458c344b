//! Bounce tokens shared by every node: a returned message may reach any
//! node behind the bounce domain's MX, whichever node sent the original.
//!
//! Each batch the token writer commits goes to the local store (durable)
//! and then, in one pipeline, to Redis as `<prefix>tok:<id>:<recipient>`
//! keys that expire with the bounce window. A lookup reads the local store
//! first and Redis for tokens of other nodes. Batches Redis could not take
//! wait in memory and are pushed when it answers again; a Redis that came
//! back empty is re-seeded with every live token of the local store.
//! While Redis is away a token of another node cannot be read: the lookup
//! fails (it does not say "unknown"), and the returned message is refused
//! with a temporary error, so its sender tries again later.

use std::sync::{Arc, Mutex};

use laneway_auth::store::{StoreFuture, TokenStore};
use laneway_auth::{Store, StoreError, TokenInfo};
use laneway_common::MessageId;

use crate::link::Link;

/// Tokens in one pipeline.
const BATCH: usize = 500;
/// Most tokens kept for Redis while it is away (about 200 bytes each);
/// past that the oldest are only in the local store.
const MAX_PENDING: usize = 1_000_000;

type Token = (MessageId, Option<u16>, TokenInfo);

/// [`TokenStore`] over the local store and Redis.
pub struct ClusterTokens {
    local: Store,
    link: Arc<Link>,
    pending: Mutex<Vec<Token>>,
}

impl ClusterTokens {
    /// The shared tokens over `local`, on its own connection to Redis at
    /// `url` (for tools and tests; a node gets its from [`crate::Cluster`]).
    pub fn connect(url: &str, prefix: &str, local: Store) -> Result<Self, String> {
        Ok(ClusterTokens::new(
            local,
            Arc::new(Link::new(url, None, prefix)?),
        ))
    }

    pub(crate) fn new(local: Store, link: Arc<Link>) -> ClusterTokens {
        ClusterTokens {
            local,
            link,
            pending: Mutex::new(Vec::new()),
        }
    }

    fn key(&self, id: MessageId, rcpt: Option<u16>) -> String {
        match rcpt {
            Some(i) => self.link.key(&format!("tok:{id}:{i}")),
            None => self.link.key(&format!("tok:{id}:m")),
        }
    }

    /// Writes tokens to Redis in pipelines; what is left when Redis stops
    /// answering is returned.
    async fn send(&self, tokens: Vec<Token>) -> Vec<Token> {
        let now = laneway_common::envelope::now_ms();
        let mut rest = tokens;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(BATCH));
            let mut pipe = redis::pipe();
            for (id, rcpt, info) in &rest {
                let ttl = info.expires_at.saturating_sub(now);
                if ttl == 0 {
                    continue;
                }
                let json = serde_json::to_string(info).unwrap_or_default();
                pipe.cmd("SET")
                    .arg(self.key(*id, *rcpt))
                    .arg(json)
                    .arg("PX")
                    .arg(ttl)
                    .ignore();
            }
            let r = self
                .link
                .call(false, |mut c| async move {
                    pipe.query_async::<()>(&mut c).await
                })
                .await;
            if r.is_err() {
                rest.extend(tail);
                return rest;
            }
            rest = tail;
        }
        Vec::new()
    }

    fn keep(&self, mut left: Vec<Token>) {
        if left.is_empty() {
            return;
        }
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.append(&mut left);
        if p.len() > MAX_PENDING {
            let over = p.len() - MAX_PENDING;
            p.drain(..over);
            tracing::warn!(
                dropped = over,
                "cluster: too many bounce tokens waiting for Redis; the oldest stay on this node only"
            );
        }
    }

    /// Pushes what waited for Redis; `Err` if Redis is still away.
    pub async fn flush(&self) -> Result<usize, String> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let n = pending.len();
        let left = self.send(pending).await;
        if left.is_empty() {
            Ok(n)
        } else {
            let k = left.len();
            self.keep(left);
            Err(format!("{k} bounce tokens still waiting for Redis"))
        }
    }

    /// Copies every live token of the local store to Redis (after Redis
    /// lost its data); how many.
    pub(crate) async fn reseed(&self) -> Result<usize, String> {
        let mut after = None;
        let mut n = 0;
        loop {
            let store = self.local.clone();
            let now = laneway_common::envelope::now_ms();
            let (page, next) = tokio::task::spawn_blocking(move || store.tokens(after, BATCH, now))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            n += page.len();
            if !self.send(page).await.is_empty() {
                return Err("Redis went away while re-seeding bounce tokens".into());
            }
            match next {
                Some(a) => after = Some(a),
                None => return Ok(n),
            }
        }
    }

    /// Tokens waiting for Redis.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl TokenStore for ClusterTokens {
    fn remember(&self, tokens: Vec<Token>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            TokenStore::remember(&self.local, tokens.clone()).await?;
            let left = self.send(tokens).await;
            self.keep(left);
            Ok(())
        })
    }

    fn lookup(&self, id: MessageId, rcpt: Option<u16>) -> StoreFuture<'_, Option<TokenInfo>> {
        Box::pin(async move {
            if let Some(t) = TokenStore::lookup(&self.local, id, rcpt).await? {
                return Ok(Some(t));
            }
            let key = self.key(id, rcpt);
            let v: Option<String> = self
                .link
                .call(true, |mut c| async move {
                    redis::cmd("GET").arg(&key).query_async(&mut c).await
                })
                .await
                .map_err(|e| StoreError::Backend(format!("bounce token of another node: {e}")))?;
            match v {
                None => Ok(None),
                Some(json) => serde_json::from_str(&json)
                    .map(Some)
                    .map_err(|_| StoreError::Corrupt("tokens (Redis)")),
            }
        })
    }

    fn purge_expired(&self, now_ms: u64) -> StoreFuture<'_, usize> {
        // Redis expires its copies by itself
        TokenStore::purge_expired(&self.local, now_ms)
    }
}
