//! Next-hop resolution (RFC 5321 §5.1, RFC 7505): a static `[[route]]`, the
//! `*` smarthost, or the MX records of the domain — preference order,
//! random among equal preference, every address of every host (IPv4 and
//! IPv6, a failed lookup of one family never hiding the other), the implicit
//! MX when there is none, null MX and NXDOMAIN as permanent failures, and
//! every other DNS trouble as a reason to try again later. Hosts that are
//! Laneway itself, and every worse-preference host, are dropped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use laneway_common::config::{Dns, OutboundTls, Route};
use laneway_common::delivery::{Outcome, Stage, Status};
use rand::seq::SliceRandom;

/// Why a domain has no usable next hop: a typed result at
/// [`Stage::Dns`], permanent only for NXDOMAIN of the recipient domain
/// (5.1.2), a null MX (5.1.10), no MX and no address (5.1.2), no MX host
/// with an address (5.4.4) and a loop back to Laneway (5.4.6); every other
/// DNS trouble (SERVFAIL, REFUSED, NOTIMP, FORMERR, timeouts) is transient.
pub type HopError = Outcome;

fn permanent(status: Status, detail: String) -> HopError {
    Outcome::permanent(Stage::Dns, status, detail)
}

fn dns_transient(status: Status, detail: String) -> HopError {
    Outcome::transient(Stage::Dns, status, detail)
}

/// One host to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its name (for TLS verification and logs).
    pub name: String,
    /// Its addresses with the port, in the order to try them.
    pub addrs: Vec<SocketAddr>,
    /// What DANE says about it, when DANE applies.
    pub dane: Option<Arc<crate::dane::HostDane>>,
}

/// Where a domain's mail goes.
#[derive(Debug, Clone)]
pub struct NextHop {
    /// Site key: domains with the same next hop share one (and its limits).
    pub site: Arc<str>,
    /// Hosts in the order to try them.
    pub hosts: Vec<Host>,
    /// TLS policy of a route, if it sets one.
    pub tls: Option<OutboundTls>,
    /// AUTH credentials for a route (user, password).
    pub auth: Option<Arc<(String, String)>>,
    /// How long this answer holds.
    pub ttl: Duration,
    /// It came from the domain's MX records (not a route): recipient-side
    /// policies (MTA-STS) apply.
    pub mx: bool,
}

/// Resolves recipient domains to next hops.
pub struct Lookup {
    resolver: TokioResolver,
    routes: Vec<Route>,
    port: u16,
    own: Vec<SocketAddr>,
    /// The validating resolver whose AD bit is trusted, and its timeout.
    dnssec: Option<(SocketAddr, Duration)>,
}

/// Builds the DNS resolver: the `[dns] nameservers` if given, else the
/// system's (`/etc/resolv.conf`). `/etc/hosts` is never consulted for mail
/// routing.
pub fn resolver(dns: &Dns) -> Result<TokioResolver, String> {
    let mut builder = if dns.nameservers.is_empty() {
        Resolver::builder_tokio()
            .map_err(|e| format!("reading the system resolver configuration: {e}"))?
    } else {
        let servers = dns
            .nameservers
            .iter()
            .map(|sa| {
                let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
                for c in &mut ns.connections {
                    c.port = sa.port();
                }
                ns
            })
            .collect();
        Resolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = dns.timeout;
    opts.attempts = dns.attempts;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.ndots = 0;
    builder
        .build()
        .map_err(|e| format!("building the DNS resolver: {e}"))
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// Splits a route's `via` into host and port: `host:port`, `[ip]:port`,
/// `ip:port`, `host`, `[ipv6]`.
pub fn parse_via(via: &str, default_port: u16) -> Result<(String, u16), String> {
    let via = via.trim();
    if let Ok(sa) = via.parse::<SocketAddr>() {
        return Ok((sa.ip().to_string(), sa.port()));
    }
    if let Some(rest) = via.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("route via {via:?}: missing ]"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| format!("route via {via:?}: bad port"))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("route via {via:?}: junk after ]")),
        };
        return Ok((host.to_string(), port));
    }
    match via.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Ok((
            h.to_string(),
            p.parse()
                .map_err(|_| format!("route via {via:?}: bad port"))?,
        )),
        _ => Ok((via.to_string(), default_port)),
    }
}

impl Lookup {
    /// A lookup with these routes; `port` is `[outbound] port`, `own` the
    /// addresses Laneway's listeners are bound to (for loop detection).
    pub fn new(
        resolver: TokioResolver,
        routes: Vec<Route>,
        port: u16,
        own: Vec<SocketAddr>,
    ) -> Lookup {
        Lookup {
            resolver,
            routes,
            port,
            own,
            dnssec: None,
        }
    }

    /// Trusts the AD bit of `server` (`[dns] dnssec`).
    pub fn with_dnssec(mut self, server: SocketAddr, timeout: Duration) -> Lookup {
        self.dnssec = Some((server, timeout));
        self
    }

    /// The validating resolver, if DNSSEC answers are trusted.
    pub fn dnssec(&self) -> Option<(SocketAddr, Duration)> {
        self.dnssec
    }

    /// `[outbound] port`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether `addr` is one of our own listeners.
    fn is_self(&self, addr: &SocketAddr) -> bool {
        self.own.iter().any(|o| {
            o.port() == addr.port()
                && (o.ip() == addr.ip() || (o.ip().is_unspecified() && addr.ip().is_loopback()))
        })
    }

    /// Resolves `domain` to its next hop.
    pub async fn next_hop(&self, domain: &str) -> Result<NextHop, HopError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() {
            return Err(permanent(
                Status::new(5, 1, 2),
                "Recipient address has no domain".into(),
            ));
        }
        let route = laneway_common::domain::best_match(&self.routes, &domain, |r| &r.domain);
        if let Some(r) = route {
            return self.route_hop(r).await;
        }
        self.mx_hop(&domain).await
    }

    async fn route_hop(&self, r: &Route) -> Result<NextHop, HopError> {
        // check-config refuses a bad `via`; a reload that slipped one in
        // waits for the operator rather than bouncing the mail
        let (host, port) = parse_via(&r.via, self.port)
            .map_err(|e| Outcome::transient(Stage::Local, Status::new(4, 3, 5), e))?;
        let addrs = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                let (addrs, err) = self.addresses(&host, port).await;
                if addrs.is_empty() {
                    return Err(err.unwrap_or_else(|| {
                        dns_transient(
                            Status::new(4, 4, 3),
                            format!("Route host {host} has no address"),
                        )
                    }));
                }
                addrs
            }
        };
        if addrs.iter().any(|a| self.is_self(a)) {
            return Err(permanent(
                Status::new(5, 4, 6),
                format!("Mail for route {} loops back to myself", r.via),
            ));
        }
        let auth = match (&r.auth_user, &r.auth_password_file) {
            (Some(u), Some(f)) => {
                let pw = std::fs::read_to_string(f).map_err(|e| {
                    Outcome::transient(
                        Stage::Local,
                        Status::new(4, 3, 5),
                        format!("Cannot read {}: {e}", f.display()),
                    )
                })?;
                Some(Arc::new((
                    u.clone(),
                    pw.trim_end_matches(['\r', '\n']).to_string(),
                )))
            }
            _ => None,
        };
        let site = match &auth {
            Some(a) => format!("route {host}:{port} user={}", a.0),
            None => format!("route {host}:{port}"),
        };
        Ok(NextHop {
            site: site.into(),
            hosts: vec![Host {
                name: host,
                addrs,
                dane: None,
            }],
            tls: r.tls,
            auth,
            ttl: Duration::from_secs(3600),
            mx: false,
        })
    }

    async fn mx_hop(&self, domain: &str) -> Result<NextHop, HopError> {
        let name = fqdn(domain);
        let mut ttl = Duration::from_secs(3600);
        let mut mx: Vec<(u16, String)> = match self.resolver.mx_lookup(name.as_str()).await {
            Ok(lookup) => {
                ttl = lookup
                    .valid_until()
                    .saturating_duration_since(Instant::now());
                lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(m) => {
                            Some((m.preference, m.exchange.to_ascii().to_ascii_lowercase()))
                        }
                        _ => None,
                    })
                    .collect()
            }
            Err(e) if e.is_nx_domain() => {
                return Err(permanent(
                    Status::new(5, 1, 2),
                    format!("Domain {domain} does not exist (DNS NXDOMAIN)"),
                ));
            }
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => return Err(transient(domain, "MX", &e)),
        };
        // RFC 7505: a lone MX "." means the domain accepts no mail.
        if mx.len() == 1 && (mx[0].1 == "." || mx[0].1.is_empty()) {
            return Err(permanent(
                Status::new(5, 1, 10),
                format!("Domain {domain} does not accept mail (null MX)"),
            ));
        }
        mx.retain(|(_, h)| h != "." && !h.is_empty());
        let implicit = mx.is_empty();
        if implicit {
            // RFC 5321 §5.1: no MX, the domain itself is the implicit MX.
            mx.push((0, name.clone()));
        }
        // Preference order, random among equals.
        mx.shuffle(&mut rand::rng());
        mx.sort_by_key(|(p, _)| *p);
        let mut hosts: Vec<(u16, Host)> = Vec::new();
        let mut transient_err = None;
        let mut loop_pref: Option<u16> = None;
        for (pref, h) in &mx {
            let (addrs, err) = self.addresses(h, self.port).await;
            if let Some(e) = err {
                transient_err.get_or_insert(e);
            }
            if addrs.iter().any(|a| self.is_self(a)) {
                loop_pref = Some(loop_pref.map_or(*pref, |l: u16| l.min(*pref)));
                continue;
            }
            if !addrs.is_empty() {
                hosts.push((
                    *pref,
                    Host {
                        name: h.trim_end_matches('.').to_string(),
                        addrs,
                        dane: None,
                    },
                ));
            }
        }
        if let Some(lp) = loop_pref {
            // RFC 5321 §5.1: drop ourselves and every host not better than us.
            hosts.retain(|(p, _)| *p < lp);
            if hosts.is_empty() {
                return Err(permanent(
                    Status::new(5, 4, 6),
                    format!("Mail for {domain} loops back to myself"),
                ));
            }
        }
        if hosts.is_empty() {
            return Err(match transient_err {
                Some(e) => e,
                None if implicit => permanent(
                    Status::new(5, 1, 2),
                    format!("Domain {domain} has no MX and no address records"),
                ),
                None => permanent(
                    Status::new(5, 4, 4),
                    format!("No MX host of {domain} has an address"),
                ),
            });
        }
        let mut names: Vec<&str> = mx.iter().map(|(_, h)| h.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let site = format!("mx {}:{}", names.join(","), self.port);
        Ok(NextHop {
            site: site.into(),
            hosts: hosts.into_iter().map(|(_, h)| h).collect(),
            tls: None,
            auth: None,
            ttl: ttl.clamp(Duration::from_secs(1), Duration::from_secs(3600)),
            mx: true,
        })
    }

    /// The `_mta-sts.<domain>` TXT record (RFC 8461 §3.1). Several valid
    /// records count as none.
    pub async fn mta_sts_txt(&self, domain: &str) -> crate::mta_sts::Txt {
        use crate::mta_sts::{Txt, txt_id};
        let name = fqdn(&format!("_mta-sts.{domain}"));
        match self.resolver.txt_lookup(name.as_str()).await {
            Ok(l) => {
                let ids: Vec<String> = txt_records(&l).filter_map(|s| txt_id(&s)).collect();
                match ids.as_slice() {
                    [one] => Txt::Id(one.clone()),
                    _ => Txt::Absent,
                }
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Txt::Absent,
            Err(_) => Txt::Failed,
        }
    }

    /// The `mailto:` addresses of `_smtp._tls.<domain>` (RFC 8460 §3), if
    /// the domain asks for TLS reports.
    pub async fn tlsrpt_rua(&self, domain: &str) -> Option<Vec<String>> {
        let name = fqdn(&format!("_smtp._tls.{domain}"));
        let l = self.resolver.txt_lookup(name.as_str()).await.ok()?;
        txt_records(&l).find_map(|s| crate::tlsrpt::rua(&s))
    }

    /// The IPv4 then IPv6 addresses of `host`. A failure of one family does
    /// not stop the other; the error returned is set only for trouble that
    /// is not a definite "no such records".
    pub async fn addresses(&self, host: &str, port: u16) -> (Vec<SocketAddr>, Option<HopError>) {
        let name = fqdn(host);
        let (v4, v6) = tokio::join!(
            self.resolver.ipv4_lookup(name.as_str()),
            self.resolver.ipv6_lookup(name.as_str())
        );
        let mut addrs = Vec::new();
        let mut err = None;
        for (res, kind) in [(v4, "A"), (v6, "AAAA")] {
            match res {
                Ok(l) => addrs.extend(l.answers().iter().filter_map(|r| match &r.data {
                    RData::A(a) => Some(SocketAddr::new(IpAddr::V4(a.0), port)),
                    RData::AAAA(a) => Some(SocketAddr::new(IpAddr::V6(a.0), port)),
                    _ => None,
                })),
                Err(e) if e.is_no_records_found() => {}
                Err(e) => err = Some(transient(host, kind, &e)),
            }
        }
        (addrs, err)
    }
}

/// Each TXT record of an answer, its strings joined.
fn txt_records(l: &hickory_resolver::lookup::Lookup) -> impl Iterator<Item = String> + '_ {
    l.answers().iter().filter_map(|r| match &r.data {
        RData::TXT(t) => Some(
            t.txt_data
                .iter()
                .map(|d| String::from_utf8_lossy(d))
                .collect(),
        ),
        _ => None,
    })
}

fn transient(name: &str, kind: &str, e: &NetError) -> HopError {
    dns_transient(
        Status::new(4, 4, 3),
        format!("DNS {kind} lookup for {name} failed: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_forms() {
        assert_eq!(
            parse_via("127.0.0.1:2526", 25).unwrap(),
            ("127.0.0.1".into(), 2526)
        );
        assert_eq!(parse_via("[::1]:2526", 25).unwrap(), ("::1".into(), 2526));
        assert_eq!(parse_via("[::1]", 25).unwrap(), ("::1".into(), 25));
        assert_eq!(
            parse_via("smtp.example.com", 587).unwrap(),
            ("smtp.example.com".into(), 587)
        );
        assert_eq!(
            parse_via("smtp.example.com:2525", 25).unwrap(),
            ("smtp.example.com".into(), 2525)
        );
        assert!(parse_via("host:port", 25).is_err());
    }
}
