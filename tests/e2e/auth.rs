//! Sender authentication end to end: DKIM signatures that verify against
//! the keygen TXT record served by the in-test DNS server, VERP bounce
//! addresses that decode back to message and recipient, returned DSNs and
//! complaints that suppress, and the replies suppressed recipients get.

use std::process::Command;
use std::sync::Arc;

use laneway_auth::BounceKey;
use laneway_bench::sink::{Event, Sink, SinkConfig};
use laneway_tests::dns::TestDns;
use laneway_tests::http::api;
use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::{DEADLINE, Daemon, eventually, laneway_bin};
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use serde_json::{Value, json};

/// `laneway dkim keygen`: (TXT name, TXT value) and the key file.
fn keygen(
    dir: &std::path::Path,
    selector: &str,
    alg: &str,
) -> (String, String, std::path::PathBuf) {
    let out_file = dir.join(format!("{selector}.pem"));
    let out = Command::new(laneway_bin())
        .args([
            "dkim",
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            selector,
            "--algorithm",
            alg,
            "--out",
        ])
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let name = line.split_whitespace().next().unwrap().to_string();
    assert_eq!(name, format!("{selector}._domainkey.example.com."));
    let value: String = line.split('"').skip(1).step_by(2).collect();
    for q in line.split('"').skip(1).step_by(2) {
        assert!(q.len() <= 255, "TXT strings are at most 255 octets");
    }
    assert!(value.starts_with("v=DKIM1;"), "{value}");
    let mode = std::fs::metadata(&out_file).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    (name, value, out_file)
}

fn verify(dns: &TestDns, message: &[u8]) -> Vec<DkimResult> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ns = NameServerConfig::udp(dns.addr.ip());
        for c in &mut ns.connections {
            c.port = dns.addr.port();
        }
        let mut opts = ResolverOpts::default();
        opts.attempts = 1;
        let auth =
            MessageAuthenticator::new(ResolverConfig::from_name_servers(vec![ns]), opts).unwrap();
        let msg = AuthenticatedMessage::parse(message).unwrap();
        auth.verify_dkim(&msg)
            .await
            .iter()
            .map(|o| o.result().clone())
            .collect()
    })
}

struct Setup {
    d: Daemon,
    dns: TestDns,
    sink: Sink,
    key: BounceKey,
    _dir: tempfile::TempDir,
}

fn setup(sink_cfg: SinkConfig, extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start();
    let (n1, v1, rsa) = keygen(dir.path(), "rsa2026", "rsa-sha256");
    let (n2, v2, ed) = keygen(dir.path(), "ed2026", "ed25519-sha256");
    dns.txt(&n1, &v1);
    dns.txt(&n2, &v2);
    let secret = dir.path().join("bounce.secret");
    std::fs::write(&secret, "0123456789abcdef-a-test-secret\n").unwrap();
    let key = BounceKey::from_file(&secret).unwrap();
    let sink = Sink::spawn(sink_cfg);
    let cfg = format!(
        r#"
[[listener]]
name = "in"
bind = "127.0.0.1:0"
trust_priority = true
[relay]
trusted_networks = ["127.0.0.1/32"]
local_domains = ["local.test"]
[queue]
retry_base = "200ms"
[[route]]
domain = "*"
via = "{}"
[auth]
bounce_secret_file = "{}"
[[domain]]
name = "example.com"
bounce_domain = "bounces.example.com"
[[domain.dkim]]
selector = "rsa2026"
key = "{}"
algorithm = "rsa-sha256"
[[domain.dkim]]
selector = "ed2026"
key = "{}"
algorithm = "ed25519-sha256"
[api]
bind = "127.0.0.1:0"
{extra}
"#,
        sink.addr,
        secret.display(),
        rsa.display(),
        ed.display()
    );
    Setup {
        d: Daemon::start(&cfg),
        dns,
        sink,
        key,
        _dir: dir,
    }
}

fn send(d: &Daemon, from: &str, to: &str, lane: u8, local: Option<&str>) -> Result<String, String> {
    let mut c = Client::connect_from(d.addr("in"), local);
    c.greeting("220");
    c.cmd("EHLO app.example.com", "250");
    c.cmd(&format!("MAIL FROM:<{from}>"), "250");
    c.send(format!("RCPT TO:<{to}>\r\n").as_bytes());
    let r = c.reply();
    if !r.starts_with("250") {
        return Err(r);
    }
    c.cmd("DATA", "354");
    c.send(
        format!(
            "From: Example <{from}>\r\nTo: <{to}>\r\nSubject: Your receipt\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m{lane}@example.com>\r\nX-Priority-Queue: {lane}\r\nX-Bench-Lane: {lane}\r\n\r\nThanks for your order.\r\n  \r\n\r\n.\r\n"
        )
        .as_bytes(),
    );
    let r = c.reply();
    if r.starts_with("250") {
        Ok(queued_id(&r))
    } else {
        Err(r)
    }
}

#[test]
fn dkim_signatures_verify_and_strangers_get_none() {
    let s = setup(SinkConfig::default(), "");
    send(&s.d, "alice@example.com", "bob@remote.test", 9, None).unwrap();
    assert_eq!(s.sink.wait_blocking(1, DEADLINE), 1);
    let m = s.sink.messages()[0].clone();
    let text = String::from_utf8_lossy(&m.data).into_owned();
    assert_eq!(
        text.matches("DKIM-Signature:").count(),
        2,
        "dual signing: {text}"
    );
    assert!(
        text.contains("d=example.com") && text.contains("s=rsa2026") && text.contains("s=ed2026")
    );
    assert!(!text.to_ascii_lowercase().contains("x-priority-queue"));
    let results = verify(&s.dns, &m.data);
    assert_eq!(results, vec![DkimResult::Pass, DkimResult::Pass], "{text}");
    // a header changed after signing no longer verifies
    let tampered = text.replacen("Subject: Your receipt", "Subject: Your refund", 1);
    let results = verify(&s.dns, tampered.as_bytes());
    assert!(
        results.iter().all(|r| matches!(r, DkimResult::Fail(_))),
        "{results:?}"
    );
    // a stranger sending to a local domain gets no signature and no rewrite
    send(
        &s.d,
        "alice@example.com",
        "someone@local.test",
        4,
        Some("127.0.0.2"),
    )
    .unwrap();
    assert_eq!(s.sink.wait_blocking(2, DEADLINE), 2);
    let m = s.sink.messages()[1].clone();
    assert!(!String::from_utf8_lossy(&m.data).contains("DKIM-Signature:"));
    assert_eq!(
        m.from, "alice@example.com",
        "no VERP rewrite for untrusted mail"
    );
}

#[test]
fn verp_bounces_come_back_and_suppress() {
    let s = setup(SinkConfig::default(), "");
    let id = send(&s.d, "alice@example.com", "bob@remote.test", 4, None).unwrap();
    assert_eq!(s.sink.wait_blocking(1, DEADLINE), 1);
    let m = s.sink.messages()[0].clone();
    // the envelope sender is a VERP address at the bounce domain that decodes back
    let (local, domain) = m.from.rsplit_once('@').unwrap();
    assert_eq!(domain, "bounces.example.com");
    assert!(local.len() <= 64 && local.starts_with("b+"), "{}", m.from);
    let (decoded, rcpt) = s.key.decode(local, domain).unwrap();
    assert_eq!((decoded.to_string(), rcpt), (id.clone(), Some(0)));
    // receivers may fold case: still ours
    assert!(s.key.decode(&local.to_ascii_uppercase(), domain).is_ok());
    // a remote MTA returns a DSN to it (an untrusted client)
    let mut c = Client::connect_from(s.d.addr("in"), Some("127.0.0.2"));
    c.greeting("220");
    c.cmd("EHLO mx.remote.test", "250");
    c.cmd("MAIL FROM:<>", "250");
    // forged tokens and unknown local parts are refused; postmaster is not
    c.cmd(
        "RCPT TO:<b+aaaaaaaaaaaaaaaaaaaaaaaaaaaaa@bounces.example.com>",
        "550 5.1.1",
    );
    c.cmd("RCPT TO:<info@bounces.example.com>", "550 5.1.1");
    c.cmd("RCPT TO:<postmaster@bounces.example.com>", "250");
    c.cmd("RSET", "250");
    c.cmd("MAIL FROM:<>", "250");
    c.cmd(&format!("RCPT TO:<{}>", m.from), "250");
    c.cmd("DATA", "354");
    c.send(
        format!(
            "From: MAILER-DAEMON@remote.test\r\nTo: {}\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nNo such user.\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\nFinal-Recipient: rfc822; bob@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: user unknown\r\n\r\n--b1--\r\n.\r\n",
            m.from
        )
        .as_bytes(),
    );
    assert!(c.reply().starts_with("250"));
    // the returned DSN was read, not relayed
    assert!(s.d.wait_log(|l| l.contains("recipient suppressed") && l.contains("bob@remote.test")));
    let out = Command::new(laneway_bin())
        .args(["suppressions", "list", "--json", "--config"])
        .arg(s.d.config_path())
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &list["suppressions"][0];
    assert_eq!(
        (
            e["address"].as_str(),
            e["sender_domain"].as_str(),
            e["lanes"].as_str()
        ),
        (Some("bob@remote.test"), Some("example.com"), Some("all")),
        "{list}"
    );
    assert!(
        s.d.wait_log(|l| l.contains("event=\"returned\"") && l.contains(&id)),
        "a bounced event tied to the original message"
    );
    // the next message to the suppressed recipient is refused at RCPT
    let err = send(&s.d, "alice@example.com", "bob@remote.test", 9, None).unwrap_err();
    assert!(
        err.starts_with("550 5.7.1") && err.contains("suppressed"),
        "{err}"
    );
    assert_eq!(s.sink.count(), 1);
}

/// What a remote refusal means for the suppression list: only a bad
/// mailbox or domain (5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10, 5.2.1) in a reply
/// to RCPT or to the end of data suppresses; sender-side codes (5.1.7,
/// 5.1.8), policy and spam refusals (5.7.x), routing trouble (5.4.4) and a
/// refusal of MAIL FROM never do.
#[test]
fn hard_bounces_during_delivery_suppress_and_policy_refusals_do_not() {
    // (local part, the sink's reply to its RCPT, suppressed)
    const CASES: &[(&str, &str, bool)] = &[
        ("gone", "550 5.1.1 no such user", true),
        ("nodomain", "550 5.1.2 bad destination system", true),
        ("badsyntax", "553 5.1.3 bad address syntax", true),
        ("moved", "550 5.1.6 mailbox has moved", true),
        ("nullmx", "556 5.1.10 recipient address has null MX", true),
        ("disabled", "550 5.2.1 mailbox disabled", true),
        ("spam", "550 5.7.1 message refused as spam", false),
        (
            "dmarc",
            "550 5.7.26 unauthenticated mail is prohibited",
            false,
        ),
        ("badsender", "550 5.1.7 bad sender mailbox", false),
        ("senderdomain", "550 5.1.8 bad sender domain", false),
        ("routing", "550 5.4.4 unable to route", false),
        ("full", "552 5.2.2 mailbox full", false),
    ];
    let s = setup(
        SinkConfig {
            reply: Some(Arc::new(|e: &Event<'_>| match e {
                Event::Rcpt(r) => CASES
                    .iter()
                    .find(|(l, ..)| r.starts_with(&format!("{l}@")))
                    .map(|(_, reply, _)| reply.to_string()),
                Event::Mail(from) if from.contains("refused-sender") => {
                    Some("550 5.1.1 sender unknown".into())
                }
                _ => None,
            })),
            ..Default::default()
        },
        "",
    );
    for (local, ..) in CASES {
        send(
            &s.d,
            "alice@example.com",
            &format!("{local}@remote.test"),
            4,
            None,
        )
        .unwrap();
    }
    // a 5.1.1 to MAIL FROM is about the sender, not the recipient (a
    // sender domain without a bounce domain keeps its address)
    send(
        &s.d,
        "refused-sender@other.test",
        "innocent@remote.test",
        4,
        None,
    )
    .unwrap();
    for (local, ..) in CASES {
        let rcpt = format!("{local}@remote.test");
        assert!(
            s.d.wait_log(|l| l.contains(&rcpt) && l.contains("event=\"bounce\"")),
            "{rcpt} failed"
        );
    }
    assert!(s.d.wait_log(|l| l.contains("innocent@remote.test") && l.contains("event=\"bounce\"")));
    for (local, _, suppressed) in CASES {
        let rcpt = format!("{local}@remote.test");
        if *suppressed {
            assert!(
                s.d.wait_log(
                    |l| l.contains("recipient suppressed after a permanent failure")
                        && l.contains(&rcpt)
                ),
                "{rcpt} suppressed"
            );
            let err = send(&s.d, "alice@example.com", &rcpt, 4, None).unwrap_err();
            assert!(
                err.starts_with("550 5.7.1") && err.contains("suppressed"),
                "{rcpt}: {err}"
            );
        } else {
            // recorded, not suppressed: the next message is accepted
            send(&s.d, "alice@example.com", &rcpt, 4, None)
                .unwrap_or_else(|e| panic!("{rcpt} must not be suppressed: {e}"));
        }
    }
    send(&s.d, "someone@other.test", "innocent@remote.test", 4, None)
        .expect("a refused sender does not suppress the recipient");
    let out = Command::new(laneway_bin())
        .args(["suppressions", "list", "--json", "--config"])
        .arg(s.d.config_path())
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = list["suppressions"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(n, CASES.iter().filter(|c| c.2).count(), "{list}");
}

#[test]
fn complaints_suppress_bulk_lanes_only() {
    let s = setup(SinkConfig::default(), "");
    let token = laneway_api_token(&s);
    send(&s.d, "news@example.com", "carol@remote.test", 1, None).unwrap();
    assert_eq!(s.sink.wait_blocking(1, DEADLINE), 1);
    let verp = s.sink.messages()[0].from.clone();
    // an ARF complaint arrives at postmaster@ of the bounce domain, with the original attached
    let mut c = Client::connect_from(s.d.addr("in"), Some("127.0.0.2"));
    c.greeting("220");
    c.cmd("EHLO fbl.isp.test", "250");
    c.cmd("MAIL FROM:<fbl@isp.test>", "250");
    c.cmd("RCPT TO:<postmaster@bounces.example.com>", "250");
    c.cmd("DATA", "354");
    c.send(format!(
        "From: fbl@isp.test\r\nTo: postmaster@bounces.example.com\r\nSubject: complaint\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"f\"\r\n\r\n--f\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n--f\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\nOriginal-Mail-From: <{verp}>\r\nOriginal-Rcpt-To: <carol@remote.test>\r\n\r\n--f\r\nContent-Type: message/rfc822\r\n\r\nReturn-Path: <{verp}>\r\nFrom: news@example.com\r\nTo: carol@remote.test\r\nSubject: Newsletter\r\n\r\nhello\r\n--f--\r\n.\r\n"
    ).as_bytes());
    assert!(c.reply().starts_with("250"));
    assert!(
        s.d.wait_log(|l| l.contains("recipient suppressed") && l.contains("carol@remote.test"))
    );
    // a newsletter (lane 1) is dropped, a password reset (lane 9) goes out
    let (st, v) = api(
        s.d.addr("api"),
        "POST",
        "/api/v1/messages",
        &token,
        Some(&json!({
        "from": "news@example.com", "to": ["carol@remote.test"], "text": "more news", "priority": 1})),
    );
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["accepted"], json!([]), "{v}");
    assert!(
        v["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("suppressed"),
        "{v}"
    );
    let (st, v) = api(
        s.d.addr("api"),
        "POST",
        "/api/v1/messages",
        &token,
        Some(&json!({
        "from": "security@example.com", "to": ["carol@remote.test"], "text": "your reset code", "priority": 9})),
    );
    assert_eq!(
        (st, v["accepted"].clone()),
        (202, json!(["carol@remote.test"])),
        "{v}"
    );
    eventually("the reset is delivered", || {
        s.sink
            .messages()
            .iter()
            .any(|m| String::from_utf8_lossy(&m.data).contains("your reset code"))
    });
    assert!(
        !s.sink
            .messages()
            .iter()
            .any(|m| String::from_utf8_lossy(&m.data).contains("more news"))
    );
}

/// An admin+send key added through the suppression-free control path: the
/// tests' daemons have an [api] without keys, so make one and reload.
fn laneway_api_token(s: &Setup) -> String {
    let out = Command::new(laneway_bin())
        .args(["api-key", "new", "--name", "t", "--scopes", "send,admin"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap()
        .to_string();
    let keycfg = &text[text.find("[[api.key]]").unwrap()..];
    let cfg = std::fs::read_to_string(s.d.config_path()).unwrap();
    let cfg = cfg.replacen(
        "[api]\nbind = \"127.0.0.1:0\"\n",
        &format!("[api]\nbind = \"127.0.0.1:0\"\n{keycfg}\n"),
        1,
    );
    std::fs::write(s.d.config_path(), cfg).unwrap();
    s.d.signal(rustix::process::Signal::HUP);
    assert!(s.d.wait_log(|l| l.contains("configuration reloaded")));
    token
}

#[test]
fn an_authenticated_user_may_only_send_as_its_domains() {
    let dir = tempfile::tempdir().unwrap();
    let cert = laneway_tests::tls::TestCert::generate(dir.path());
    let out = Command::new(laneway_bin())
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write;
            ch.stdin.take().unwrap().write_all(b"pw")?;
            ch.wait_with_output()
        })
        .unwrap();
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let sink = Sink::spawn(SinkConfig::default());
    let d = Daemon::start(&format!(
        "[[listener]]\nname = \"sub\"\nbind = \"127.0.0.1:0\"\ntls = \"starttls\"\nrequire_auth = true\n[relay]\ntrusted_networks = []\n[[smtp_user]]\nname = \"app\"\npassword_hash = \"{hash}\"\nallowed_from_domains = [\"example.com\"]\n[[route]]\ndomain = \"*\"\nvia = \"{}\"\n{}",
        sink.addr,
        cert.config()
    ));
    let mut c = Client::connect(d.addr("sub"));
    c.greeting("220");
    c.cmd("EHLO app", "250");
    c.cmd("STARTTLS", "220");
    let mut c = c.start_tls(cert.client_config());
    c.cmd("EHLO app", "250");
    c.cmd("AUTH PLAIN AGFwcABwdw==", "235");
    let r = c.send_mail(
        "alice@example.com",
        &["bob@remote.test"],
        "From: ceo@other.test\r\nSubject: x\r\n\r\nx\r\n",
    );
    assert!(
        r.starts_with("550 5.7.1") && r.contains("other.test"),
        "{r}"
    );
    let r = c.send_mail(
        "alice@example.com",
        &["bob@remote.test"],
        "From: alice@example.com\r\nSubject: x\r\n\r\nx\r\n",
    );
    queued_id(&r);
}

#[test]
fn check_config_catches_bad_keys_and_warns_about_alignment() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, ed) = keygen(dir.path(), "k", "ed25519-sha256");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[auth]\nbounce_secret_file = \"{0}/missing.secret\"\n[[domain]]\nname = \"example.com\"\nbounce_domain = \"bounces.other.net\"\n[[domain.dkim]]\nselector = \"a\"\nkey = \"{1}\"\nalgorithm = \"rsa-sha256\"\n[[domain.dkim]]\nselector = \"b\"\nkey = \"{0}/nope.pem\"\nalgorithm = \"ed25519-sha256\"\n",
            dir.path().display(),
            ed.display()
        ),
    )
    .unwrap();
    let out = Command::new(laneway_bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("bounce_secret_file"), "{err}");
    assert!(err.contains("nope.pem"), "{err}");
    assert!(
        err.contains(&ed.display().to_string()),
        "a key that does not match its algorithm: {err}"
    );
    assert!(err.contains("warning") && err.contains("align"), "{err}");
}

/// RFC 8058 one-click unsubscribe: bulk-lane mail of a domain with
/// `unsubscribe` carries the two fields, signed by DKIM; the POST (no key)
/// suppresses the recipient for that domain's bulk lanes only, with an
/// `unsubscribe` event in the message's history; a forged token is a 404.
#[test]
fn one_click_unsubscribe_stops_bulk_mail_only() {
    let s = setup(SinkConfig::default(), "");
    let token = laneway_api_token(&s);
    let cfg = std::fs::read_to_string(s.d.config_path()).unwrap().replacen(
        "bounce_domain = \"bounces.example.com\"\n",
        "bounce_domain = \"bounces.example.com\"\nunsubscribe = { lanes = \"0-4\", base_url = \"https://unsub.example.com/\" }\n",
        1,
    );
    std::fs::write(s.d.config_path(), cfg).unwrap();
    s.d.signal(rustix::process::Signal::HUP);
    eventually("the second reload", || {
        s.d.logs()
            .iter()
            .filter(|l| l.contains("configuration reloaded"))
            .count()
            >= 2
    });
    let bulk = send(&s.d, "news@example.com", "dora@remote.test", 0, None).unwrap();
    send(&s.d, "security@example.com", "dora@remote.test", 9, None).unwrap();
    assert_eq!(s.sink.wait_blocking(2, DEADLINE), 2);
    let text_of = |lane: &str| {
        s.sink
            .messages()
            .iter()
            .map(|m| {
                (
                    String::from_utf8_lossy(&m.data).into_owned(),
                    m.data.clone(),
                )
            })
            .find(|(t, _)| t.contains(&format!("X-Bench-Lane: {lane}\r\n")))
            .unwrap()
    };
    let (news, raw) = text_of("0");
    let link = news
        .lines()
        .find_map(|l| l.strip_prefix("List-Unsubscribe: <https://unsub.example.com/u/"))
        .and_then(|l| l.strip_suffix(">,"))
        .unwrap_or_else(|| panic!("no List-Unsubscribe in {news}"))
        .to_string();
    assert!(news.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    assert_eq!(
        verify(&s.dns, &raw),
        vec![DkimResult::Pass, DkimResult::Pass],
        "{news}"
    );
    let (reset, _) = text_of("9");
    assert!(!reset.contains("List-Unsubscribe"), "{reset}");

    // a forged or altered token is refused, and changes nothing
    let mut altered = link.clone().into_bytes();
    altered[12] = if altered[12] == b'a' { b'b' } else { b'a' };
    for bad in [String::from_utf8(altered).unwrap(), "forged".to_string()] {
        let (st, v) = api(s.d.addr("api"), "POST", &format!("/u/{bad}"), "", None);
        assert_eq!(
            (st, &v["error"]["code"]),
            (404, &json!("unknown_token")),
            "{v}"
        );
    }
    // the real one works without a key, twice (idempotent)
    for _ in 0..2 {
        let (st, v) = api(s.d.addr("api"), "POST", &format!("/u/{link}"), "", None);
        assert_eq!((st, v), (200, json!({"status": "unsubscribed"})));
    }
    // more news is dropped, a password reset still goes out
    let submit = |from: &str, text: &str, lane: u8| {
        api(
            s.d.addr("api"),
            "POST",
            "/api/v1/messages",
            &token,
            Some(
                &json!({"from": from, "to": ["dora@remote.test"], "text": text, "priority": lane}),
            ),
        )
    };
    let (st, v) = submit("news@example.com", "more news", 1);
    assert_eq!((st, &v["accepted"]), (202, &json!([])), "{v}");
    let (st, v) = submit("security@example.com", "your reset code", 9);
    assert_eq!(
        (st, &v["accepted"]),
        (202, &json!(["dora@remote.test"])),
        "{v}"
    );
    eventually("the reset is delivered", || {
        s.sink
            .messages()
            .iter()
            .any(|m| String::from_utf8_lossy(&m.data).contains("your reset code"))
    });
    // the message's history says so
    eventually("an unsubscribe event for the newsletter", || {
        let (_, v) = api(
            s.d.addr("api"),
            "GET",
            &format!("/api/v1/messages/{bulk}/events"),
            &token,
            None,
        );
        v["events"].as_array().is_some_and(|e| {
            e.iter()
                .any(|e| e["type"] == "unsubscribe" && e["recipient"] == "dora@remote.test")
        })
    });

    // the mailto fallback: a mail client writes to the bounce domain with
    // the token in the subject, and eve's bulk mail stops too
    send(&s.d, "news@example.com", "eve@remote.test", 0, None).unwrap();
    eventually("eve's newsletter", || {
        s.sink
            .messages()
            .iter()
            .any(|m| m.rcpts == ["eve@remote.test"])
    });
    let eve = s
        .sink
        .messages()
        .into_iter()
        .find(|m| m.rcpts == ["eve@remote.test"])
        .unwrap();
    let text = String::from_utf8_lossy(&eve.data).into_owned();
    let mailto = text
        .split("<mailto:")
        .nth(1)
        .and_then(|t| t.split('>').next())
        .unwrap_or_else(|| panic!("no mailto in {text}"))
        .to_string();
    let (to, subject) = mailto.split_once("?subject=").unwrap();
    assert_eq!(to, "unsubscribe@bounces.example.com");
    let subject = subject.replace("%20", " ");
    let mut c = Client::connect_from(s.d.addr("in"), Some("127.0.0.2"));
    c.greeting("220");
    c.cmd("EHLO mail.remote.test", "250");
    c.cmd("MAIL FROM:<eve@remote.test>", "250");
    c.cmd(&format!("RCPT TO:<{to}>"), "250");
    c.cmd("DATA", "354");
    c.send(
        format!(
            "From: eve@remote.test\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nunsubscribe\r\n.\r\n"
        )
        .as_bytes(),
    );
    assert!(c.reply().starts_with("250"));
    eventually("eve unsubscribed by mail", || {
        s.d.logs()
            .iter()
            .any(|l| l.contains("recipient unsubscribed") && l.contains("eve@remote.test"))
    });
    let (st, v) = api(
        s.d.addr("api"),
        "POST",
        "/api/v1/messages",
        &token,
        Some(
            &json!({"from": "news@example.com", "to": ["eve@remote.test"], "text": "more", "priority": 0}),
        ),
    );
    assert_eq!((st, &v["accepted"]), (202, &json!([])), "{v}");
}
