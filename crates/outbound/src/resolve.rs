//! Resolving a recipient domain to a site the scheduler can open
//! connections to: the next hop from [`crate::lookup`], then the recipient
//! domain's TLS policy — DANE first (RFC 8461 §2: it takes precedence over
//! MTA-STS), else MTA-STS — which may filter the MX hosts and give the
//! domain a site of its own.

use std::sync::Arc;

use laneway_common::config::OutboundTls;
use laneway_spool::queue::SiteInfo;

use crate::client::TlsFailure;
use crate::dane::HostDane;
use crate::dispatch::Dispatcher;
use crate::lookup::{Lookup, NextHop};
use crate::mta_sts::Mode;
use crate::policy::TlsPolicy;
use crate::settings::Settings;
use crate::tlsrpt::PolicyRef;

/// A site's next hop and the TLS policy for it.
#[derive(Debug, Clone)]
pub(crate) struct Hop {
    pub(crate) hop: NextHop,
    pub(crate) tls: OutboundTls,
    /// A recipient-side policy in force (DANE, MTA-STS, MTA-STS testing),
    /// or the sender's waiver of one.
    pub(crate) policy: Option<TlsPolicy>,
    /// The policy domain and policy that TLS reports count against.
    pub(crate) report: Option<(String, Arc<PolicyRef>)>,
    /// Under DANE or MTA-STS: the domain's MX hosts with no recipient
    /// policy, for messages marked `TLS-Required: No` (RFC 8689 §5) that
    /// the policy would stop.
    pub(crate) fallback: Option<(NextHop, OutboundTls)>,
    /// Why no host is left (MTA-STS names none of the MX hosts).
    pub(crate) none_left: Option<String>,
    /// The shaping's `idle_timeout` for the site, if it sets one.
    pub(crate) idle_timeout: Option<std::time::Duration>,
}

impl Dispatcher {
    /// Resolves `domain` and tells the scheduler its site; on failure the
    /// work waiting for it is completed with the typed DNS result.
    pub(crate) async fn resolve(self: Arc<Self>, domain: Arc<str>) {
        let Ok(_permit) = self.resolving.acquire().await else {
            return;
        };
        let lookup = self.lookup.load_full();
        match lookup.next_hop(&domain).await {
            Ok(mut hop) => {
                let settings = self.settings.load_full();
                // MX rollup: a domain whose MX hosts belong to a provider
                // of the shaping files shares the provider's site
                let names: Vec<String> = match hop.mx {
                    true => hop.hosts.iter().map(|h| h.name.clone()).collect(),
                    false => Vec::new(),
                };
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let shaped = settings.shaped(&domain, &names);
                let limits = settings.limits_for(&domain, shaped);
                let provider = shaped.and_then(|s| s.provider);
                if let Some(p) = provider {
                    hop.site = format!("provider={p}").into();
                }
                let shaped_tls = shaped.and_then(|s| s.entry.tls);
                let mut hop = self
                    .policy(&domain, hop, &lookup, &settings, shaped_tls)
                    .await;
                hop.idle_timeout = shaped.and_then(|s| s.entry.idle_timeout);
                let site = hop.hop.site.clone();
                let name: Option<Arc<str>> = shaped.map(|s| Arc::from(s.name));
                self.shaping_names
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(domain.clone(), name.clone());
                let info = SiteInfo {
                    key: site.clone(),
                    limits,
                    ttl_ms: hop.hop.ttl.as_millis() as u64,
                    shaping: name,
                };
                tracing::debug!(domain = %domain, site = %site, provider = provider.unwrap_or("-"), hosts = hop.hop.hosts.len(), "resolved");
                self.hops
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(site, hop);
                self.queue.resolved(&domain, info);
            }
            Err(outcome) => {
                tracing::info!(domain = %domain, error = %outcome, "no next hop");
                for item in self.queue.resolve_failed(&domain, outcome.is_permanent()) {
                    self.finish_all(item, outcome.clone());
                }
            }
        }
    }

    /// Applies the recipient domain's TLS policy to its next hop.
    async fn policy(
        &self,
        domain: &str,
        mut hop: NextHop,
        lookup: &Lookup,
        settings: &Settings,
        shaped_tls: Option<OutboundTls>,
    ) -> Hop {
        let mut tls = hop
            .tls
            .or_else(|| settings.destination(domain).and_then(|d| d.tls))
            .or(shaped_tls)
            .unwrap_or(settings.tls);
        let mut policy = None;
        let mut report: Option<Arc<PolicyRef>> = None;
        let mut none_left = None;
        let unfiltered = (hop.clone(), tls);
        if settings.dane
            && hop.mx
            && let Some((server, timeout)) = lookup.dnssec()
            && crate::dane::mx_secure(server, domain, timeout).await
        {
            let port = lookup.port();
            for h in &mut hop.hosts {
                if let Some(d) = crate::dane::host(server, &h.name, port, timeout).await {
                    tracing::debug!(domain = %domain, host = %h.name, dane = ?d, "DANE");
                    h.dane = Some(Arc::new(d));
                    policy = Some(TlsPolicy::Dane);
                }
            }
            if policy.is_some() {
                hop.site = format!("{} dane={domain}", hop.site).into();
                let strings = hop
                    .hosts
                    .iter()
                    .filter_map(|h| match h.dane.as_deref() {
                        Some(HostDane::Tlsa(r)) => Some(r),
                        _ => None,
                    })
                    .flatten()
                    .map(|t| {
                        let hex = data_encoding::HEXLOWER.encode(&t.data);
                        format!("{} {} {} {hex}", t.usage, t.selector, t.matching)
                    })
                    .collect();
                report = Some(Arc::new(PolicyRef {
                    kind: "tlsa",
                    strings,
                    mx: Vec::new(),
                }));
            }
        }
        if policy.is_none() && settings.mta_sts && hop.mx {
            let found = self.mta_sts(domain, lookup, settings).await;
            let sts_ref = found.as_ref().map(|p| {
                let mode = if p.mode == Mode::Enforce {
                    "enforce"
                } else {
                    "testing"
                };
                let mut strings = vec!["version: STSv1".to_string(), format!("mode: {mode}")];
                strings.extend(p.mx.iter().map(|m| format!("mx: {m}")));
                strings.push(format!("max_age: {}", p.max_age.as_secs()));
                Arc::new(PolicyRef {
                    kind: "sts",
                    strings,
                    mx: p.mx.clone(),
                })
            });
            let misfit = TlsFailure::ValidationFailure.result_type();
            match found {
                Some(p) if p.mode == Mode::Enforce => {
                    let r = sts_ref.clone().expect("a policy");
                    for h in hop.hosts.iter().filter(|h| !p.matches(&h.name)) {
                        self.reports.failure(domain, &r, misfit, &h.name, None);
                    }
                    hop.hosts.retain(|h| p.matches(&h.name));
                    if hop.hosts.is_empty() {
                        tracing::warn!(domain = %domain, mx = ?p.mx, "MTA-STS (enforce): no MX host matches the policy; deferring");
                        none_left = Some(format!(
                            "MTA-STS policy of {domain} (enforce, id {}) names none of its MX hosts",
                            p.id
                        ));
                    }
                    // only verified TLS to the named hosts; a site of
                    // its own so no other domain's connection carries it
                    tls = OutboundTls::Verify;
                    hop.site = format!("{} mta-sts={domain}", hop.site).into();
                    policy = Some(TlsPolicy::MtaSts);
                    report = sts_ref;
                }
                Some(p) if p.mode == Mode::Testing => {
                    let misfits: Vec<&str> = hop
                        .hosts
                        .iter()
                        .filter(|h| !p.matches(&h.name))
                        .map(|h| h.name.as_str())
                        .collect();
                    if !misfits.is_empty() {
                        tracing::warn!(domain = %domain, hosts = ?misfits, mx = ?p.mx, "MTA-STS (testing): MX hosts outside the policy; delivering anyway");
                    }
                    let r = sts_ref.clone().expect("a policy");
                    for h in misfits {
                        self.reports.failure(domain, &r, misfit, h, None);
                    }
                    // labelled (and later reported) for this policy
                    // only: a site of its own here too
                    hop.site = format!("{} mta-sts-testing={domain}", hop.site).into();
                    policy = Some(TlsPolicy::MtaStsTesting);
                    report = sts_ref;
                }
                _ => {}
            }
        }
        // Domains that share hosts but not a TLS policy must not share
        // connections: a connection made for an opportunistic domain could
        // otherwise carry mail that requires TLS.
        if tls != settings.tls {
            hop.site = format!("{} tls={}", hop.site, TlsPolicy::from(tls)).into();
        }
        Hop {
            hop,
            tls,
            policy,
            report: report.map(|r| (domain.to_string(), r)),
            fallback: policy
                .is_some_and(TlsPolicy::is_recipient_policy)
                .then_some(unfiltered),
            none_left,
            idle_timeout: None,
        }
    }

    /// The MTA-STS policy in force for `domain`, if any.
    async fn mta_sts(
        &self,
        domain: &str,
        lookup: &Lookup,
        settings: &Settings,
    ) -> Option<Arc<crate::mta_sts::Policy>> {
        let txt = lookup.mta_sts_txt(domain).await;
        let tls = self.tls.load().verified.clone();
        let (port, timeout) = (
            settings.mta_sts_port,
            settings.timeouts.connect.min(crate::mta_sts::FETCH_TIMEOUT),
        );
        self.sts
            .policy(domain, txt, |id| async move {
                let (addrs, _) = lookup.addresses(&format!("mta-sts.{domain}"), port).await;
                crate::mta_sts::fetch(domain, &id, &addrs, tls, timeout).await
            })
            .await
    }
}
