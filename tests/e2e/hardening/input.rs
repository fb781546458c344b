//! Hostile input at the front door: smuggling inside BDAT and behind an oversize body, mail loops, AUTH edge cases.

use std::time::{Duration, Instant};

use laneway_inbound::testing::{SMUGGLED_TRANSACTION as SMUGGLED, SMUGGLING_ENDS as SHAPES};
use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::tls::TestCert;
use laneway_tests::{DEADLINE, Daemon, eventually};

use super::*;

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
