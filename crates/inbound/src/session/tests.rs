//! Session tests over in-memory pipes, written as SMTP transcripts.

use std::sync::Arc;

use laneway_bench::complete_reply;
use laneway_common::config::Config;
use laneway_common::{Priority, Submission};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::Flow;
use crate::testing::MemoryIngest;

/// The test listeners plus one that waits briefly for slow data.
const SLOW: &str = r#"
[[listener]]
name = "slow"
bind = "127.0.0.1:2"
data_timeout = "2s"
min_data_rate = 10
"#;

struct Harness {
    ingest: Arc<MemoryIngest>,
    client: DuplexStream,
    task: tokio::task::JoinHandle<Flow>,
    buf: Vec<u8>,
}

fn start(listener: &str, peer: &str) -> Harness {
    let cfg: Config = Config::from_toml(
        &crate::testing::test_config(20, SLOW),
        std::path::Path::new("."),
    )
    .unwrap()
    .config;
    let (mut s, ingest) = crate::testing::session(&cfg, listener, peer.parse().unwrap());
    let (client, mut server) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(async move { s.run(&mut server).await });
    Harness {
        ingest,
        client,
        task,
        buf: Vec::new(),
    }
}

impl Harness {
    /// Reads one complete (possibly multi-line) reply.
    async fn reply(&mut self) -> String {
        loop {
            if let Some(end) = complete_reply(&self.buf) {
                let r: Vec<u8> = self.buf.drain(..end).collect();
                return String::from_utf8(r).unwrap();
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                self.client.read(&mut chunk),
            )
            .await
            .expect("reply within 10 s")
            .unwrap();
            assert!(
                n > 0,
                "connection closed; had {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.client.write_all(bytes).await.unwrap();
    }

    /// Sends a command and checks the reply starts with `expect`.
    async fn cmd(&mut self, line: &str, expect: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let r = self.reply().await;
        assert!(
            r.starts_with(expect),
            "{line:?} -> {r:?}, wanted {expect:?}"
        );
        r
    }

    async fn hello(&mut self) {
        let g = self.reply().await;
        assert!(g.starts_with("220 mx.test"), "{g}");
        self.cmd("EHLO client.test", "250").await;
    }

    fn submissions(&self) -> Vec<Submission> {
        self.ingest.submissions()
    }
}

const TRUSTED: &str = "127.0.0.1:40000";
const STRANGER: &str = "192.0.2.7:40000";

#[tokio::test]
async fn full_transcript_queues_the_message() {
    let mut h = start("plain", TRUSTED);
    let g = h.reply().await;
    assert_eq!(g, "220 mx.test ESMTP Laneway\r\n");
    let ehlo = h.cmd("EHLO client.test", "250-mx.test").await;
    for cap in [
        "PIPELINING",
        "SIZE 65536",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "DSN",
        "CHUNKING",
    ] {
        assert!(ehlo.contains(cap), "{cap} missing: {ehlo}");
    }
    assert!(!ehlo.contains("STARTTLS") && !ehlo.contains("AUTH") && !ehlo.contains("MT-PRIORITY"));
    // RFC 8689: REQUIRETLS is neither offered nor taken without TLS
    assert!(!ehlo.contains("REQUIRETLS"), "{ehlo}");
    h.cmd("MAIL FROM:<alice@example.com> REQUIRETLS", "530 5.7.10")
        .await;
    h.cmd(
        "MAIL FROM:<alice@example.com> SIZE=100 RET=HDRS ENVID=abc",
        "250 2.1.0",
    )
    .await;
    h.cmd(
        "RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.net",
        "250 2.1.5",
    )
    .await;
    h.cmd("DATA", "354").await;
    h.send(b"Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n").await;
    let r = h.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    h.cmd("QUIT", "221 2.0.0").await;
    let subs = h.submissions();
    assert_eq!(h.task.await.unwrap(), Flow::Close);
    assert_eq!(subs.len(), 1);
    let s = &subs[0];
    assert_eq!(s.message, b"Subject: hi\r\n\r\n.dot\r\nbody\r\n");
    assert_eq!(s.envelope.sender, "alice@example.com");
    assert_eq!(s.envelope.envid.as_deref(), Some("abc"));
    assert_eq!(s.envelope.ret, Some(laneway_common::envelope::DsnRet::Hdrs));
    let rc = &s.envelope.recipients[0];
    assert!(rc.notify.success && rc.notify.failure && !rc.notify.delay && rc.notify.explicit);
    assert_eq!(rc.orcpt.as_deref(), Some("rfc822;bob@example.net"));
    assert_eq!(s.envelope.origin.protocol.as_deref(), Some("ESMTP"));
    assert!(s.envelope.origin.trusted);
    // a plain listener never lets the message choose its lane
    assert!(!s.lane.trust_header);
    assert_eq!(s.lane.explicit, None);
}

#[tokio::test]
async fn pipelined_commands_get_every_reply_in_order() {
    let mut h = start("plain", TRUSTED);
    h.reply().await;
    h.send(b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n").await;
    assert!(h.reply().await.starts_with("250-mx.test"));
    assert!(h.reply().await.starts_with("250 2.1.0"));
    assert!(h.reply().await.starts_with("250 2.1.5"));
    assert!(h.reply().await.starts_with("250 2.1.5"));
    assert!(h.reply().await.starts_with("354"));
    h.send(b"Subject: x\r\n\r\nx\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        .await;
    assert!(h.reply().await.starts_with("250 2.0.0 Ok: queued"));
    assert!(h.reply().await.starts_with("250 2.0.0 Ok"));
    assert!(h.reply().await.starts_with("250 2.0.0 Ok"));
    assert!(h.reply().await.starts_with("221"));
    assert_eq!(h.submissions()[0].envelope.recipients.len(), 2);
}

#[tokio::test]
async fn bdat_chunks_make_one_message() {
    let mut h = start("plain", TRUSTED);
    h.hello().await;
    h.cmd("MAIL FROM:<a@example.com>", "250").await;
    h.cmd("RCPT TO:<b@example.net>", "250").await;
    h.send(b"BDAT 14\r\nSubject: x\r\n\r\nBDAT 3 LAST\r\nabc")
        .await;
    assert!(h.reply().await.starts_with("250 2.0.0 14 octets"));
    assert!(h.reply().await.starts_with("250 2.0.0 Ok: queued"));
    assert_eq!(h.submissions()[0].message, b"Subject: x\r\n\r\nabc\r\n");
    // BDAT without a transaction: the chunk is read and refused
    h.send(b"BDAT 5 LAST\r\nhello").await;
    assert!(h.reply().await.starts_with("503 5.5.1"));
    h.cmd("NOOP", "250").await;
    // DATA after BDAT is a bad sequence
    h.cmd("MAIL FROM:<a@example.com>", "250").await;
    h.cmd("RCPT TO:<b@example.net>", "250").await;
    h.send(b"BDAT 3\r\nabc").await;
    h.reply().await;
    h.cmd("DATA", "503 5.5.1").await;
    h.cmd("BDAT 0 LAST", "250 2.0.0 Ok: queued").await;
    assert_eq!(h.submissions()[1].message, b"abc\r\n");
}

#[tokio::test]
async fn relay_policy_for_strangers() {
    let mut h = start("plain", STRANGER);
    h.hello().await;
    h.cmd("MAIL FROM:<a@example.com>", "250").await;
    h.cmd("RCPT TO:<victim@elsewhere.test>", "550 5.7.1").await;
    h.cmd("RCPT TO:<user@local.test>", "250").await;
    h.cmd("RCPT TO:<USER@LOCAL.TEST.>", "250").await;
    h.cmd("RCPT TO:<Postmaster>", "250").await;
    for shape in [
        "<victim%elsewhere.test@local.test>",
        "<elsewhere.test!victim@local.test>",
        "<@local.test:victim@elsewhere.test>",
        "<\"victim@elsewhere.test\"@local.test>",
    ] {
        h.cmd(&format!("RCPT TO:{shape}"), "550 5.7.1").await;
    }
    h.cmd(
        "RCPT TO:<suppressed@local.test>",
        "550 5.7.1 recipient suppressed",
    )
    .await;
    h.cmd("RCPT TO:<>", "501").await;
}

#[tokio::test]
async fn size_limits() {
    let mut h = start("plain", TRUSTED);
    h.hello().await;
    h.cmd("MAIL FROM:<a@example.com> SIZE=999999999", "552 5.3.4")
        .await;
    h.cmd(
        "MAIL FROM:<a@example.com> SIZE=99999999999999999999999999",
        "552 5.3.4",
    )
    .await;
    h.cmd("MAIL FROM:<a@example.com> SIZE=12abc", "501").await;
    h.cmd("MAIL FROM:<a@example.com>", "250").await;
    h.cmd("RCPT TO:<b@example.net>", "250").await;
    h.cmd("DATA", "354").await;
    let line = format!("{}\r\n", "x".repeat(900));
    for _ in 0..100 {
        h.send(line.as_bytes()).await;
    }
    h.send(b".\r\n").await;
    assert!(h.reply().await.starts_with("552 5.3.4"));
    // the connection stays usable
    h.cmd("MAIL FROM:<a@example.com>", "250").await;
    assert!(h.submissions().is_empty());
}

#[tokio::test]
async fn smuggling_is_refused_with_one_reply_and_nothing_stored() {
    let shapes = crate::testing::SMUGGLING_ENDS;
    for shape in shapes {
        let mut h = start("plain", TRUSTED);
        h.hello().await;
        h.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
            .await;
        h.reply().await;
        h.reply().await;
        assert!(h.reply().await.starts_with("354"));
        let mut body = b"Subject: x\r\n\r\nfirst".to_vec();
        body.extend_from_slice(shape);
        body.extend_from_slice(crate::testing::SMUGGLED_TRANSACTION);
        body.extend_from_slice(b"\r\n.\r\n");
        h.send(&body).await;
        let r = h.reply().await;
        assert!(r.starts_with("550 5.6.0"), "{shape:?}: {r}");
        h.cmd("NOOP", "250").await;
        assert!(h.submissions().is_empty(), "{shape:?} stored something");
    }
}

#[tokio::test]
async fn normalize_listener_accepts_bare_lf_but_never_ends_early() {
    let mut h = start("gateway", TRUSTED);
    h.hello().await;
    h.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        .await;
    h.reply().await;
    h.reply().await;
    h.reply().await;
    h.send(b"Subject: x\n\nline\n.\nMAIL FROM:<evil@x.test>\n.\r\n\r\n.\r\n")
        .await;
    let r = h.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued"), "{r}");
    let subs = h.submissions();
    assert_eq!(subs.len(), 1);
    assert_eq!(
        subs[0].message,
        b"Subject: x\r\n\r\nline\r\n.\r\nMAIL FROM:<evil@x.test>\r\n.\r\n\r\n"
    );
}

#[tokio::test]
async fn command_limits() {
    let mut h = start("plain", TRUSTED);
    h.hello().await;
    let long = format!("NOOP {}", "a".repeat(600));
    h.cmd(&long, "500 5.5.2").await;
    h.send(b"NOOP \x00\r\n").await;
    assert!(h.reply().await.starts_with("501"));
    h.cmd("FOO bar", "500 5.5.2").await;
    h.cmd(
        &format!("MAIL FROM:<{}@example.com>", "a".repeat(65)),
        "501",
    )
    .await;
    h.cmd("MAIL FROM:<josé@example.com>", "553 5.6.7").await;
    h.cmd("MAIL FROM:<josé@example.com> SMTPUTF8", "250").await;
    for i in 0..100 {
        h.cmd(&format!("RCPT TO:<r{i}@example.net>"), "250").await;
    }
    h.cmd("RCPT TO:<r100@example.net>", "452 4.5.3").await;
    h.cmd("DATA", "354").await;
    h.send(b"Subject: x\r\n\r\nx\r\n.\r\n").await;
    assert!(h.reply().await.starts_with("250"));
    assert_eq!(h.submissions()[0].envelope.recipients.len(), 100);
    h.cmd("VRFY bob", "252").await;
    h.cmd("EXPN list", "502").await;
}

#[tokio::test]
async fn sequence_errors() {
    let mut h = start("plain", TRUSTED);
    h.reply().await;
    h.cmd("MAIL FROM:<a@example.com>", "503 5.5.1").await;
    h.cmd("EHLO c", "250").await;
    h.cmd("RCPT TO:<b@example.net>", "503 5.5.1").await;
    h.cmd("DATA", "503 5.5.1").await;
    h.cmd("MAIL FROM:<a@example.com>", "250").await;
    h.cmd("MAIL FROM:<a@example.com>", "503 5.5.1").await;
    h.cmd("DATA", "554 5.5.1").await;
    h.cmd("STARTTLS", "502").await;
    h.cmd("AUTH PLAIN AGFsaWNlAHB3", "538 5.7.11").await;
}

#[tokio::test]
async fn priority_on_a_trusted_gateway() {
    let mut h = start("gateway", TRUSTED);
    h.reply().await;
    let ehlo = h.cmd("EHLO c", "250").await;
    assert!(ehlo.contains("MT-PRIORITY"));
    h.cmd("MAIL FROM:<a@example.com> MT-PRIORITY=10", "501 5.5.4")
        .await;
    h.cmd("MAIL FROM:<a@example.com> MT-PRIORITY=x", "501 5.5.4")
        .await;
    h.cmd("MAIL FROM:<a@example.com> MT-PRIORITY=-3", "250")
        .await;
    h.cmd("RCPT TO:<b@example.net>", "250").await;
    h.cmd("DATA", "354").await;
    h.send(b"Subject: x\r\n\r\nx\r\n.\r\n").await;
    h.reply().await;
    let s = &h.submissions()[0];
    assert_eq!(
        s.lane.explicit.as_ref().unwrap().0,
        Priority::new(3).unwrap()
    );
    assert!(s.lane.trust_header);
    // a stranger on the same listener gets no say
    let mut h = start("gateway", STRANGER);
    h.hello().await;
    h.cmd("MAIL FROM:<a@example.com> MT-PRIORITY=9", "250")
        .await;
    h.cmd("RCPT TO:<b@local.test>", "250").await;
    h.cmd("DATA", "354").await;
    h.send(b"X-Priority-Queue: 9\r\n\r\nx\r\n.\r\n").await;
    h.reply().await;
    let s = &h.submissions()[0];
    assert_eq!(s.lane.explicit, None);
    assert!(!s.lane.trust_header);
    // and the plain listener does not offer MT-PRIORITY at all
    let mut h = start("plain", TRUSTED);
    h.hello().await;
    h.cmd("MAIL FROM:<a@example.com> MT-PRIORITY=9", "555 5.5.4")
        .await;
}

#[tokio::test]
async fn spool_full_refuses_at_mail_from() {
    let mut h = start("plain", TRUSTED);
    h.hello().await;
    h.ingest.set_full(true);
    h.cmd("MAIL FROM:<a@example.com>", "452 4.3.1").await;
}

#[tokio::test]
async fn invalid_utf8_in_addresses_and_headers_is_refused_but_8bit_bodies_pass() {
    let mut h = start("plain", TRUSTED);
    h.hello().await;
    h.send(b"MAIL FROM:<jos\xe9@example.com> SMTPUTF8\r\n")
        .await;
    assert!(h.reply().await.starts_with("553 5.6.7"));
    h.cmd("MAIL FROM:<a@example.com> SMTPUTF8", "250").await;
    h.send(b"RCPT TO:<\xff\xfe@example.net>\r\n").await;
    assert!(h.reply().await.starts_with("553 5.6.7"));
    h.send(b"NOOP \xc3\r\n").await;
    assert!(h.reply().await.starts_with("500 5.5.2"));
    h.cmd("RCPT TO:<josé@example.net>", "250").await;
    h.cmd("DATA", "354").await;
    h.send(b"Subject: caf\xe9\r\n\r\nbody\r\n.\r\n").await;
    let r = h.reply().await;
    assert!(r.starts_with("550 5.6.0"), "{r}");
    assert!(h.submissions().is_empty());
    // UTF-8 headers (RFC 6532) and a Latin-1 body are fine
    h.cmd("MAIL FROM:<a@example.com> SMTPUTF8", "250").await;
    h.cmd("RCPT TO:<josé@example.net>", "250").await;
    h.cmd("DATA", "354").await;
    h.send("Subject: café\r\n\r\n".as_bytes()).await;
    h.send(b"caf\xe9\r\n.\r\n").await;
    let r = h.reply().await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(h.submissions().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn data_slower_than_the_minimum_rate_is_cut_off() {
    // data_timeout 2 s, min_data_rate 10 B/s: each read comes within the
    // 2 s idle limit, but 1 byte per 1.5 s never earns enough extra time.
    let mut h = start("slow", TRUSTED);
    h.hello().await;
    h.cmd("MAIL FROM:<a@example.com>", "250").await;
    h.cmd("RCPT TO:<b@example.net>", "250").await;
    h.cmd("DATA", "354").await;
    let started = tokio::time::Instant::now();
    let mut reply = None;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let mut chunk = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(
            std::time::Duration::from_millis(1),
            h.client.read(&mut chunk),
        )
        .await
        {
            reply = Some(String::from_utf8_lossy(&chunk[..n]).into_owned());
            break;
        }
        h.send(b"x").await;
    }
    let reply = reply.expect("the slow client was cut off");
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    assert!(reply.contains("too slowly"), "{reply}");
    assert!(started.elapsed() < std::time::Duration::from_secs(6));
    assert!(h.submissions().is_empty());

    // a client sending steadily at twice the rate gets through, although
    // the whole message takes longer than data_timeout
    let mut h = start("slow", TRUSTED);
    h.hello().await;
    h.cmd("MAIL FROM:<a@example.com>", "250").await;
    h.cmd("RCPT TO:<b@example.net>", "250").await;
    h.cmd("DATA", "354").await;
    h.send(b"Subject: x\r\n\r\n").await;
    for _ in 0..10 {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        h.send(b"0123456789012345678\r\n").await;
    }
    h.send(b".\r\n").await;
    let r = h.reply().await;
    assert!(r.starts_with("250"), "{r}");
}
