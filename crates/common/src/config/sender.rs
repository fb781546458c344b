//! `[auth]` and `[[domain]]` with `[[domain.dkim]]`: sender authentication.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::units::{self};
use crate::priority::{LaneSet, Priority};

/// `[auth]`: sender authentication settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// File whose bytes (trailing whitespace trimmed, ≥ 16 bytes) key the
    /// bounce-address HMAC. Required when any `[[domain]]` has a bounce domain.
    pub bounce_secret_file: Option<PathBuf>,
    /// One envelope sender (and transaction) per recipient. Default true.
    pub verp: bool,
    /// How long bounce tokens stay decodable. Default `"30d"`.
    #[serde(deserialize_with = "units::duration")]
    pub bounce_window: Duration,
    /// Bounce domain for trusted senders whose domain has no `[[domain]]`.
    pub default_bounce_domain: Option<String>,
    /// Also forward returned bounces to the original sender. Default false.
    pub forward_bounces: bool,
    /// Lanes at or above this are transactional: complaints do not suppress
    /// them. Default 5.
    pub transactional_min_lane: Priority,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            bounce_secret_file: None,
            verp: true,
            bounce_window: Duration::from_secs(30 * 86400),
            default_bounce_domain: None,
            forward_bounces: false,
            transactional_min_lane: Priority::new(5).expect("valid lane"),
        }
    }
}

/// DKIM signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DkimAlgorithm {
    /// RSA with SHA-256 (RFC 8301), 2048 bits or more.
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    /// Ed25519 with SHA-256 (RFC 8463).
    #[serde(rename = "ed25519-sha256")]
    Ed25519Sha256,
}

/// `[[domain]]`: a sender domain Laneway signs and rewrites for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderDomain {
    /// The sender domain (From / MAIL FROM).
    pub name: String,
    /// Where bounces for this domain's mail go (envelope sender domain).
    #[serde(default)]
    pub bounce_domain: Option<String>,
    /// Only relay this domain's mail over verified TLS (RFC 8689 semantics).
    #[serde(default)]
    pub require_tls: bool,
    /// One-click unsubscribe for this domain's bulk mail.
    #[serde(default)]
    pub unsubscribe: Option<Unsubscribe>,
    /// `[[domain.dkim]]`: signing keys; two entries sign twice.
    #[serde(default)]
    pub dkim: Vec<DkimKey>,
}

/// `[[domain]] unsubscribe = { lanes = "0-4", base_url = "https://…" }`:
/// one-click unsubscribe (RFC 8058) added to this domain's bulk mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unsubscribe {
    /// The lanes whose mail gets the headers. Default `"0-4"`.
    #[serde(default = "bulk_lanes")]
    pub lanes: LaneSet,
    /// Where the links point: `<base_url>/u/<token>` must reach Laneway's
    /// HTTP API (directly or through a proxy). http:// or https://.
    pub base_url: String,
}

fn bulk_lanes() -> LaneSet {
    "0-4".parse().expect("valid lanes")
}

/// `[[domain.dkim]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKey {
    /// The selector (`s=`).
    pub selector: String,
    /// PEM private key file.
    pub key: PathBuf,
    /// `"rsa-sha256"` or `"ed25519-sha256"`.
    pub algorithm: DkimAlgorithm,
}
