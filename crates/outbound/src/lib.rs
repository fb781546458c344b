//! Laneway's outbound side: next-hop resolution ([`lookup`]), the SMTP
//! client ([`client`]) with its TLS policy ([`tls`]), the dispatcher that
//! turns the lane scheduler's decisions into connections ([`dispatch`]),
//! delivery status notifications ([`dsn`]), recipient domains' TLS
//! policies ([`mta_sts`], [`dane`], [`policy`]) and TLS reports
//! ([`tlsrpt`]). Events go to the [`laneway_common::events::EventSink`]
//! the daemon gives it.

pub mod automation;
pub mod client;
mod connect;
pub mod dane;
mod deliver;
pub mod dispatch;
pub mod dsn;
pub mod lookup;
pub mod mta_sts;
pub mod policy;
mod resolve;
pub mod settings;
pub mod tls;
pub mod tlsrpt;

pub use automation::Automation;
pub use dispatch::{Dispatcher, Hooks, Parts, PlainSender};
pub use dsn::DsnNotifier;
pub use lookup::Lookup;
pub use policy::TlsPolicy;
pub use settings::Settings;
pub use tls::TlsClients;
pub use tlsrpt::ReportSettings;

/// The earlier of two optional times.
pub(crate) fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
