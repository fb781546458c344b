//! The embedded store behind bounce handling: which message and recipient
//! each bounce token stands for, and which addresses not to send to.
//!
//! Both must survive restarts — a bounce can come back days after the
//! message left — so they live in one [redb] file (pure Rust, ACID, one
//! writer and many readers, crash-safe copy-on-write B-trees). Every
//! commit is durable: redb's default `Durability::Immediate` fsyncs before
//! `commit` returns, and this module never lowers it.
//!
//! Three tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `tokens` | message id (8 bytes BE) + recipient index (2 bytes BE, `0xFFFF` = whole message) | [`TokenInfo`], compact binary |
//! | `token_expiry` | `expires_at` (8 bytes BE) + token key | — |
//! | `suppressions` | lower-cased sender domain, NUL, normalised address | scope, since, reason |
//!
//! The expiry index lets [`Store::purge_expired`] visit only what expired
//! instead of every token. Values carry a version byte so the format can
//! grow.
//!
//! The daemon reaches the stores through the [`SuppressionStore`] and
//! [`TokenStore`] traits (DESIGN §3): [`Store`] is the local (redb)
//! backend, whose blocking calls the trait methods run on tokio's
//! blocking threads; the cluster crate adds the shared one. [`suite`]
//! holds the one test suite every backend must pass. [`Store`] is a cheap
//! `Clone` handle (an `Arc` inside) and `Send + Sync`; its inherent
//! methods block.

mod backend;
mod codec;
#[cfg(any(test, feature = "test-suite"))]
pub mod suite;
mod suppressions;
mod tokens;

use std::path::Path;
use std::sync::Arc;

use laneway_common::MessageId;
use laneway_common::ingest::BoxFuture;
use redb::{Database, TableDefinition};

pub use suppressions::{Scope, Suppression, normalised};
pub use tokens::{TokenInfo, TokenPage};

/// A suppression to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSuppression {
    /// The sender domain whose list it goes on.
    pub sender_domain: String,
    /// The recipient.
    pub address: String,
    /// Why.
    pub reason: String,
    /// Which mail it stops.
    pub scope: Scope,
    /// When, seconds since the Unix epoch.
    pub since: u64,
}

impl NewSuppression {
    /// A suppression of `address` for `sender_domain`.
    pub fn new(
        sender_domain: impl Into<String>,
        address: impl Into<String>,
        reason: impl Into<String>,
        scope: Scope,
        since: u64,
    ) -> NewSuppression {
        NewSuppression {
            sender_domain: sender_domain.into(),
            address: address.into(),
            reason: reason.into(),
            scope,
            since,
        }
    }
}

/// What store futures resolve to.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// Per-sender-domain suppression lists (see [`suppressions`] for the
/// matching rules every backend follows).
pub trait SuppressionStore: Send + Sync + 'static {
    /// The entry for `address` under `sender_domain`, if any.
    fn check<'a>(
        &'a self,
        sender_domain: &'a str,
        address: &'a str,
    ) -> StoreFuture<'a, Option<Suppression>>;

    /// Records a suppression (durably before the future resolves) and
    /// returns the entry now stored: the new one, or the existing one
    /// when that already covers at least its scope.
    fn suppress<'a>(&'a self, s: &'a NewSuppression) -> StoreFuture<'a, Suppression>;

    /// Removes an entry; `true` if there was one.
    fn unsuppress<'a>(&'a self, sender_domain: &'a str, address: &'a str) -> StoreFuture<'a, bool>;

    /// A page of entries in (sender domain, address) order after `cursor`,
    /// and the cursor of the next page.
    fn list<'a>(
        &'a self,
        sender_domain: Option<&'a str>,
        limit: usize,
        cursor: Option<&'a str>,
    ) -> StoreFuture<'a, (Vec<Suppression>, Option<String>)>;

    /// Number of entries, every sender domain together.
    fn count(&self) -> StoreFuture<'_, u64>;
}

/// What each bounce token stood for, until it expires.
pub trait TokenStore: Send + Sync + 'static {
    /// Records tokens, all durable before the future resolves.
    fn remember(&self, tokens: Vec<(MessageId, Option<u16>, TokenInfo)>) -> StoreFuture<'_, ()>;

    /// What a token stands for.
    fn lookup(&self, id: MessageId, rcpt: Option<u16>) -> StoreFuture<'_, Option<TokenInfo>>;

    /// Forgets tokens whose `expires_at` is before `now_ms`; how many.
    fn purge_expired(&self, now_ms: u64) -> StoreFuture<'_, usize>;
}

const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tokens");
const TOKEN_EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("token_expiry");
const SUPPRESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("suppressions");

/// Handle to the auth database file (e.g. `<spool_dir>/auth.redb`).
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb could not open, read or commit (I/O error, full disk, the file
    /// is open in another process, corruption).
    #[error("auth store: {0}")]
    Db(#[from] redb::Error),
    /// A stored value could not be decoded.
    #[error("auth store: corrupt entry in table {0}")]
    Corrupt(&'static str),
    /// An argument cannot be stored (empty, or containing NUL).
    #[error("auth store: invalid {what}: {value:?}")]
    Invalid {
        /// What was wrong: `"sender domain"`, `"address"`, …
        what: &'static str,
        /// The rejected value.
        value: String,
    },
    /// A pagination cursor that this store did not hand out.
    #[error("auth store: invalid cursor {0:?}")]
    BadCursor(String),
    /// The blocking task running the call failed.
    #[error("auth store: task failed: {0}")]
    Task(String),
    /// A shared (networked) backend could not be reached or answered
    /// something unexpected.
    #[error("auth store: {0}")]
    Backend(String),
}

/// Converts any redb error.
fn db<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into())
}

impl Store {
    /// Opens the database at `path`, creating the file and its tables when
    /// missing. Fails if another process holds the file open.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // not redb's default 1 GiB cache: the kernel's page cache holds the
        // file, this only the pages lookups keep touching
        let database = Database::builder()
            .set_cache_size(16 << 20)
            .create(path)
            .map_err(db)?;
        let txn = database.begin_write().map_err(db)?;
        txn.open_table(TOKENS).map_err(db)?;
        txn.open_table(TOKEN_EXPIRY).map_err(db)?;
        txn.open_table(SUPPRESSIONS).map_err(db)?;
        txn.commit().map_err(db)?;
        Ok(Store {
            db: Arc::new(database),
        })
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shareable_between_threads() {
        fn shared<T: Send + Sync + Clone + 'static>() {}
        shared::<Store>();
    }

    #[test]
    fn one_process_one_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.redb");
        let a = Store::open(&path).unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(err.to_string().contains("auth store"), "{err}");
        drop(a);
        Store::open(&path).expect("reopens after close");
    }

    #[test]
    fn not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.redb");
        std::fs::write(
            &path,
            b"this is not a redb file, just some text that is long enough",
        )
        .unwrap();
        assert!(matches!(Store::open(&path), Err(StoreError::Db(_))));
    }
}
