//! Attacks and faults against the real daemon (issue 7): smuggling inside
//! BDAT and oversize bodies, mail loops, memory under abuse, slow and many
//! clients, AUTH edge replies, corrupt spool files, hostile MX hosts, null
//! senders, `kill -9` in a loop under delivery load, a full disk and
//! SIGXFSZ. Every case checks both the reply and that nothing acknowledged
//! is lost or nothing refused is stored.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use laneway_bench::sink::{Event, Sink, SinkConfig};
use laneway_tests::dns::TestDns;
use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::tls::TestCert;
use laneway_tests::{DEADLINE, Daemon, eventually};

const SHAPES: [&[u8]; 11] = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r.\r",
    b"\n.\r",
    b"\r.\n",
    b"\r\n.\n",
    b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n",
    b"\r\n\x00.\r\n",
];

const SMUGGLED: &[u8] =
    b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: SMUGGLED\r\n\r\nsmuggled\r\n";

const SMALL: &str = r#"
[[listener]]
name = "mx"
bind = "127.0.0.1:0"
max_message_size = "100KiB"
[relay]
trusted_networks = ["127.0.0.1/32"]
"#;

/// Resident memory of a process in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Opens a transaction and returns the client after `354` or ready for BDAT.
fn transaction(d: &Daemon) -> Client {
    let mut c = Client::hello(d.addr("mx"));
    c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("250"));
    c
}

/// Checks that no further reply is pending (no second 250 for smuggled
/// commands), then that the session still works.
fn exactly_one_reply(c: &mut Client) {
    c.cmd("NOOP", "250 2.0.0");
}

#[test]
fn smuggling_inside_bdat_and_behind_an_oversize_body_is_refused() {
    let d = Daemon::start(SMALL);
    // DATA whose body is over the limit: the shapes are still only content,
    // and the one reply is 552 at the real end.
    for shape in SHAPES {
        let mut c = transaction(&d);
        c.cmd("DATA", "354");
        let mut body = b"Subject: big\r\n\r\n".to_vec();
        body.extend(
            std::iter::repeat_n(b"y".repeat(998), 150).flat_map(|mut l| {
                l.extend_from_slice(b"\r\n");
                l
            }),
        );
        body.extend_from_slice(shape);
        body.extend_from_slice(SMUGGLED);
        c.send(&body);
        c.set_timeout(Duration::from_millis(300));
        assert!(c.try_reply().is_err(), "early reply after {shape:?}");
        c.set_timeout(DEADLINE);
        c.send(b"\r\n.\r\n");
        let r = c.reply();
        assert!(r.starts_with("552 5.3.4"), "{shape:?}: {r}");
        exactly_one_reply(&mut c);
    }
    // BDAT has no dot framing: bare CR/LF and NUL are refused, and nothing
    // inside the chunk is ever read as a command.
    for shape in SHAPES {
        let mut c = transaction(&d);
        let mut chunk = b"Subject: x\r\n\r\nfirst".to_vec();
        chunk.extend_from_slice(shape);
        chunk.extend_from_slice(SMUGGLED);
        let mut wire = format!("BDAT {} LAST\r\n", chunk.len()).into_bytes();
        wire.extend_from_slice(&chunk);
        c.send(&wire);
        let r = c.reply();
        assert!(r.starts_with("550 5.6.0"), "BDAT {shape:?}: {r}");
        exactly_one_reply(&mut c);
    }
    assert_eq!(d.spool_stats()["total"], 0);
    // a well-formed CRLF.CRLF inside a BDAT chunk is content: one message,
    // one 250, the "commands" after it stored as text
    let mut c = transaction(&d);
    let mut chunk = b"Subject: x\r\n\r\nfirst\r\n.\r\n".to_vec();
    chunk.extend_from_slice(SMUGGLED);
    let mut wire = format!("BDAT {} LAST\r\n", chunk.len()).into_bytes();
    wire.extend_from_slice(&chunk);
    c.send(&wire);
    let id = queued_id(&c.reply());
    exactly_one_reply(&mut c);
    assert_eq!(d.spool_stats()["total"], 1);
    let file = d.spooled_file(4, &id);
    assert!(
        file.windows(SMUGGLED.len()).any(|w| w == SMUGGLED),
        "the chunk is stored whole"
    );
    // BDAT never allocates what it announces: a 2 GB chunk is read and
    // discarded, then refused for its size
    let pid = d.pid();
    let before = rss_kib(pid);
    let mut c = transaction(&d);
    c.send(b"BDAT 2000000000 LAST\r\n");
    let junk = vec![b'z'; 1 << 20];
    for _ in 0..8 {
        c.send(&junk);
    }
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "RSS grew by {grown} KiB for a BDAT chunk"
    );
    drop(c);
    // sequence errors
    // (a refused chunk is still read to its end: RFC 3030 §2)
    let mut c = Client::hello(d.addr("mx"));
    c.send(b"BDAT 10 LAST\r\n0123456789");
    let r = c.reply();
    assert!(r.starts_with("503 5.5.1"), "{r}");
    let mut c = transaction(&d);
    c.send(b"BDAT 4\r\nabcd");
    assert!(c.reply().starts_with("250"));
    c.cmd("DATA", "503 5.5.1");
    c.cmd("BDAT x", "501");
}

#[test]
fn mail_that_has_looped_is_refused() {
    let d = Daemon::start(SMALL);
    let hops = |n: usize| {
        let mut m = String::new();
        for i in 0..n {
            m.push_str(&format!(
                "Received: from h{i}.test by h{}.test; Thu, 1 Jan 2026 00:00:00 +0000\r\n",
                i + 1
            ));
        }
        m + "Subject: loop\r\n\r\nbody\r\n"
    };
    let mut c = Client::hello(d.addr("mx"));
    let r = c.send_mail("a@example.com", &["b@example.net"], &hops(100));
    assert!(r.starts_with("554 5.4.6"), "{r}");
    let r = c.send_mail("a@example.com", &["b@example.net"], &hops(99));
    queued_id(&r);
    assert_eq!(d.spool_stats()["total"], 1);
}

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
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    drop(c);

    // global cap: 12 connections in all
    let more: Vec<Client> = (3..11)
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

#[test]
fn auth_edge_cases_get_their_rfc_4954_replies() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(dir.path());
    let hash = password_hash("s3cret");
    let d = Daemon::start(&format!(
        r#"
[[listener]]
name = "sub"
bind = "127.0.0.1:0"
tls = "starttls"
require_auth = true
[relay]
trusted_networks = []
[[smtp_user]]
name = "app"
password_hash = "{hash}"
{}"#,
        cert.config()
    ));
    let tls_client = || {
        let mut c = Client::connect(d.addr("sub"));
        c.greeting("220");
        let ehlo = c.cmd("EHLO app.test", "250");
        assert!(!ehlo.contains("AUTH"), "AUTH offered before TLS: {ehlo}");
        c.cmd("AUTH PLAIN AGFwcABzM2NyZXQ=", "538 5.7.11");
        c.cmd("STARTTLS", "220");
        let mut c = c.start_tls(cert.client_config());
        let ehlo = c.cmd("EHLO app.test", "250");
        assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
        assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
        c
    };
    let mut c = tls_client();
    c.cmd("AUTH CRAM-MD5", "504 5.5.4");
    c.cmd("AUTH PLAIN !!!notbase64", "501 5.5.2");
    c.cmd("AUTH PLAIN", "334");
    c.cmd("*", "501 5.0.0");
    c.cmd("AUTH LOGIN", "334");
    c.cmd("%%%", "501 5.5.2");
    c.cmd("AUTH PLAIN", "334");
    let huge = "QUFB".repeat(4000);
    c.cmd(&huge, "500 5.5.6");
    c.cmd("NOOP", "250");
    // the same answer, after the same delay, for a bad user and a bad password
    let mut times = Vec::new();
    for creds in ["AG5vYm9keQBzM2NyZXQ=", "AGFwcAB3cm9uZw=="] {
        let t = Instant::now();
        c.cmd(&format!("AUTH PLAIN {creds}"), "535 5.7.8 ");
        times.push(t.elapsed());
    }
    assert!(
        times.iter().all(|t| *t >= Duration::from_millis(900)),
        "{times:?}"
    );
    let spread = times[0].abs_diff(times[1]);
    assert!(spread < Duration::from_millis(500), "{times:?}");
    c.cmd("AUTH PLAIN AGFwcABzM2NyZXQ=", "235 2.7.0");
    c.cmd("AUTH PLAIN AGFwcABzM2NyZXQ=", "503 5.5.1");
    // a failure more ends the session
    let mut c = tls_client();
    for _ in 0..2 {
        c.cmd("AUTH PLAIN AGFwcAB4", "535 5.7.8");
    }
    c.cmd("AUTH PLAIN AGFwcAB4", "535 5.7.8");
    assert!(c.reply().starts_with("421 4.7.0"));
    eventually("session closed", || c.is_closed());
}

fn password_hash(pw: &str) -> String {
    let mut child = std::process::Command::new(laneway_tests::laneway_bin())
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn corrupt_and_truncated_spool_files_are_quarantined_at_start() {
    let mut d = Daemon::start(SMALL);
    let ids: Vec<String> = (0..4)
        .map(|i| {
            let mut c = Client::hello(d.addr("mx"));
            queued_id(&c.send_mail(
                "a@example.com",
                &["b@example.net"],
                &format!("Subject: {i}\r\n\r\nbody {i}\r\n"),
            ))
        })
        .collect();
    assert!(d.stop().success());
    let path = |id: &str| {
        let lanes = d.spool().join("lanes").join("4");
        std::fs::read_dir(lanes)
            .unwrap()
            .flatten()
            .map(|s| s.path().join(id))
            .find(|p| p.exists())
            .unwrap()
    };
    // truncated in the middle, one byte flipped, emptied
    let p0 = path(&ids[0]);
    let len = std::fs::metadata(&p0).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p0).unwrap();
    f.set_len(len / 2).unwrap();
    let p1 = path(&ids[1]);
    let mut bytes = std::fs::read(&p1).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0x55;
    std::fs::write(&p1, bytes).unwrap();
    std::fs::write(path(&ids[2]), b"").unwrap();
    // and a stranger with a message-id name
    let stranger = p0.parent().unwrap().join("00000000000000ff");
    std::fs::write(&stranger, b"not a spool file at all").unwrap();

    d.restart();
    assert!(d.wait_log(|l| l.contains("spool recovered") && l.contains("quarantined=4")));
    assert_eq!(d.spooled_ids(4), vec![ids[3].clone()]);
    let quarantined: HashSet<String> = std::fs::read_dir(d.spool().join("quarantine"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for id in [&ids[0], &ids[1], &ids[2], &"00000000000000ff".to_string()] {
        assert!(
            quarantined.iter().any(|q| q.starts_with(id.as_str())),
            "{id} not in quarantine: {quarantined:?}"
        );
        assert!(
            d.wait_log(|l| l.contains("quarantine") && l.contains(id.as_str())),
            "{id} not reported"
        );
    }
    // and the daemon serves on
    let mut c = Client::hello(d.addr("mx"));
    queued_id(&c.send_mail(
        "a@example.com",
        &["b@example.net"],
        "Subject: after\r\n\r\nx\r\n",
    ));
}

/// A relay config delivering through the test DNS to `port`.
fn relay(dns: &TestDns, port: u16, extra: &str) -> String {
    format!(
        r#"
[[listener]]
name = "mx"
bind = "127.0.0.1:0"
trust_priority = true
[relay]
trusted_networks = ["127.0.0.1/32"]
[queue]
retry_base = "200ms"
retry_max = "500ms"
[outbound]
port = {port}
idle_timeout = "300ms"
connect_timeout = "2s"
command_timeout = "2s"
[log]
events = "{{dir}}/events.jsonl"
{}
{extra}
"#,
        dns.config()
    )
}

fn events(d: &Daemon) -> Vec<serde_json::Value> {
    std::fs::read_to_string(d.dir().join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("event JSON"))
        .collect()
}

/// What a hostile MX does.
#[derive(Clone, Copy)]
enum Hostile {
    /// An endless multi-line greeting.
    EndlessGreeting,
    /// One greeting line that never ends.
    HugeLine,
    /// Takes the whole message, then hangs up instead of replying — the
    /// first `n` times; afterwards it accepts.
    HangUpAfterDot(usize),
}

/// A raw SMTP server on 127.0.0.1 with hostile habits; returns its port
/// and the messages it finally accepted (their `Subject:` lines).
fn hostile_mx(how: Hostile) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let conns = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let (g, n) = (g.clone(), conns.fetch_add(1, Ordering::SeqCst));
            std::thread::spawn(move || {
                let _ = serve_hostile(s, how, n, &g);
            });
        }
    });
    (port, got)
}

fn serve_hostile(
    mut s: TcpStream,
    how: Hostile,
    conn: usize,
    got: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    s.set_write_timeout(Some(DEADLINE))?;
    match how {
        Hostile::EndlessGreeting => {
            let line = format!("220-{}\r\n", "x".repeat(200));
            loop {
                s.write_all(line.as_bytes())?;
            }
        }
        Hostile::HugeLine => {
            s.write_all(b"220 ")?;
            let chunk = vec![b'x'; 64 * 1024];
            loop {
                s.write_all(&chunk)?;
            }
        }
        Hostile::HangUpAfterDot(n) => {
            s.write_all(b"220 hostile.test ESMTP\r\n")?;
            let mut r = BufReader::new(s.try_clone()?);
            let mut subject = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                match verb.as_str() {
                    "EHLO" | "HELO" => s.write_all(b"250 hostile.test\r\n")?,
                    "MAIL" | "RCPT" | "RSET" | "NOOP" => s.write_all(b"250 ok\r\n")?,
                    "QUIT" => {
                        s.write_all(b"221 bye\r\n")?;
                        return Ok(());
                    }
                    "DATA" => {
                        s.write_all(b"354 go\r\n")?;
                        loop {
                            let mut l = String::new();
                            if r.read_line(&mut l)? == 0 {
                                return Ok(());
                            }
                            if l == ".\r\n" {
                                break;
                            }
                            if let Some(v) = l.strip_prefix("Subject: ") {
                                subject = v.trim().to_string();
                            }
                        }
                        if conn < n {
                            // the message is in, the reply never comes
                            return Ok(());
                        }
                        got.lock().unwrap().push(subject.clone());
                        s.write_all(b"250 ok\r\n")?;
                    }
                    _ => s.write_all(b"502 no\r\n")?,
                }
            }
        }
    }
}

#[test]
fn hostile_mx_hosts_cannot_hurt_the_relay() {
    for how in [Hostile::EndlessGreeting, Hostile::HugeLine] {
        let dns = TestDns::start();
        let (port, _) = hostile_mx(how);
        dns.mx("example.test", 10, "mx.example.test");
        dns.a("mx.example.test", "127.0.0.1");
        let d = Daemon::start(&relay(&dns, port, ""));
        let pid = d.pid();
        let mut c = Client::hello(d.addr("mx"));
        let id = queued_id(&c.send_mail(
            "a@sender.test",
            &["b@example.test"],
            "Subject: x\r\n\r\nx\r\n",
        ));
        eventually("two deferrals", || {
            events(&d)
                .iter()
                .filter(|e| e["id"] == id && e["result"] == "deferred")
                .count()
                >= 2
        });
        let rss = rss_kib(pid);
        assert!(rss < 200 * 1024, "RSS {rss} KiB talking to a hostile MX");
        assert_eq!(d.spooled_ids(4), vec![id]);
    }

    // a hang-up after the final dot: retried, delivered (a duplicate would
    // be acceptable, a loss is not)
    let dns = TestDns::start();
    let (port, got) = hostile_mx(Hostile::HangUpAfterDot(2));
    dns.mx("example.test", 10, "mx.example.test");
    dns.a("mx.example.test", "127.0.0.1");
    let d = Daemon::start(&relay(&dns, port, ""));
    let mut c = Client::hello(d.addr("mx"));
    let id = queued_id(&c.send_mail(
        "a@sender.test",
        &["b@example.test"],
        "Subject: hang-up\r\n\r\nx\r\n",
    ));
    eventually("delivered after the hang-ups", || {
        events(&d)
            .iter()
            .any(|e| e["id"] == id && e["result"] == "delivered")
    });
    assert_eq!(*got.lock().unwrap(), vec!["hang-up".to_string()]);
    let deferred = events(&d)
        .iter()
        .filter(|e| e["id"] == id && e["result"] == "deferred")
        .count();
    assert_eq!(deferred, 2);
    eventually("spool empty", || d.spool_stats()["total"] == 0);
}

#[test]
fn a_null_sender_message_that_fails_makes_no_bounce() {
    let dns = TestDns::start();
    let mx = Sink::spawn(SinkConfig {
        reply: Some(Arc::new(|e: &Event<'_>| match e {
            Event::Rcpt(_) => Some("550 5.1.1 no such user".into()),
            _ => None,
        })),
        ..Default::default()
    });
    dns.mx("example.test", 10, "mx.example.test");
    dns.a("mx.example.test", "127.0.0.1");
    let d = Daemon::start(&relay(&dns, mx.addr.port(), ""));
    let mut c = Client::hello(d.addr("mx"));
    // a bounce (null sender) that bounces, and a normal message whose
    // sender is at the same refusing host: that one gets its DSN, which
    // bounces in turn — and that must be the end of it
    let null = queued_id(&c.send_mail("", &["gone@example.test"], "Subject: dsn\r\n\r\nx\r\n"));
    let normal = queued_id(&c.send_mail(
        "sender@example.test",
        &["gone2@example.test"],
        "Subject: normal\r\n\r\nx\r\n",
    ));
    eventually("both failed and the spool is empty", || {
        let ev = events(&d);
        let failed = |id: &str| ev.iter().any(|e| e["id"] == id && e["result"] == "failed");
        failed(&null) && failed(&normal) && d.spool_stats()["total"] == 0
    });
    let ev = events(&d);
    let dsn_sent = ev
        .iter()
        .filter(|e| e["result"] == "failed" && e["id"] != null && e["id"] != normal)
        .count();
    assert_eq!(
        dsn_sent, 1,
        "exactly one DSN (for the normal message), and it was not bounced again: {ev:?}"
    );
    // the sink refused every RCPT, so it never took a message
    assert_eq!(mx.count(), 0);
    assert!(
        d.wait_log(|l| l.contains(&null) && l.contains("no DSN")),
        "the log says why no DSN was sent"
    );
}

/// Recipients per message in the crash test: with VERP each gets a
/// transaction of its own, so a message is a batch of transactions.
const CRASH_RCPTS: usize = 4;

/// `kill -9` twenty times while mail flows: nothing acknowledged is lost,
/// and a crash repeats at most the one transaction each connection had in
/// flight — each recipient's outcome is recorded before the connection's
/// next transaction, also between the per-recipient (VERP) transactions of
/// one message.
#[test]
fn kill_9_in_a_loop_under_delivery_load_loses_nothing() {
    let dns = TestDns::start();
    let mx = Sink::spawn(SinkConfig {
        delay: Duration::from_millis(2),
        ..Default::default()
    });
    dns.mx("example.test", 10, "mx.example.test");
    dns.a("mx.example.test", "127.0.0.1");
    let keys = tempfile::tempdir().unwrap();
    let secret = keys.path().join("bounce.secret");
    std::fs::write(&secret, "a bounce secret of more than sixteen bytes").unwrap();
    let verp = format!(
        "[auth]\nbounce_secret_file = \"{}\"\n[[domain]]\nname = \"sender.test\"\nbounce_domain = \"bounces.sender.test\"\n",
        secret.display()
    );
    let mut d = Daemon::start(&relay(&dns, mx.addr.port(), &verp));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let seq = Arc::new(AtomicUsize::new(0));
    let rounds = 20;
    // connections open at the sink at each kill: each can have at most one
    // transaction whose outcome Laneway had not yet recorded
    let mut in_flight = Vec::new();
    let mut kills = Vec::new();
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let before = acked.lock().unwrap().len();
        let addr = d.addr("mx");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (acked, seq, stop) = (acked.clone(), seq.clone(), stop.clone());
                std::thread::spawn(move || load(addr, &acked, &seq, &stop))
            })
            .collect();
        eventually("more messages acknowledged", || {
            acked.lock().unwrap().len() >= before + 15
        });
        // kill at a moment that varies from round to round
        std::thread::sleep(Duration::from_millis((round as u64 * 37) % 50));
        let open_before = mx.open_connections();
        kills.push(std::time::Instant::now());
        d.kill9();
        in_flight.push(open_before.max(mx.open_connections()));
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().unwrap();
        }
        d.restart();
    }
    let acked = acked.lock().unwrap().clone();
    eventually("the spool drains", || d.spool_stats()["total"] == 0);
    let sent = seq.load(Ordering::SeqCst) * CRASH_RCPTS;
    // what arrived, per (message, recipient): one transaction each
    let mut arrived: HashMap<(String, String), Vec<std::time::Instant>> = HashMap::new();
    for m in mx.messages() {
        let id = laneway_bench::sink::header(&m.data, "X-Bench-Id").expect("bench id");
        assert_eq!(m.rcpts.len(), 1, "VERP: one recipient per transaction");
        // when its transaction began: one in flight at a kill may end after it
        arrived
            .entry((id, m.rcpts[0].clone()))
            .or_default()
            .push(m.mail_at);
    }
    let acked_set: std::collections::HashSet<&String> = acked.iter().collect();
    let expected: Vec<(String, String)> = acked
        .iter()
        .flat_map(|id| {
            let n = &id[1..];
            (0..CRASH_RCPTS).map(move |j| (id.clone(), format!("r{n}-{j}@example.test")))
        })
        .collect();
    let lost: Vec<&(String, String)> = expected
        .iter()
        .filter(|k| !arrived.contains_key(*k))
        .collect();
    let arrivals: usize = arrived.values().map(Vec::len).sum();
    let distinct = arrived.len();
    let duplicates = arrivals - distinct;
    let unacked = arrived
        .keys()
        .filter(|(id, _)| !acked_set.contains(id))
        .count();
    // a repeat belongs to the first kill after the arrival it repeats
    let mut repeated_at_kill = vec![0usize; rounds];
    for t in arrived.values_mut() {
        t.sort();
        for w in t.windows(2) {
            if let Some(k) = kills.iter().position(|k| *k >= w[0]) {
                repeated_at_kill[k] += 1;
            }
        }
    }
    let in_flight_total: usize = in_flight.iter().sum();
    let acknowledged = expected.len();
    println!(
        "kill -9 x{rounds}, {CRASH_RCPTS} recipients a message (one VERP transaction each): {sent} recipients sent = {distinct} arrived + {} never stored (the kill came first); {distinct} arrived = {acknowledged} acknowledged + {unacked} stored but never acknowledged (killed between fsync and 250); {arrivals} transactions = {distinct} first + {duplicates} repeated (per kill {repeated_at_kill:?}); {in_flight_total} transactions in flight at the kills (connections open at the sink: {in_flight:?}); {} lost",
        sent - distinct,
        lost.len()
    );
    assert_eq!(acked_set.len(), acked.len(), "an id was acknowledged twice");
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {lost:?}"
    );
    assert_eq!(distinct, acknowledged + unacked);
    assert_eq!(
        repeated_at_kill.iter().sum::<usize>(),
        duplicates,
        "every repeat follows a kill"
    );
    for (k, (rep, open)) in repeated_at_kill.iter().zip(&in_flight).enumerate() {
        assert!(
            rep <= open,
            "kill {k}: {rep} transactions repeated, but only {open} were in flight"
        );
    }
}

/// Sends messages of [`CRASH_RCPTS`] recipients with unique `X-Bench-Id`s
/// until told to stop or the connection dies; records the acknowledged ones.
fn load(addr: SocketAddr, acked: &Mutex<Vec<String>>, seq: &AtomicUsize, stop: &AtomicBool) {
    let mut c = Client::connect(addr);
    if c.try_reply().is_err() {
        return;
    }
    c.send(b"EHLO load\r\n");
    if c.try_reply().is_err() {
        return;
    }
    while !stop.load(Ordering::SeqCst) {
        let n = seq.fetch_add(1, Ordering::SeqCst);
        let id = format!("k{n}");
        let rcpts: String = (0..CRASH_RCPTS)
            .map(|j| format!("RCPT TO:<r{n}-{j}@example.test>\r\n"))
            .collect();
        let msg = format!(
            "MAIL FROM:<a@sender.test>\r\n{rcpts}DATA\r\nFrom: a@sender.test\r\nX-Bench-Id: {id}\r\nSubject: {id}\r\n\r\n{}\r\n.\r\n",
            "z".repeat(500)
        );
        if c.try_send(msg.as_bytes()).is_err() {
            return;
        }
        for _ in 0..CRASH_RCPTS + 3 {
            match c.try_reply() {
                Ok(r) if r.starts_with('2') || r.starts_with('3') => {
                    if r.starts_with("250 2.0.0 Ok: queued") {
                        acked.lock().unwrap().push(id.clone());
                    }
                }
                _ => return,
            }
        }
    }
}

/// A small tmpfs, mounted for the test and unmounted after.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "4m"), or says why it cannot.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?.keep();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Sends one message of `size` bytes of body; returns the final reply.
fn send_sized(d: &Daemon, size: usize) -> String {
    let mut c = Client::hello(d.addr("mx"));
    let r = c.cmd("MAIL FROM:<a@example.com>", "");
    if !r.starts_with("250") {
        return r;
    }
    c.cmd("RCPT TO:<b@example.net>", "250");
    c.cmd("DATA", "354");
    let line = format!("{}\r\n", "f".repeat(98));
    let mut body = String::from("Subject: fill\r\n\r\n");
    body.push_str(&line.repeat(size / line.len()));
    body.push_str(".\r\n");
    c.send(body.as_bytes());
    c.reply()
}

fn temp_files(spool: &std::path::Path) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(spool.join("tmp"))
        .unwrap()
        .flatten()
        .collect()
}

#[test]
fn a_full_disk_refuses_cleanly_and_sigxfsz_is_ignored() {
    let fs = match Tmpfs::mount("4m") {
        Ok(fs) => fs,
        Err(why) => {
            println!("SKIPPED disk-full part: {why}");
            return;
        }
    };
    let mut d = Daemon::start(&format!(
        r#"
[server]
hostname = "laneway.test"
spool_dir = "{}"
[[listener]]
name = "mx"
bind = "127.0.0.1:0"
max_message_size = "4MiB"
[spool]
min_free_bytes = "512KiB"
"#,
        fs.0.display()
    ));
    let mut accepted = 0;
    // 1.5 MiB messages: two fit, the third runs out of space while being
    // written — a 4xx, never a 250, and no partial file anywhere
    for _ in 0..2 {
        let r = send_sized(&d, 1536 << 10);
        assert!(r.starts_with("250"), "{r}");
        accepted += 1;
    }
    let r = send_sized(&d, 1536 << 10);
    assert!(r.starts_with("452 4.3.1") || r.starts_with("451"), "{r}");
    assert!(temp_files(&fs.0).is_empty(), "partial file left behind");
    // fill up to the reserve; then MAIL FROM itself is refused
    loop {
        let r = send_sized(&d, 200 << 10);
        if r.starts_with("250") {
            accepted += 1;
            continue;
        }
        assert!(r.starts_with("452 4.3.1"), "{r}");
        break;
    }
    let mut c = Client::hello(d.addr("mx"));
    c.cmd("MAIL FROM:<a@example.com>", "452 4.3.1");
    assert!(temp_files(&fs.0).is_empty());
    // everything acknowledged is there, whole, after a restart
    d.kill9();
    d.restart();
    assert!(d.wait_log(|l| l.contains("spool recovered")));
    assert_eq!(d.spool_stats()["total"], accepted);
    assert_eq!(
        std::fs::read_dir(fs.0.join("quarantine")).unwrap().count(),
        0,
        "nothing acknowledged was damaged"
    );
    d.kill9();
    drop(fs);

    // a file size limit: SIGXFSZ must not kill the daemon; the write fails
    // and the client is told to try later
    let d = Daemon::start(SMALL);
    let out = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", d.pid()))
        .arg("--fsize=20000:20000")
        .output()
        .expect("prlimit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = send_sized(&d, 60 << 10);
    assert!(r.starts_with("451") || r.starts_with("452"), "{r}");
    let r = send_sized(&d, 2 << 10);
    queued_id(&r);
    assert!(temp_files(&d.spool()).is_empty());
    assert_eq!(d.spool_stats()["total"], 1);
}
