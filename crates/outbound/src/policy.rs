//! The TLS policy a connection is made under, named once: the sender's
//! demand (REQUIRETLS), the recipient domain's (DANE, MTA-STS), the
//! sender's waiver (`TLS-Required: No`), or Laneway's own setting. Events
//! and metrics report it by [`TlsPolicy::as_str`].

use laneway_common::config::OutboundTls;

/// The TLS policy of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsPolicy {
    /// RFC 8689: verified TLS to a host that offers REQUIRETLS.
    Requiretls,
    /// RFC 7672: the host's TLSA records decide.
    Dane,
    /// RFC 8461 `enforce`: verified TLS to a host the policy names.
    MtaSts,
    /// RFC 8461 `testing`: checked and reported, then delivered anyway.
    MtaStsTesting,
    /// RFC 8689 §5: the sender waived the recipient's policy.
    TlsRequiredNo,
    /// `[outbound] tls = "verify"`.
    Verify,
    /// `[outbound] tls = "required"`.
    Required,
    /// `[outbound] tls = "opportunistic"`.
    Opportunistic,
    /// `[outbound] tls = "none"`.
    None,
}

impl TlsPolicy {
    /// Every policy.
    pub const ALL: [TlsPolicy; 9] = [
        TlsPolicy::Requiretls,
        TlsPolicy::Dane,
        TlsPolicy::MtaSts,
        TlsPolicy::MtaStsTesting,
        TlsPolicy::TlsRequiredNo,
        TlsPolicy::Verify,
        TlsPolicy::Required,
        TlsPolicy::Opportunistic,
        TlsPolicy::None,
    ];

    /// The name in logs, events and `laneway_outbound_tls_policy_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsPolicy::Requiretls => "requiretls",
            TlsPolicy::Dane => "dane",
            TlsPolicy::MtaSts => "mta-sts",
            TlsPolicy::MtaStsTesting => "mta-sts-testing",
            TlsPolicy::TlsRequiredNo => "tls-required-no",
            TlsPolicy::Verify => "verify",
            TlsPolicy::Required => "required",
            TlsPolicy::Opportunistic => "opportunistic",
            TlsPolicy::None => "none",
        }
    }

    /// Whether the recipient domain's own policy (DANE, MTA-STS enforce)
    /// is in force — the ones `TLS-Required: No` may waive.
    pub fn is_recipient_policy(self) -> bool {
        matches!(self, TlsPolicy::Dane | TlsPolicy::MtaSts)
    }
}

impl From<OutboundTls> for TlsPolicy {
    fn from(t: OutboundTls) -> TlsPolicy {
        match t {
            OutboundTls::Opportunistic => TlsPolicy::Opportunistic,
            OutboundTls::Verify => TlsPolicy::Verify,
            OutboundTls::Required => TlsPolicy::Required,
            OutboundTls::None => TlsPolicy::None,
        }
    }
}

impl std::fmt::Display for TlsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
