//! Sender authentication for Laneway: pure, deterministic building blocks
//! the daemon composes at ingest and when mail comes back.
//!
//! * [`bounce`]: signed VERP envelope senders (`b+<token>@<bounce domain>`)
//!   that name the message and recipient a bounce is about.
//! * [`dkim`]: DKIM signing with mail-auth, an injected clock, dual
//!   signing, key loading with all problems reported at once, key
//!   generation.
//! * [`report`]: reading returned mail — RFC 3464 DSNs, RFC 5965 ARF
//!   complaints, plain-text NDRs — and classifying status codes.

pub mod bounce;
pub mod dkim;
pub mod report;

pub use bounce::{BounceKey, TokenError};
pub use dkim::{DkimError, Signer, keygen};
pub use report::{Bounced, Class, Kind, Returned, classify_status};
