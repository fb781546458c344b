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
//! The store is blocking: call it from async code with
//! `tokio::task::spawn_blocking`. [`Store`] is a cheap `Clone` handle
//! (an `Arc` inside) and `Send + Sync`.

mod codec;
mod suppressions;
mod tokens;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, TableDefinition};

pub use suppressions::{Scope, Suppression};
pub use tokens::TokenInfo;

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
}

/// Converts any redb error.
fn db<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into())
}

impl Store {
    /// Opens the database at `path`, creating the file and its tables when
    /// missing. Fails if another process holds the file open.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let database = Database::create(path).map_err(db)?;
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
