//! Shared types of Laneway, the priority-lane SMTP relay: [`Priority`]
//! lanes, [`MessageId`]s, the [`Envelope`], the configuration schema, SMTP
//! [`Reply`]s and the mapping of errors to them, the [`Ingest`] door and the
//! daemon [`Lifecycle`].
//!
//! Every other crate depends on this one and on nothing else of Laneway's
//! for its interfaces (DESIGN §3).

pub mod admin;
pub mod bounce;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod envelope;
pub mod events;
pub mod headers;
pub mod http;
pub mod id;
pub mod ingest;
pub mod lifecycle;
pub mod logline;
pub mod metadata;
pub mod metrics;
pub mod priority;
pub mod reply;
pub mod token;

pub use config::Config;
pub use delivery::{Disposition, Outcome, Stage, Status};
pub use envelope::{Envelope, Origin, Recipient};
pub use id::MessageId;
pub use ingest::{Accepted, Ingest, LaneRequest, RecipientVerdict, Submission};
pub use lifecycle::{ActivityGuard, Lifecycle};
pub use priority::{LaneSet, Priority};
pub use reply::{IngestError, Reply};
