//! Laneway's spool: the fsync-durable, sharded on-disk store with one
//! directory tree per priority lane ([`store`]), its file format
//! ([`format`]), per-message delivery state ([`state`]) and the journal
//! that records delivery outcomes with group commit ([`journal`]).
//!
//! Once [`DiskStore::put`] returns (or the commit [`DiskStore::stage`]
//! gives resolves), the message is on disk: its bytes are in the journal,
//! fdatasynced; only then does a front door say `250`/`202`.

pub mod format;
pub mod journal;
mod layout;
pub mod queue;
pub mod state;
pub mod store;

pub use state::{MessageState, RcptState, RcptStatus};
pub use store::{
    DiskStore, LaneCounts, OpenError, Recovered, RecoveryReport, Scan, Spooled, lane_counts,
};
