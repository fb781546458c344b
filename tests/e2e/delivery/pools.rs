//! Per-pool limits of a provider (`[provider.<name>.pool.<pool>]`) and an
//! IP warm-up (`[[outbound.pool]] warmup`): the new addresses' pool sends
//! to the provider over one connection at the day's rate, while the other
//! pool's mail to the same provider goes at full speed.

use std::time::Duration;

use laneway_bench::sink::SinkConfig;
use laneway_tests::dns::TestDns;
use laneway_tests::{DEADLINE, Daemon};

use super::*;

#[test]
fn a_new_pool_warms_up_alone() {
    let dns = TestDns::start();
    let s = sink(SinkConfig {
        delay: Duration::from_millis(5),
        ..Default::default()
    });
    dns.mx("a.test", 10, "mx.a.bigmail.test");
    dns.a("mx.a.bigmail.test", "127.0.0.1");
    let sf = shaping_file(
        "[provider.bigmail]\nmx_suffix = [\".bigmail.test\"]\n[provider.bigmail.pool.new]\nmax_connections = 1\n",
    );
    let today = &laneway_common::admin::rfc3339(laneway_common::envelope::now_ms())[..10];
    let extra = format!(
        "[[outbound.pool]]\nname = \"new\"\nlanes = \"0-4\"\nsource = [\"127.0.0.2\"]\nwarmup = {{ start = \"{today}\", rates = [\"10/s\", \"100/s\"] }}\n[shaping]\nfiles = [\"{}\"]\n",
        sf.path.display()
    );
    let d = Daemon::start(&relay(&dns, s.addr.port(), &extra));
    let show = d.cli(&["shaping", "show"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("pool limits of bigmail: new: max_connections 1"),
        "{text}"
    );
    let mut c = laneway_tests::smtp::Client::hello(d.addr("in"));
    for (lane, n) in [(0u8, 20), (9, 20)] {
        for i in 0..n {
            let body = format!(
                "Subject: {lane}/{i}\r\nX-Priority-Queue: {lane}\r\nX-Bench-Lane: {lane}\r\n\r\nx\r\n"
            );
            let r = c.send_mail("a@sender.test", &[&format!("r{lane}-{i}@a.test")], &body);
            assert!(r.starts_with("250"), "{r}");
        }
    }
    assert_eq!(s.wait_blocking(40, DEADLINE), 40);
    let m = s.messages();
    let of = |lane| -> Vec<_> { m.iter().filter(|x| x.lane == Some(lane)).collect() };
    let (bulk, urgent) = (of(0), of(9));
    assert!(bulk.iter().all(|x| x.peer.ip().to_string() == "127.0.0.2"));
    assert!(
        urgent
            .iter()
            .all(|x| x.peer.ip().to_string() != "127.0.0.2")
    );
    let span = |v: &[&laneway_bench::sink::Message]| {
        let first = v.iter().map(|x| x.at).min().unwrap();
        let last = v.iter().map(|x| x.at).max().unwrap();
        last - first
    };
    // most transactions of the new pool at once: its one connection
    let overlap = bulk
        .iter()
        .map(|a| {
            bulk.iter()
                .filter(|b| b.mail_at <= a.mail_at && a.mail_at < b.at)
                .count()
        })
        .max()
        .unwrap();
    let (bulk_span, urgent_span) = (span(&bulk), span(&urgent));
    println!(
        "figures: new pool: 20 messages over {bulk_span:?}, at most {overlap} at once; other pool: 20 over {urgent_span:?}"
    );
    assert_eq!(overlap, 1, "one connection from the new pool");
    // 20 at the first day's 10/s take 1.9 s
    assert!(bulk_span >= Duration::from_millis(1700), "{bulk_span:?}");
    assert!(
        urgent_span < bulk_span / 2,
        "{urgent_span:?} vs {bulk_span:?}"
    );

    // an override naming a pool that does not exist is refused
    std::fs::write(
        &sf.path,
        "[provider.bigmail]\nmx_suffix = [\".bigmail.test\"]\n[provider.bigmail.pool.old]\nmax_connections = 1\n",
    )
    .unwrap();
    let out = d.cli(&["check-config"]);
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        err.contains("pool.old: no [[outbound.pool]] is named \"old\""),
        "{err}"
    );
}
