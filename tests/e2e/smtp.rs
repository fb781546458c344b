//! SMTP front door, end to end: transcripts, lanes, relay policy, limits,
//! smuggling, STARTTLS and AUTH.

use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::tls::TestCert;
use laneway_tests::{Daemon, eventually};

const PLAIN: &str = r#"
[[listener]]
name = "mx"
bind = "127.0.0.1:0"
max_message_size = "100KiB"
[[listener]]
name = "gateway"
bind = "127.0.0.1:0"
trust_priority = true
[relay]
trusted_networks = ["127.0.0.1/32"]
local_domains = ["local.test"]
"#;

#[test]
fn a_relaying_server_hands_over_mail_and_it_is_on_disk() {
    let d = Daemon::start(PLAIN);
    let mut c = Client::connect(d.addr("mx"));
    c.greeting("220 laneway.test");
    let ehlo = c.cmd("EHLO relay.client.test", "250-laneway.test");
    assert!(
        ehlo.contains("PIPELINING") && ehlo.contains("SIZE 102400") && ehlo.contains("CHUNKING")
    );
    let r = c.send_mail(
        "alice@example.com",
        &["bob@example.net"],
        "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: hi\r\nX-Priority-Queue: 9\r\n\r\n.leading dot\r\nbody\r\n",
    );
    let id = queued_id(&r);
    c.cmd("QUIT", "221");
    // a plain listener ignores X-Priority-Queue: default lane 4
    assert_eq!(d.spooled_ids(4), vec![id.clone()]);
    let stats = d.spool_stats();
    assert_eq!(stats["total"], 1);
    assert_eq!(stats["lanes"]["4"], 1);
    let file = String::from_utf8(d.spooled_file(4, &id)).unwrap();
    assert!(
        !file.to_ascii_lowercase().contains("x-priority-queue"),
        "{file}"
    );
    assert!(
        file.contains(&format!("by laneway.test (Laneway) with ESMTP id {id}")),
        "{file}"
    );
    assert!(file.contains("\r\n.leading dot\r\n"));
    assert!(d.wait_log(|l| l.contains(&format!("id={id}")) && l.contains("queued")));
}

#[test]
fn lanes_on_plain_and_trusted_listeners() {
    let d = Daemon::start(PLAIN);
    let msg = |lane: &str| format!("Subject: x\r\nX-Priority-Queue: {lane}\r\n\r\nbody\r\n");
    let mut g = Client::hello(d.addr("gateway"));
    let id9 = queued_id(&g.send_mail("a@example.com", &["b@example.net"], &msg("9")));
    let id0 = queued_id(&g.send_mail("a@example.com", &["b@example.net"], &msg(" 0 ")));
    g.cmd("MAIL FROM:<a@example.com> MT-PRIORITY=6", "250");
    g.cmd("RCPT TO:<b@example.net>", "250");
    g.cmd("DATA", "354");
    g.send(b"Subject: x\r\n\r\nbody\r\n.\r\n");
    let id7 = queued_id(&g.reply());
    for bad in ["12", "-1", "urgent", "4.5"] {
        let r = g.send_mail("a@example.com", &["b@example.net"], &msg(bad));
        assert!(r.starts_with("550 5.6.0"), "{bad}: {r}");
    }
    g.cmd("MAIL FROM:<a@example.com> MT-PRIORITY=42", "501 5.5.4");
    assert_eq!(d.spooled_ids(9), vec![id9]);
    assert_eq!(d.spooled_ids(0), vec![id0]);
    assert_eq!(d.spooled_ids(7), vec![id7]);
    // an untrusted client on the trusted listener gets the default lane
    let mut s = Client::connect_from(d.addr("gateway"), Some("127.0.0.2"));
    s.greeting("220");
    s.cmd("EHLO stranger.test", "250");
    let id = queued_id(&s.send_mail("a@example.com", &["b@local.test"], &msg("9")));
    assert!(d.spooled_ids(4).contains(&id));
    assert_eq!(d.spool_stats()["total"], 4);
}

#[test]
fn strangers_cannot_relay() {
    let d = Daemon::start(PLAIN);
    let mut s = Client::connect_from(d.addr("mx"), Some("127.0.0.2"));
    s.greeting("220");
    s.cmd("EHLO stranger.test", "250");
    s.cmd("MAIL FROM:<spammer@example.com>", "250");
    s.cmd("RCPT TO:<victim@elsewhere.test>", "550 5.7.1");
    for shape in [
        "<victim%elsewhere.test@local.test>",
        "<elsewhere.test!victim@local.test>",
        "<@local.test:victim@elsewhere.test>",
        "<\"victim@elsewhere.test\"@local.test>",
    ] {
        s.cmd(&format!("RCPT TO:{shape}"), "550 5.7.1");
    }
    s.cmd("RCPT TO:<postmaster@local.test>", "250");
    s.cmd("RCPT TO:<postmaster>", "250");
    s.cmd("RCPT TO:<someone@local.test>", "250");
    assert!(d.wait_log(|l| l.contains("relay access denied")));
}

#[test]
fn size_limit_is_enforced_and_the_connection_survives() {
    let d = Daemon::start(PLAIN);
    let mut c = Client::hello(d.addr("mx"));
    c.cmd("MAIL FROM:<a@example.com> SIZE=200000", "552 5.3.4");
    let big = format!("Subject: big\r\n\r\n{}", "x".repeat(900) + "\r\n").repeat(150);
    let r = c.send_mail("a@example.com", &["b@example.net"], &big);
    assert!(r.starts_with("552 5.3.4"), "{r}");
    let ok = c.send_mail(
        "a@example.com",
        &["b@example.net"],
        "Subject: small\r\n\r\nok\r\n",
    );
    queued_id(&ok);
    assert_eq!(d.spool_stats()["total"], 1);
}

#[test]
fn bdat_and_pipelining() {
    let d = Daemon::start(PLAIN);
    let mut c = Client::hello(d.addr("mx"));
    c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nBDAT 20\r\nSubject: chunked\r\n\r\nBDAT 6 LAST\r\nbody\r\n");
    assert!(c.reply().starts_with("250 2.1.0"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("250 2.0.0 20 octets"));
    let id = queued_id(&c.reply());
    let file = String::from_utf8(d.spooled_file(4, &id)).unwrap();
    assert!(file.contains("Subject: chunked\r\n\r\nbody\r\n"));
    assert!(file.contains("\"b@example.net\"") && file.contains("\"c@example.net\""));
}

#[test]
fn every_smuggling_shape_is_refused_and_nothing_is_stored() {
    let d = Daemon::start(PLAIN);
    let shapes = laneway_inbound::testing::SMUGGLING_ENDS;
    for shape in shapes {
        let mut c = Client::hello(d.addr("mx"));
        c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n");
        c.reply();
        c.reply();
        assert!(c.reply().starts_with("354"));
        let mut body = b"Subject: x\r\n\r\nfirst".to_vec();
        body.extend_from_slice(shape);
        body.extend_from_slice(laneway_inbound::testing::SMUGGLED_TRANSACTION);
        c.send(&body);
        // no early reply: the data has not ended
        c.set_timeout(std::time::Duration::from_millis(300));
        assert!(c.try_reply().is_err(), "early reply after {shape:?}");
        c.set_timeout(laneway_tests::DEADLINE);
        c.send(b"\r\n.\r\n");
        let r = c.reply();
        assert!(r.starts_with("550 5.6.0"), "{shape:?}: {r}");
        // exactly one reply for the whole thing
        c.cmd("NOOP", "250 2.0.0");
    }
    assert_eq!(d.spool_stats()["total"], 0);
}

#[test]
fn starttls_auth_and_injection() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(dir.path());
    let hash = laneway_hash("s3cret");
    let cfg = format!(
        r#"
[[listener]]
name = "submission"
bind = "127.0.0.1:0"
tls = "starttls"
require_auth = true
[[listener]]
name = "smtps"
bind = "127.0.0.1:0"
tls = "implicit"
[relay]
trusted_networks = []
[[smtp_user]]
name = "app"
password_hash = "{hash}"
allowed_from_domains = ["example.com"]
{}"#,
        cert.config()
    );
    let d = Daemon::start(&cfg);
    let tls = cert.client_config();

    // Before TLS: STARTTLS offered, AUTH not; MAIL needs AUTH.
    let mut c = Client::connect(d.addr("submission"));
    c.greeting("220");
    let ehlo = c.cmd("EHLO app.test", "250");
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    c.cmd("AUTH PLAIN AGFwcABzM2NyZXQ=", "538 5.7.11");
    c.cmd("MAIL FROM:<a@example.com>", "530 5.7.0");
    c.cmd("STARTTLS", "220");
    let mut c = c.start_tls(tls.clone());
    c.cmd("MAIL FROM:<a@example.com>", "503 5.5.1"); // state was reset: EHLO again
    let ehlo = c.cmd("EHLO app.test", "250");
    assert!(
        !ehlo.contains("STARTTLS") && ehlo.contains("AUTH PLAIN LOGIN"),
        "{ehlo}"
    );
    c.cmd("AUTH PLAIN AGFwcAB3cm9uZw==", "535 5.7.8"); // app / wrong
    c.cmd("AUTH PLAIN AG5vYm9keQBzM2NyZXQ=", "535 5.7.8"); // nobody / s3cret
    c.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6");
    c.cmd("YXBw", "334 UGFzc3dvcmQ6");
    c.cmd("czNjcmV0", "235 2.7.0");
    c.cmd("AUTH PLAIN AGFwcABzM2NyZXQ=", "503 5.5.1");
    c.cmd("MAIL FROM:<a@other.test>", "550 5.7.1");
    let r = c.send_mail(
        "a@example.com",
        &["b@example.net"],
        "Subject: authed\r\n\r\nx\r\n",
    );
    let id = queued_id(&r);
    let file = String::from_utf8(d.spooled_file(4, &id)).unwrap();
    assert!(file.contains("with ESMTPSA id"), "{file}");
    assert!(file.contains("(using TLSv1."), "{file}");

    // STARTTLS injection: a command pipelined after STARTTLS in the same
    // write must be dropped, not answered inside TLS.
    let mut c = Client::connect(d.addr("submission"));
    c.greeting("220");
    c.cmd("EHLO app.test", "250");
    c.send(b"STARTTLS\r\nNOOP\r\n");
    assert!(c.reply().starts_with("220"));
    let mut c = c.start_tls(tls.clone());
    c.set_timeout(std::time::Duration::from_millis(500));
    assert!(c.try_reply().is_err(), "the injected NOOP was answered");
    c.set_timeout(laneway_tests::DEADLINE);
    c.cmd("NOOP", "250");

    // Implicit TLS listener.
    let mut c = Client::connect(d.addr("smtps")).start_tls(tls);
    c.greeting("220");
    c.cmd("EHLO app.test", "250");

    // Three failures end the session.
    let mut c = Client::connect(d.addr("submission"));
    c.greeting("220");
    c.cmd("EHLO app.test", "250");
    c.cmd("STARTTLS", "220");
    let mut c = c.start_tls(cert.client_config());
    c.cmd("EHLO app.test", "250");
    c.cmd("AUTH PLAIN AGFwcAB4", "535");
    c.cmd("AUTH PLAIN AGFwcAB4", "535");
    c.cmd("AUTH PLAIN AGFwcAB4", "535 5.7.8");
    assert!(c.reply().starts_with("421 4.7.0"));
    eventually("session closed", || c.is_closed());
}

/// `laneway hash-password` through the real binary.
fn laneway_hash(pw: &str) -> String {
    use std::io::Write;
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
