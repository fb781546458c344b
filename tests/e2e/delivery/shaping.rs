//! Provider shaping from a shaping file: MX rollup (domains whose MX hosts
//! share a provider's suffix share its connection limit), per-domain
//! entries, and a `[[destination]]` winning over both.

use std::time::Duration;

use laneway_bench::sink::SinkConfig;
use laneway_tests::dns::TestDns;
use laneway_tests::{DEADLINE, Daemon, eventually};

use super::*;

/// Three domains with MX hosts of their own under one provider suffix,
/// 30 messages each to a slow sink: at most the provider's 2 connections
/// are ever open — and without the shaping file, more are (so the test can
/// tell). A fourth domain's `[domain.<d>]` demands TLS the sink lacks.
#[test]
fn mx_rollup_shares_one_provider_limit() {
    for shaped in [true, false] {
        let dns = TestDns::start();
        let s = sink(SinkConfig {
            delay: Duration::from_millis(40),
            ..Default::default()
        });
        // strict.test has a sink of its own, so its attempts do not count
        let other = sink_beside(&s, "127.0.0.2", SinkConfig::default());
        for (d, mx, ip) in [
            ("a.test", "mx1.a.bigmail.test", "127.0.0.1"),
            ("b.test", "mx.b.bigmail.test", "127.0.0.1"),
            ("c.test", "in.eu.bigmail.test", "127.0.0.1"),
            ("strict.test", "mx.strict.test", "127.0.0.2"),
        ] {
            dns.mx(d, 10, mx);
            dns.a(mx, ip);
        }
        let sf = shaping_file(
            "[provider.bigmail]\nmx_suffix = [\".bigmail.test\"]\nmax_connections = 2\nidle_timeout = \"200ms\"\n[domain.\"strict.test\"]\ntls = \"required\"\n",
        );
        let extra = if shaped {
            sf.config.clone()
        } else {
            String::new()
        };
        let d = Daemon::start(&relay(&dns, s.addr.port(), &extra));
        let addr = d.addr("in");
        let threads: Vec<_> = ["a.test", "b.test", "c.test"]
            .into_iter()
            .map(|dom| {
                std::thread::spawn(move || {
                    let mut c = laneway_tests::smtp::Client::hello(addr);
                    for i in 0..30 {
                        let r = c.send_mail(
                            "news@sender.test",
                            &[&format!("n{i}@{dom}")],
                            "Subject: news\r\n\r\nnewsletter\r\n",
                        );
                        assert!(r.starts_with("250"), "{r}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        submit(&d, "a@sender.test", &["x@strict.test"], 4, "x\r\n");
        assert_eq!(s.wait_blocking(90, DEADLINE), 90);
        let peak = s.max_open_connections();
        let ev = wait_events(&d, "the strict.test attempt", |e| {
            e.iter().any(|e| e["recipient"] == "x@strict.test")
        });
        let strict = ev
            .iter()
            .find(|e| e["recipient"] == "x@strict.test")
            .unwrap();
        println!(
            "figures: shaped={shaped}: 90 messages to 3 domains of one provider, at most {peak} connections open at once"
        );
        if shaped {
            assert!(peak <= 2, "{peak} connections open to one provider");
            assert_eq!(strict["type"], "transient_failure", "{strict}");
            assert!(
                strict["description"].as_str().unwrap().starts_with("4.7.4"),
                "{strict}"
            );
        } else {
            assert!(peak > 2, "three sites of their own: {peak}");
            assert_eq!(strict["type"], "delivery", "{strict}");
            assert_eq!(other.count(), 1);
        }
    }
}

/// A `[[destination]]` for one of the provider's domains takes it out of
/// the rollup: its own limit applies, and the others keep the provider's.
#[test]
fn a_destination_wins_over_the_shaping_file() {
    let dns = TestDns::start();
    let s = sink(SinkConfig::default());
    dns.mx("a.test", 10, "mx.a.bigmail.test");
    dns.a("mx.a.bigmail.test", "127.0.0.1");
    let sf =
        shaping_file("[provider.bigmail]\nmx_suffix = [\".bigmail.test\"]\ntls = \"required\"\n");
    let extra = format!(
        "[shaping]\nfiles = [\"{}\"]\n[[destination]]\ndomain = \"a.test\"\nmax_connections = 1\n",
        sf.path.display()
    );
    let d = Daemon::start(&relay(&dns, s.addr.port(), &extra));
    // the provider would demand TLS the sink does not offer; the
    // destination entry wins, so the mail goes out in plaintext
    submit(&d, "a@sender.test", &["x@a.test"], 4, "x\r\n");
    assert_eq!(s.wait_blocking(1, DEADLINE), 1);
    assert!(!s.messages()[0].tls);
}

/// A shaping file that does not parse, or names a bad key, stops
/// check-config with the file and the key.
#[test]
fn check_config_names_the_shaping_file_and_key() {
    let sf =
        shaping_file("[provider.bigmail]\nmx_suffix = [\"bigmail.test\"]\nmax_conections = 2\n");
    let cfg = sf.path.with_file_name("laneway.toml");
    std::fs::write(&cfg, sf.config.clone()).unwrap();
    let out = std::process::Command::new(laneway_tests::laneway_bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("shaping.toml") && text.contains("max_conections"),
        "{text}"
    );
}

/// `idle_timeout` of a `[domain.<d>]`: the connection stays open for more
/// work well past `[outbound] idle_timeout` (300 ms in these tests).
#[test]
fn a_shaping_idle_timeout_keeps_the_connection() {
    let dns = TestDns::start();
    let s = sink(SinkConfig::default());
    dns.mx("idle.test", 10, "mx.idle.test");
    dns.a("mx.idle.test", "127.0.0.1");
    let sf = shaping_file("[domain.\"idle.test\"]\nidle_timeout = \"30s\"\n");
    let extra = sf.config.clone();
    let d = Daemon::start(&relay(&dns, s.addr.port(), &extra));
    submit(&d, "a@sender.test", &["x@idle.test"], 4, "x\r\n");
    assert_eq!(s.wait_blocking(1, DEADLINE), 1);
    // five times the [outbound] idle_timeout: it would have closed by now
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        s.open_connections(),
        1,
        "the connection waits for more work"
    );
    submit(&d, "a@sender.test", &["y@idle.test"], 4, "x\r\n");
    assert_eq!(s.wait_blocking(2, DEADLINE), 2);
    assert_eq!(
        s.connections(),
        1,
        "the second message used the same connection"
    );
}

/// SIGHUP reads the shaping files again and the sites already resolved
/// are resolved again at once (not when their DNS answer expires): a
/// domain that delivered in plaintext gets a `[domain.<d>]` demanding TLS,
/// and its mail defers for it as soon as that lookup is done (mail taken
/// during the lookup still uses the previous answer).
#[test]
fn a_reload_applies_new_shaping_at_once() {
    let dns = TestDns::start();
    let s = sink(SinkConfig::default());
    dns.mx("x.test", 10, "mx.x.test");
    dns.a("mx.x.test", "127.0.0.1");
    let sf = shaping_file("");
    let extra = sf.config.clone();
    let d = Daemon::start(&relay(&dns, s.addr.port(), &extra));
    submit(&d, "a@sender.test", &["one@x.test"], 4, "x\r\n");
    assert_eq!(s.wait_blocking(1, DEADLINE), 1);
    std::fs::write(&sf.path, "[domain.\"x.test\"]\ntls = \"required\"\n").unwrap();
    d.signal(rustix::process::Signal::HUP);
    assert!(d.wait_log(|l| l.contains("configuration reloaded")));
    let mut n = 0;
    eventually("a message defers for the new TLS demand", || {
        n += 1;
        let rcpt = format!("t{n}@x.test");
        submit(&d, "a@sender.test", &[&rcpt], 4, "x\r\n");
        let ev = wait_events(&d, "its attempt", |e| {
            e.iter().any(|e| e["recipient"] == rcpt.as_str())
        });
        let e = ev.iter().find(|e| e["recipient"] == rcpt.as_str()).unwrap();
        e["type"] == "transient_failure" && e["description"].as_str().unwrap().starts_with("4.7.4")
    });
    println!("figures: {n} message(s) after the reload until the first deferral for TLS");
}

/// `laneway shaping show` (over the control socket) lists the default
/// pack's providers and the file's entries with their effective limits:
/// what an entry leaves out comes from `[outbound]`.
#[test]
fn shaping_show_lists_effective_limits() {
    let dns = TestDns::start();
    let sf = shaping_file(
        "[provider.bigmail]\nmx_suffix = [\".bigmail.test\"]\nmax_connections = 2\n[domain.\"slow.test\"]\nrate = \"5/s\"\n",
    );
    let extra = sf.config.clone();
    let d = Daemon::start(&relay(&dns, 25, &extra));
    let out = d.cli(&["shaping", "show", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let provider = |name: &str| {
        v["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {v}"))
    };
    let b = provider("bigmail");
    assert_eq!(
        (&b["max_connections"], &b["mx_suffix"], &b["idle_timeout"]),
        (
            &2.into(),
            &serde_json::json!([".bigmail.test"]),
            &"300ms".into()
        ),
        "{b}"
    );
    let g = provider("google");
    assert_eq!(
        (&g["max_connections"], &g["tls"]),
        (&5.into(), &"required".into()),
        "{g}"
    );
    let slow = &v["domains"][0];
    assert_eq!(
        (&slow["name"], &slow["rate"]),
        (&"slow.test".into(), &"5/s".into()),
        "{v}"
    );
    let human = d.cli(&["shaping", "show"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.starts_with("provider")
            && text.contains("bigmail")
            && text.contains("domain slow.test"),
        "{text}"
    );
}
