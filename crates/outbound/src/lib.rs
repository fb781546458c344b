//! Laneway's outbound side: next-hop resolution ([`lookup`]), the SMTP
//! client ([`client`]) with its TLS policy ([`tls`]), the dispatcher that
//! turns the lane scheduler's decisions into connections ([`dispatch`]),
//! delivery status notifications ([`dsn`]), delivery events ([`events`])
//! and recipient domains' MTA-STS policies ([`mta_sts`]).

pub mod client;
mod connect;
pub mod dane;
mod deliver;
pub mod dispatch;
pub mod dsn;
pub mod events;
pub mod lookup;
pub mod mta_sts;
pub mod policy;
mod resolve;
pub mod settings;
pub mod tls;
pub mod tlsrpt;

pub use dispatch::{Dispatcher, Hooks, Parts, PlainSender};
pub use dsn::DsnNotifier;
pub use events::Events;
pub use lookup::Lookup;
pub use policy::TlsPolicy;
pub use settings::Settings;
pub use tls::TlsClients;
pub use tlsrpt::ReportSettings;
