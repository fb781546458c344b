//! Sender authentication for Laneway: pure, deterministic building blocks
//! that the daemon composes at ingest and when mail comes back (DESIGN §1,
//! step 3).
//!
//! * [`bounce`]: signed VERP envelope senders (`b+<token>@<bounce
//!   domain>`) that name the message and recipient a bounce is about, so
//!   bounces are attributed by address, not by guessing from their text.
//! * [`dkim`]: DKIM signing with mail-auth — keys loaded and checked up
//!   front, dual signing, an injected clock so signatures are reproducible
//!   byte for byte — and key generation for `laneway dkim keygen`.
//! * [`report`]: reading returned mail (RFC 3464 DSNs, RFC 5965 ARF
//!   complaints, plain-text NDRs) and classifying SMTP status codes into
//!   hard, soft, policy, complaint and success.
//! * [`store`]: the redb file that survives restarts — what each bounce
//!   token stood for, and per-sender-domain suppression lists.
//!
//! Nothing here reads the clock, the network or global state: time comes
//! in as an argument, files are named by the caller. The store is
//! blocking; call it through `spawn_blocking` from async code.

pub mod bounce;
pub mod dkim;
pub mod report;
pub mod store;

pub use bounce::{BounceKey, KeyError, TokenError};
pub use dkim::{DkimError, KeygenError, Signer, keygen};
pub use report::{Bounced, Class, Kind, Returned, classify_status};
pub use store::{Scope, Store, StoreError, Suppression, TokenInfo};
