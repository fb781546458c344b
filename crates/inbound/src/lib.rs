//! Laneway's SMTP front door: listeners ([`listener`]), the ESMTP session
//! state machine ([`session`]), content framing that is immune to SMTP
//! smuggling ([`content`]), relay policy ([`policy`]), AUTH ([`auth`]) and
//! the settings a reload swaps ([`settings`]).
//!
//! Accepted messages are handed to the [`Ingest`] door; this crate knows
//! nothing of the spool, DKIM or the HTTP API.

pub mod auth;
pub mod content;
pub mod listener;
pub mod policy;
pub mod session;
pub mod settings;
#[doc(hidden)]
pub mod testing;

use std::sync::Arc;

use arc_swap::ArcSwap;
use laneway_common::{Ingest, Lifecycle};

pub use listener::serve;
pub use settings::Settings;

/// What every session shares: the current settings (swapped on reload),
/// the door into the spool and the daemon lifecycle.
pub struct Shared {
    /// Current settings.
    pub settings: ArcSwap<Settings>,
    /// Where accepted messages go.
    pub ingest: Arc<dyn Ingest>,
    /// Shutdown and activity tracking.
    pub lifecycle: Lifecycle,
}

impl Shared {
    /// A shared handle.
    pub fn new(settings: Settings, ingest: Arc<dyn Ingest>, lifecycle: Lifecycle) -> Arc<Shared> {
        Arc::new(Shared {
            settings: ArcSwap::from_pointee(settings),
            ingest,
            lifecycle,
        })
    }
}
