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
//! * [`store`]: what each bounce token stood for and per-sender-domain
//!   suppression lists, behind the [`TokenStore`] and [`SuppressionStore`]
//!   traits; [`Store`] (redb) is the local backend.
//! * [`policy`]: the decisions, pure — who may send as whom, sign or not,
//!   the VERP sender per recipient, what a returned message or a permanent
//!   failure means — from the configuration and a clock value passed in.
//! * [`unsubscribe`]: signed one-click unsubscribe links (RFC 8058) that
//!   name the recipient and the sender domain, so any node can act on one.
//! * [`service`]: [`SenderAuth`], the policy with the stores, the token
//!   writer ([`writer`]) and an event sink, as the daemon runs it.
//!
//! Nothing in `bounce`, `unsubscribe`, `dkim`, `report` and `policy` reads the clock,
//! the network or global state: time comes in as an argument, files are
//! named by the caller.

pub mod bounce;
pub mod dkim;
pub mod policy;
pub mod report;
pub mod service;
pub mod store;
pub mod unsubscribe;
pub mod writer;

pub use bounce::{BounceKey, KeyError, TokenError};
pub use dkim::{DkimError, KeygenError, Signer, keygen};
pub use policy::{Policy, alignment_warnings};
pub use report::{Bounced, Class, Kind, Returned, classify_status};
pub use service::SenderAuth;
pub use store::{Scope, Store, StoreError, Suppression, SuppressionStore, TokenInfo, TokenStore};
pub use unsubscribe::Unsubscribed;
