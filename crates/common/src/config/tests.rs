use std::path::Path;

use super::*;
use crate::priority::Priority;

fn load(text: &str) -> Result<Loaded, ConfigErrors> {
    Config::from_toml(text, Path::new("/etc/laneway"))
}

#[test]
fn empty_config_takes_the_documented_defaults() {
    let c = load("").unwrap().config;
    assert!(c.listeners.is_empty());
    assert_eq!(c.queue.default_priority, Priority::DEFAULT);
    assert_eq!(c.spool.shards, 64);
    assert_eq!(c.spool.min_free_bytes, 100 << 20);
    assert!(c.relay.is_trusted("127.0.0.1".parse().unwrap()));
    assert!(c.relay.is_trusted("::1".parse().unwrap()));
    assert!(c.relay.is_trusted("::ffff:127.0.0.5".parse().unwrap()));
    assert!(!c.relay.is_trusted("192.0.2.1".parse().unwrap()));
    assert!(c.api.is_none() && c.metrics.is_none());
}

#[test]
fn listener_keys_and_units() {
    let c = load(
        r#"
[server]
hostname = "mx.example.org"
spool_dir = "/tmp/s"
[[listener]]
name = "in"
bind = "127.0.0.1:0"
trust_priority = true
bare_lf = "normalize"
max_message_size = "10MiB"
command_timeout = "1s"
[queue]
default_priority = 2
retry_base = "1m"
[[queue.lane]]
lanes = "7-9"
max_age = "4h"
"#,
    )
    .unwrap()
    .config;
    let l = &c.listeners[0];
    assert_eq!(l.name, "in");
    assert!(l.trust_priority);
    assert_eq!(l.bare_lf, BareLf::Normalize);
    assert_eq!(l.max_message_size, 10 << 20);
    assert_eq!(l.command_timeout, std::time::Duration::from_secs(1));
    assert_eq!(l.max_recipients, 1000);
    assert_eq!(c.queue.default_priority.get(), 2);
    let hi = c.queue.policy(Priority::new(8).unwrap());
    assert_eq!(hi.max_age.as_secs(), 4 * 3600);
    assert_eq!(hi.retry_base.as_secs(), 60);
    let lo = c.queue.policy(Priority::new(1).unwrap());
    assert_eq!(lo.max_age.as_secs(), 5 * 86400);
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = load(
        r#"
bogus = 1
[server]
hostnme = "typo"
[[listener]]
bind = "127.0.0.1:2525"
max_recipients = 10
[[listener]]
bind = "not an address"
[[listener]]
bind = "127.0.0.1:2526"
tls = "starttls"
[queue]
default_priority = 12
[spool]
shards = 0
"#,
    )
    .unwrap_err();
    let text = errs.to_string();
    for needle in [
        "bogus",
        "hostnme",
        "max_recipients = 10",
        "[[listener]] #2",
        "needs a [tls]",
        "[queue]",
        "shards = 0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(errs.0.len() >= 7, "{text}");
}

#[test]
fn syntax_errors_name_the_line() {
    let e = load("[server\nhostname = 1").unwrap_err().to_string();
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let e = load("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/etc/laneway/c.pem"), "{e}");
}

#[test]
fn dane_needs_a_trusted_validating_resolver() {
    let text = load("[outbound]\ndane = true\n").unwrap_err().to_string();
    assert!(text.contains("needs [dns] dnssec = true"), "{text}");
    let text = load("[dns]\ndnssec = true\n").unwrap_err().to_string();
    assert!(text.contains("needs [dns] nameservers"), "{text}");
    let c =
        load("[outbound]\ndane = true\n[dns]\ndnssec = true\nnameservers = [\"127.0.0.1:53\"]\n")
            .unwrap();
    let c = c.config;
    assert!(c.outbound.dane && c.dns.dnssec && c.outbound.mta_sts);
}

#[test]
fn every_key_that_takes_a_domain_is_checked() {
    // patterns where a pattern is meant
    let c = load(
        "[[destination]]\ndomain = \"*\"\nhold = true\n[[destination]]\ndomain = \".Example.COM\"\n[[route]]\ndomain = \".example.net\"\nvia = \"127.0.0.1:25\"\n",
    )
    .unwrap()
    .config;
    assert_eq!(c.destinations[0].domain, "*");
    assert_eq!(c.destinations[1].domain, ".example.com");
    assert_eq!(c.routes[0].domain, ".example.net");
    // names elsewhere, each problem naming its key
    let e = load(
        r#"
[relay]
local_domains = ["*"]
[auth]
default_bounce_domain = ".bounces.test"
[[domain]]
name = "*.example.com"
bounce_domain = "bad domain"
[[smtp_user]]
name = "u"
password_hash = "$argon2id$x"
allowed_from_domains = ["*"]
[[destination]]
domain = "exa mple.com"
[[route]]
domain = "*.x.test"
via = "h:25"
"#,
    )
    .unwrap_err()
    .0;
    for key in [
        "[relay] local_domains",
        "[auth] default_bounce_domain",
        "[[domain]] \"*.example.com\": name",
        "[[domain]] \"*.example.com\": bounce_domain",
        "[[smtp_user]] \"u\": allowed_from_domains",
        "[[destination]] domain",
        "[[route]] domain",
    ] {
        assert!(
            e.iter().any(|m| m.starts_with(key)),
            "no error for {key}: {e:#?}"
        );
    }
}

#[test]
fn cluster_keys_are_checked() {
    let c = load(
        "[server]\nhostname = \"mx1.example.org\"\n[cluster]\nredis = \"redis://10.0.0.9:6379\"\n",
    )
    .unwrap()
    .config;
    let k = c.cluster.as_ref().unwrap();
    assert_eq!(k.node(&c.server.hostname), "mx1.example.org");
    assert_eq!(
        (k.lease, k.prefix.as_str()),
        (std::time::Duration::from_secs(30), "lw:")
    );
    let err = load(
        "[cluster]\nredis = \"http://10.0.0.9\"\nlease = \"100ms\"\nnode_id = \"mx 1\"\nprefix = \"\"\nredis_ca = \"/nonexistent/ca.pem\"\n",
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "[cluster] redis = \"http://10.0.0.9\"",
        "[cluster] lease",
        "[cluster] node_id = \"mx 1\"",
        "[cluster] prefix",
        "[cluster] redis_ca /nonexistent/ca.pem",
    ] {
        assert!(err.contains(needle), "{needle} missing in:\n{err}");
    }
    assert!(
        load("[cluster]\nredis = \"redis://x\"\nport = 1\n")
            .unwrap_err()
            .to_string()
            .contains("port")
    );
}

#[test]
fn unsubscribe_needs_a_secret_a_url_and_lanes() {
    let e = load(
        "[[domain]]\nname = \"example.com\"\nunsubscribe = { lanes = \"0-4\", base_url = \"ftp://x\" }\n",
    )
    .unwrap_err()
    .0;
    for want in [
        "[[domain]] \"example.com\": unsubscribe.base_url",
        "[[domain]] \"example.com\": unsubscribe needs [auth] bounce_secret_file",
    ] {
        assert!(e.iter().any(|m| m.starts_with(want)), "no {want}: {e:#?}");
    }
    let e = load("[[domain]]\nname = \"example.com\"\nunsubscribe = { base_url = \"https://u.example.com\", lane = \"0\" }\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("lane"), "unknown keys are refused: {e}");
    let c = load("[auth]\nbounce_secret_file = \"/s\"\n[[domain]]\nname = \"example.com\"\nunsubscribe = { base_url = \"https://u.example.com\" }\n")
        .unwrap()
        .config;
    let u = c.domains[0].unsubscribe.as_ref().unwrap();
    assert_eq!(u.lanes, "0-4".parse().unwrap(), "bulk lanes by default");
}
