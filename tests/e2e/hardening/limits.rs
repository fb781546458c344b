//! Resource limits under abuse: memory over an abuse loop, slow and many clients cut off without stalling others.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::tls::TestCert;
use laneway_tests::{DEADLINE, Daemon, eventually};

use super::*;

#[test]
fn abuse_in_a_loop_keeps_memory_bounded() {
    let d = Daemon::start(SMALL);
    let addr = d.addr("mx");
    let pid = d.pid();
    let round = |c: &mut Client| {
        // oversize body
        c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n");
        for _ in 0..3 {
            c.reply();
        }
        let line = format!("{}\r\n", "o".repeat(998));
        c.send(line.repeat(200).as_bytes());
        c.send(b".\r\n");
        assert!(c.reply().starts_with("552"));
        // a header bomb
        c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n");
        for _ in 0..3 {
            c.reply();
        }
        c.send("X-H: v\r\n".repeat(5000).as_bytes());
        c.send(b"\r\nbody\r\n.\r\n");
        assert!(c.reply().starts_with("552"));
        // an endless command line
        c.send(&vec![b'A'; 64 * 1024]);
        c.send(b"\r\n");
        assert!(c.reply().starts_with("500 5.5.2"));
        // garbage
        c.send(b"\x00\xff\xfe\r\nRSET\r\n");
        c.reply();
        assert!(c.reply().starts_with("250"));
    };
    // warm up, then measure
    for _ in 0..5 {
        let mut c = Client::hello(addr);
        round(&mut c);
    }
    let before = rss_kib(pid);
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < 60 || started.elapsed() < Duration::from_secs(3) {
        let mut c = Client::hello(addr);
        round(&mut c);
        rounds += 1;
        if rounds > 600 {
            break;
        }
    }
    let after = rss_kib(pid);
    println!("abuse: {rounds} rounds, RSS {before} KiB -> {after} KiB");
    assert!(
        after < before + 48 * 1024,
        "RSS grew from {before} KiB to {after} KiB over {rounds} rounds"
    );
    assert_eq!(d.spool_stats()["total"], 0);
}

const SLOW: &str = r#"
[[listener]]
name = "mx"
bind = "127.0.0.1:0"
max_connections = 12
max_connections_per_ip = 4
command_timeout = "1s"
data_timeout = "1s"
min_data_rate = 1000
[[listener]]
name = "smtps"
bind = "127.0.0.1:0"
tls = "implicit"
tls_handshake_timeout = "1s"
[relay]
trusted_networks = ["127.0.0.0/8"]
"#;

#[test]
fn slow_and_many_clients_are_cut_off_without_stalling_others() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(dir.path());
    let d = Daemon::start(&format!("{SLOW}{}", cert.config()));
    let addr = d.addr("mx");

    // per-IP cap: the fifth connection from 127.0.0.2 is refused
    let hogs: Vec<Client> = (0..4)
        .map(|_| {
            let mut c = Client::connect_from(addr, Some("127.0.0.2"));
            c.greeting("220");
            c
        })
        .collect();
    let mut extra = Client::connect_from(addr, Some("127.0.0.2"));
    extra.greeting("421 4.3.2");
    // meanwhile a normal client is served at once
    let t = Instant::now();
    let mut c = Client::hello(addr);
    queued_id(&c.send_mail(
        "a@example.com",
        &["b@example.net"],
        "Subject: ok\r\n\r\nx\r\n",
    ));
    // not queued behind the hogs: a server serving one connection at a
    // time would have made it wait for their four 1 s command timeouts
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // global cap: 12 connections in all — the 4 hogs, `c` (kept open: the
    // server frees a closed connection's slot only when it notices) and 7 more
    let more: Vec<Client> = (3..10)
        .map(|i| {
            let mut c = Client::connect_from(addr, Some(&format!("127.0.0.{i}")));
            c.greeting("220");
            c
        })
        .collect();
    let mut over = Client::connect_from(addr, Some("127.0.0.20"));
    over.greeting("421 4.3.2");

    // idle clients are told off after command_timeout
    let t = Instant::now();
    let mut idle = hogs.into_iter().next().unwrap();
    let r = idle.reply();
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(more);
    drop(c);
    eventually("slots freed", || {
        let mut c = Client::connect(addr);
        c.reply().starts_with("220")
    });

    // a client dribbling data below min_data_rate is cut off, although each
    // byte comes well within data_timeout
    let mut slow = Client::hello(addr);
    slow.cmd("MAIL FROM:<a@example.com>", "250");
    slow.cmd("RCPT TO:<b@example.net>", "250");
    slow.cmd("DATA", "354");
    let t = Instant::now();
    slow.set_timeout(Duration::from_millis(300));
    let r = loop {
        assert!(t.elapsed() < Duration::from_secs(10), "never cut off");
        if let Ok(r) = slow.try_reply() {
            break r;
        }
        slow.try_send(b"x")
            .expect("connection closed without a reply");
    };
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(r.contains("too slowly"), "{r}");

    // a TLS client that never says hello is dropped after the handshake timeout
    let t = Instant::now();
    let mut tcp = TcpStream::connect(d.addr("smtps")).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut b = [0u8; 16];
    let n = tcp.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "the server should just close");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(d.spool_stats()["total"], 1);
}
