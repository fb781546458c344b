//! Limits a destination has across nodes (DESIGN §4a). The scheduler
//! keeps each node within a site's limits; with more than one node the
//! dispatcher also asks a [`SharedLimits`] — Redis leases and a GCRA in
//! `laneway-cluster` — before it opens a connection and before each
//! message, so that the whole cluster stays within them.

use std::sync::Arc;
use std::time::Duration;

use laneway_common::config::units::Rate;
use laneway_common::ingest::BoxFuture;

use super::SiteLimits;

/// A connection slot held at a site, given back with
/// [`SharedLimits::disconnect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The site it is for.
    pub site: Arc<str>,
    /// Its id (unique per node start and connection).
    pub id: String,
    /// Taken from the local share while the shared store was away.
    pub local: bool,
}

/// The answer to [`SharedLimits::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Go ahead; hand the lease back when the connection closes.
    Granted(Lease),
    /// Every slot is taken across the cluster: ask again after this.
    Full(Duration),
}

/// Limits shared with other nodes.
pub trait SharedLimits: Send + Sync + 'static {
    /// A connection slot at `site`: a regular connection may not take the
    /// last `limits.reserved` slots, a reserved one (urgent lanes) may.
    fn connect<'a>(
        &'a self,
        site: &'a str,
        limits: &'a SiteLimits,
        reserved: bool,
    ) -> BoxFuture<'a, Slot>;

    /// Gives a slot back.
    fn disconnect(&self, lease: Lease);

    /// One message's share of `site`'s rate: `None` to send now, else how
    /// long to wait before asking again.
    fn send<'a>(&'a self, site: &'a str, rate: Rate) -> BoxFuture<'a, Option<Duration>>;
}
