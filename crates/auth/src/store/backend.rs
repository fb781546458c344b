//! [`Store`] as a [`SuppressionStore`] and a [`TokenStore`]: each call
//! runs on tokio's blocking threads, never on an async worker (fsynced
//! commits and scans block), except the suppression check of a recipient,
//! a point read that redb serves from its cache (on a miss a `pread`,
//! from the page cache as a rule): it runs twice for every recipient (at
//! RCPT and at ingest), and the hop to a blocking thread and back cost
//! more than the read (two thread wake-ups each time; in the acceptance
//! benchmark two thirds of the daemon's futex calls).

use laneway_common::MessageId;

use super::{
    NewSuppression, Store, StoreError, StoreFuture, Suppression, SuppressionStore, TokenInfo,
    TokenStore,
};

/// Runs a blocking store call off the async threads.
fn blocking<'a, T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(Store) -> Result<T, StoreError> + Send + 'static,
) -> StoreFuture<'a, T> {
    let store = store.clone();
    Box::pin(async move {
        tokio::task::spawn_blocking(move || f(store))
            .await
            .unwrap_or_else(|e| Err(StoreError::Task(e.to_string())))
    })
}

impl SuppressionStore for Store {
    fn check<'a>(
        &'a self,
        sender_domain: &'a str,
        address: &'a str,
    ) -> StoreFuture<'a, Option<Suppression>> {
        // the inherent read, inline
        Box::pin(async move { Store::check(self, sender_domain, address) })
    }

    fn suppress<'a>(&'a self, n: &'a NewSuppression) -> StoreFuture<'a, Suppression> {
        let n = n.clone();
        blocking(self, move |s| s.suppress(&n))
    }

    fn unsuppress<'a>(&'a self, sender_domain: &'a str, address: &'a str) -> StoreFuture<'a, bool> {
        let (d, a) = (sender_domain.to_string(), address.to_string());
        blocking(self, move |s| s.unsuppress(&d, &a))
    }

    fn list<'a>(
        &'a self,
        sender_domain: Option<&'a str>,
        limit: usize,
        cursor: Option<&'a str>,
    ) -> StoreFuture<'a, (Vec<Suppression>, Option<String>)> {
        let (d, c) = (
            sender_domain.map(str::to_string),
            cursor.map(str::to_string),
        );
        blocking(self, move |s| s.list(d.as_deref(), limit, c.as_deref()))
    }

    fn count(&self) -> StoreFuture<'_, u64> {
        blocking(self, |s| s.count())
    }
}

impl TokenStore for Store {
    fn remember(&self, tokens: Vec<(MessageId, Option<u16>, TokenInfo)>) -> StoreFuture<'_, ()> {
        blocking(self, move |s| s.remember_many(&tokens))
    }

    fn lookup(&self, id: MessageId, rcpt: Option<u16>) -> StoreFuture<'_, Option<TokenInfo>> {
        blocking(self, move |s| s.lookup(id, rcpt))
    }

    fn purge_expired(&self, now_ms: u64) -> StoreFuture<'_, usize> {
        blocking(self, move |s| s.purge_expired(now_ms))
    }
}
