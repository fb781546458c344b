//! Enough of SPF (RFC 7208) to tell whether a record authorises an
//! address: the mechanisms `all`, `ip4`, `ip6`, `a`, `mx`, `include` and
//! the `redirect` modifier, with the limit of 10 lookups. `exists`, `ptr`
//! and macros are not evaluated (they never match here, and the answer
//! says so), which errs on the side of "not authorised".

use std::net::IpAddr;

use super::dns::Dns;

/// The verdict for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// `+` matched.
    Pass,
    /// Another qualifier matched, or nothing did.
    NotPass(String),
    /// The record cannot be evaluated.
    Error(String),
}

/// The SPF record (`v=spf1 …`) of `domain`, if there is exactly one.
pub(super) async fn record(dns: &Dns, domain: &str) -> Result<Option<String>, String> {
    let all = dns.txt(domain).await?;
    let spf: Vec<String> = all.into_iter().filter(|t| is_spf(t)).collect();
    match spf.len() {
        0 => Ok(None),
        1 => Ok(spf.into_iter().next()),
        n => Err(format!(
            "{n} SPF records (RFC 7208 §4.5: more than one is a permanent error)"
        )),
    }
}

fn is_spf(t: &str) -> bool {
    let t = t.trim_start().to_ascii_lowercase();
    t == "v=spf1" || t.starts_with("v=spf1 ")
}

/// Whether `record` of `domain` authorises `ip`.
pub(super) async fn check(dns: &Dns, domain: &str, record: &str, ip: IpAddr) -> Verdict {
    let mut lookups = 0;
    match eval(dns, domain, record, ip, &mut lookups).await {
        Ok(Some(('+', _))) => Verdict::Pass,
        Ok(Some((q, term))) => Verdict::NotPass(format!("{ip} matches {q}{term}")),
        Ok(None) => Verdict::NotPass(format!("{ip} matches no mechanism")),
        Err(e) => Verdict::Error(e),
    }
}

/// The qualifier and term that matched, if any.
type Matched = Result<Option<(char, String)>, String>;

/// The qualifier and term that match `ip`, if any.
fn eval<'a>(
    dns: &'a Dns,
    domain: &'a str,
    record: &'a str,
    ip: IpAddr,
    lookups: &'a mut u32,
) -> laneway_common::ingest::BoxFuture<'a, Matched> {
    Box::pin(async move {
        let mut redirect = None;
        for term in record.split_whitespace().skip(1) {
            let lower = term.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("redirect=") {
                redirect = Some(r.to_string());
                continue;
            }
            if lower.contains('=') {
                continue; // another modifier (exp=)
            }
            if lower.contains('%') {
                continue; // macros are not evaluated: the term never matches
            }
            let (q, mech) = match lower.chars().next() {
                Some(c @ ('+' | '-' | '~' | '?')) => (c, &lower[1..]),
                _ => ('+', lower.as_str()),
            };
            // `a:host/24//64`: an IPv4 prefix after one slash, an IPv6
            // prefix after two (RFC 7208 §5.6)
            let (body, cidr) = match mech.split_once('/') {
                Some((b, c)) => (b, prefixes(c)),
                None => (mech, (None, None)),
            };
            let (name, target) = match body.split_once(':') {
                Some((n, a)) => (n, a),
                None => (body, domain),
            };
            let hit = match name {
                "all" => true,
                "ip4" | "ip6" => {
                    let net: IpAddr = target
                        .parse()
                        .map_err(|_| format!("{term}: not an address"))?;
                    // ip6:net/n: its one prefix is the IPv6 one
                    let cidr = if name == "ip6" { (None, cidr.0) } else { cidr };
                    within(ip, net, cidr)
                }
                "a" | "mx" => {
                    count(lookups, term)?;
                    let hosts = if name == "mx" {
                        dns.names(target, hickory_resolver::proto::rr::RecordType::MX)
                            .await?
                    } else {
                        vec![target.to_string()]
                    };
                    let mut hit = false;
                    for h in hosts {
                        if dns
                            .addresses(&h)
                            .await?
                            .into_iter()
                            .any(|a| within(ip, a, cidr))
                        {
                            hit = true;
                            break;
                        }
                    }
                    hit
                }
                "include" => {
                    count(lookups, term)?;
                    let inner = record_of(dns, target).await?;
                    matches!(
                        eval(dns, target, &inner, ip, lookups).await?,
                        Some(('+', _))
                    )
                }
                "exists" | "ptr" => false,
                other => return Err(format!("{term}: unknown mechanism {other:?}")),
            };
            if hit {
                return Ok(Some((
                    q,
                    term.trim_start_matches(['+', '-', '~', '?']).to_string(),
                )));
            }
        }
        match redirect {
            Some(r) => {
                count(lookups, "redirect")?;
                let inner = record_of(dns, &r).await?;
                eval(dns, &r, &inner, ip, lookups).await
            }
            None => Ok(None),
        }
    })
}

async fn record_of(dns: &Dns, domain: &str) -> Result<String, String> {
    record(dns, domain)
        .await?
        .ok_or_else(|| format!("{domain} (included) has no SPF record"))
}

fn count(lookups: &mut u32, term: &str) -> Result<(), String> {
    *lookups += 1;
    if *lookups > 10 {
        return Err(format!(
            "more than 10 DNS lookups (at {term}; RFC 7208 §4.6.4)"
        ));
    }
    Ok(())
}

/// The IPv4 and IPv6 prefixes of what follows the first slash: `24`,
/// `24//64`, `/64` (the second slash already taken).
fn prefixes(c: &str) -> (Option<u8>, Option<u8>) {
    let (v4, v6) = match c.split_once("//") {
        Some((a, b)) => (a, Some(b)),
        None => match c.strip_prefix('/') {
            Some(b) => ("", Some(b)),
            None => (c, None),
        },
    };
    (v4.parse().ok(), v6.and_then(|b| b.parse().ok()))
}

/// Whether `ip` is in `net` with the prefix of its family (a missing
/// prefix: the whole address).
fn within(ip: IpAddr, net: IpAddr, (p4, p6): (Option<u8>, Option<u8>)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let p = p4.unwrap_or(32).min(32) as u32;
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let p = p6.unwrap_or(128).min(128) as u32;
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(within(ip("192.0.2.7"), ip("192.0.2.0"), (Some(24), None)));
        assert!(!within(ip("192.0.3.7"), ip("192.0.2.0"), (Some(24), None)));
        assert!(within(ip("192.0.2.7"), ip("192.0.2.7"), (None, None)));
        assert!(within(
            ip("2001:db8::1"),
            ip("2001:db8::"),
            (None, Some(32))
        ));
        assert!(!within(
            ip("2001:db8::1"),
            ip("192.0.2.0"),
            (Some(0), Some(0))
        ));
        // a/24 is IPv4 only: an IPv6 address is compared whole
        assert!(!within(
            ip("2001:db8::1"),
            ip("2001:db8::2"),
            prefixes("24")
        ));
        assert_eq!(prefixes("24//64"), (Some(24), Some(64)));
        assert_eq!(prefixes("/64"), (None, Some(64)));
        assert!(is_spf("v=spf1 -all") && is_spf("V=SPF1") && !is_spf("v=spf10"));
    }
}
