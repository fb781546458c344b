//! Opening a connection to a site: every host and address in turn, from
//! the lane's egress pool, with TLS as the policy in force demands —
//! DANE per host, MTA-STS, REQUIRETLS, the configured default — and AUTH
//! to a smarthost. A failure says whether any TCP connection was made (for
//! the site's health) and whether every host failed on TLS grounds (for
//! REQUIRETLS, which then bounces).

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use laneway_common::config::OutboundTls;
use laneway_common::metrics;

use crate::client::{self, Client, ClientError, TlsFailure};
use crate::dane::HostDane;
use crate::dispatch::Dispatcher;
use crate::policy::TlsPolicy;
use crate::resolve::Hop;
use crate::settings::{PoolSettings, Settings};

/// A connection that is open and ready for transactions.
pub(crate) struct Open {
    pub(crate) client: Client,
    /// The TLS policy it was made under.
    pub(crate) policy: TlsPolicy,
    /// The egress pool.
    pub(crate) pool: String,
    /// The source address bound, if the pool names any.
    pub(crate) source: Option<IpAddr>,
}

/// Why no connection could be opened.
pub(crate) struct OpenError {
    pub(crate) error: ClientError,
    /// A TCP connection was made to some host.
    pub(crate) connected: bool,
    /// Every host reached failed on TLS policy (no STARTTLS, a failed
    /// handshake or certificate, no REQUIRETLS) rather than on transport.
    pub(crate) tls_refused: bool,
}

impl Dispatcher {
    fn source_for(&self, pool: &PoolSettings, target: IpAddr) -> Option<IpAddr> {
        let fitting: Vec<IpAddr> = pool
            .sources
            .iter()
            .copied()
            .filter(|s| s.is_ipv4() == target.is_ipv4())
            .collect();
        if fitting.is_empty() {
            return None;
        }
        let n = self.source_turn.fetch_add(1, Ordering::Relaxed);
        Some(fitting[n % fitting.len()])
    }

    /// Counts a failed session for the TLS report of the hop's policy domain.
    pub(crate) fn report_failure(&self, hop: &Hop, e: &ClientError, mx: &str, ip: Option<IpAddr>) {
        let result = e
            .tls_failure()
            .unwrap_or(TlsFailure::ValidationFailure)
            .result_type();
        ::metrics::counter!(metrics::TLS_FAILURES, "direction" => "out", "reason" => result)
            .increment(1);
        if let Some((domain, r)) = &hop.report {
            self.reports.failure(domain, r, result, mx, ip);
        }
    }

    /// Connects to the first host that works. With `requiretls` (RFC 8689
    /// §4.2.1) the certificate is verified whatever the destination's
    /// mode, and the host must offer REQUIRETLS.
    pub(crate) async fn open(
        &self,
        hop: &Hop,
        pool: &PoolSettings,
        settings: &Settings,
        requiretls: bool,
    ) -> Result<Open, OpenError> {
        let mut last = match &hop.none_left {
            Some(why) => ClientError::Tls(TlsFailure::ValidationFailure, why.clone()),
            None => ClientError::Connect(format!("no address to connect to for {}", hop.hop.site)),
        };
        let mut connected = false;
        let mut other_failure = false;
        let tls = self.tls.load_full();
        let mode = if requiretls {
            OutboundTls::Verify
        } else {
            hop.tls
        };
        for host in &hop.hop.hosts {
            // DANE decides per host; the others keep the hop's policy
            let (mode, dane_config, policy) = match host.dane.as_deref() {
                Some(HostDane::Failed(e)) => {
                    last = ClientError::Tls(
                        TlsFailure::DnssecInvalid,
                        format!(
                            "{}: the TLSA lookup failed ({e}); not used without DANE",
                            host.name
                        ),
                    );
                    self.report_failure(hop, &last, &host.name, None);
                    continue;
                }
                Some(HostDane::Tlsa(records)) => {
                    match crate::dane::client_config(records.clone()) {
                        Ok(c) => (OutboundTls::Verify, Some(c), TlsPolicy::Dane),
                        Err(e) => {
                            last = ClientError::Tls(TlsFailure::ValidationFailure, e);
                            continue;
                        }
                    }
                }
                Some(HostDane::EncryptOnly) => (OutboundTls::Required, None, TlsPolicy::Dane),
                None if requiretls => (mode, None, TlsPolicy::Requiretls),
                None => match hop.policy {
                    Some(p) if p != TlsPolicy::Dane => (mode, None, p),
                    _ => (mode, None, TlsPolicy::from(mode)),
                },
            };
            let policy = if requiretls {
                TlsPolicy::Requiretls
            } else {
                policy
            };
            // MTA-STS testing mode checks the certificate as enforce would,
            // reports a failure, and then goes on without the check
            let testing = !requiretls && policy == TlsPolicy::MtaStsTesting;
            for addr in &host.addrs {
                let mut plain_only = mode == OutboundTls::None;
                let mut verify_testing = testing;
                loop {
                    let source = self.source_for(pool, addr.ip());
                    let tcp = match client::connect(*addr, source, settings.timeouts.connect).await
                    {
                        Ok(t) => t,
                        Err(e) => {
                            last = e;
                            other_failure = true;
                            break;
                        }
                    };
                    connected = true;
                    ::metrics::counter!(metrics::CONNECTIONS, "direction" => "out").increment(1);
                    let mut c =
                        match Client::start(tcp, &host.name, &pool.helo, settings.timeouts).await {
                            Ok(c) => c,
                            Err(e) => {
                                last = e;
                                other_failure = true;
                                break;
                            }
                        };
                    if !plain_only {
                        if c.caps.starttls {
                            let config = match &dane_config {
                                Some(c) => c.clone(),
                                None if mode == OutboundTls::Verify || verify_testing => {
                                    tls.verified.clone()
                                }
                                None => tls.any.clone(),
                            };
                            match c.starttls(config, &host.name, &pool.helo).await {
                                Ok(t) => c = t,
                                Err(e) if verify_testing => {
                                    self.report_failure(hop, &e, &host.name, Some(addr.ip()));
                                    tracing::warn!(host = %host.name, addr = %addr, error = %e, "MTA-STS (testing): the certificate fails the policy; delivering anyway");
                                    verify_testing = false;
                                    continue;
                                }
                                Err(e) if mode == OutboundTls::Opportunistic => {
                                    self.report_failure(hop, &e, &host.name, Some(addr.ip()));
                                    tracing::info!(host = %host.name, addr = %addr, error = %e, "TLS failed; retrying in plaintext (opportunistic)");
                                    plain_only = true;
                                    continue;
                                }
                                Err(e) => {
                                    other_failure |= e.tls_failure().is_none();
                                    self.report_failure(hop, &e, &host.name, Some(addr.ip()));
                                    last = e;
                                    break;
                                }
                            }
                        } else {
                            let e = ClientError::Tls(
                                TlsFailure::StarttlsNotSupported,
                                format!("{} does not offer STARTTLS; TLS is required", host.name),
                            );
                            self.report_failure(hop, &e, &host.name, Some(addr.ip()));
                            if matches!(mode, OutboundTls::Verify | OutboundTls::Required) {
                                last = e;
                                c.quit().await;
                                break;
                            }
                        }
                    }
                    if requiretls && !c.caps.requiretls {
                        last = ClientError::Tls(
                            TlsFailure::Unavailable,
                            format!("{} does not offer REQUIRETLS", host.name),
                        );
                        c.quit().await;
                        break;
                    }
                    if let Some(auth) = &hop.hop.auth {
                        if c.tls.is_none() {
                            last = ClientError::Tls(
                                TlsFailure::Unavailable,
                                format!(
                                    "refusing to send credentials to {} without TLS",
                                    host.name
                                ),
                            );
                            c.quit().await;
                            break;
                        }
                        if let Err(e) = c.auth_plain(&auth.0, &auth.1).await {
                            last = e;
                            other_failure = true;
                            c.quit().await;
                            break;
                        }
                    }
                    if c.tls.is_some() {
                        ::metrics::counter!(metrics::TLS, "direction" => "out").increment(1);
                    }
                    ::metrics::counter!(metrics::TLS_POLICY, "policy" => policy.as_str())
                        .increment(1);
                    // (a testing-mode session whose check failed was counted as a failure)
                    if let Some((domain, r)) = &hop.report
                        && c.tls.is_some()
                        && verify_testing == testing
                    {
                        self.reports.success(domain, r);
                    }
                    return Ok(Open {
                        client: c,
                        policy,
                        pool: pool.name.clone(),
                        source,
                    });
                }
            }
        }
        Err(OpenError {
            error: last,
            connected,
            tls_refused: connected && !other_failure,
        })
    }
}
