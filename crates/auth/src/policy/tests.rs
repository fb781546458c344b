//! Table tests of the sender-authentication policy: every decision from a
//! configuration and a fixed clock, no store, no network.

use std::path::Path;

use laneway_common::delivery::{NextHop, Outcome, Stage, Status};
use laneway_common::envelope::{Envelope, Origin, Recipient};
use laneway_common::{Config, MessageId, Priority, RecipientVerdict, Reply};

use super::*;
use crate::report::{Bounced, Class, Kind, Returned};

const NOW_MS: u64 = 1_800_000_000_000;

fn res(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/resources")
        .join(name)
        .display()
        .to_string()
}

/// A policy for example.com (bounces at bounces.example.com, DKIM with
/// Ed25519, verified TLS demanded for secure.example), an SMTP user
/// limited to example.com, and a secret written to `dir`.
fn policy(dir: &Path, verp: bool) -> Policy {
    let secret = dir.join("bounce.secret");
    std::fs::write(&secret, "0123456789abcdef-policy-test\n").unwrap();
    let text = format!(
        r#"
[auth]
bounce_secret_file = "{}"
verp = {verp}
bounce_window = "1d"
[[smtp_user]]
name = "app"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
allowed_from_domains = ["example.com"]
[[domain]]
name = "example.com"
bounce_domain = "bounces.example.com"
unsubscribe = {{ lanes = "0-4", base_url = "https://u.example.com/" }}
[[domain.dkim]]
selector = "ed"
key = "{}"
algorithm = "ed25519-sha256"
[[domain]]
name = "secure.example"
require_tls = true
"#,
        secret.display(),
        res("ed25519_pkcs8.pem")
    );
    let c = Config::from_toml(&text, dir).unwrap().config;
    Policy::from_config(&c).unwrap()
}

fn env(sender: &str, rcpts: &[&str], user: Option<&str>) -> Envelope {
    let origin = Origin {
        auth_user: user.map(str::to_string),
        trusted: true,
        ..Origin::local()
    };
    Envelope::new(
        sender,
        rcpts.iter().map(|r| Recipient::new(*r)).collect(),
        origin,
    )
}

fn lane(n: i64) -> Priority {
    Priority::new(n).unwrap()
}

fn msg(from: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: bob@remote.test\r\nSubject: hi\r\n\r\nbody\r\n").into_bytes()
}

#[test]
fn who_may_send_as_whom() {
    let dir = tempfile::tempdir().unwrap();
    let p = policy(dir.path(), true);
    // (MAIL FROM, From:, authenticated user, allowed)
    let table = [
        ("a@example.com", "a@example.com", Some("app"), true),
        ("a@EXAMPLE.com", "b@example.com", Some("app"), true),
        ("a@other.test", "a@example.com", Some("app"), false),
        ("a@example.com", "a@other.test", Some("app"), false),
        ("", "a@example.com", Some("app"), true),
        ("a@other.test", "a@other.test", None, true),
        ("a@other.test", "a@other.test", Some("unlimited"), true),
    ];
    for (sender, from, user, ok) in table {
        let r = p.prepare(
            &env(sender, &["b@remote.test"], user),
            MessageId::from_u64(1),
            lane(4),
            msg(from),
            0,
        );
        assert_eq!(r.is_ok(), ok, "{sender} / {from} / {user:?}: {:?}", r.err());
        if let Err(e) = r {
            assert_eq!(e.reply().status().as_deref(), Some("5.7.1"));
        }
    }
}

#[test]
fn signing_bounce_domains_and_tls_demands() {
    let dir = tempfile::tempdir().unwrap();
    let p = policy(dir.path(), true);
    // (MAIL FROM, From:, signed, bounce domain, require_tls)
    let table = [
        (
            "a@example.com",
            "a@example.com",
            Dkim::Signed,
            Some("bounces.example.com"),
            false,
        ),
        ("a@other.test", "a@example.com", Dkim::Signed, None, false),
        (
            "a@example.com",
            "a@other.test",
            Dkim::NotOurs,
            Some("bounces.example.com"),
            false,
        ),
        (
            "a@secure.example",
            "a@other.test",
            Dkim::NotOurs,
            None,
            true,
        ),
        (
            "a@other.test",
            "a@secure.example",
            Dkim::NotOurs,
            None,
            true,
        ),
        ("", "a@example.com", Dkim::Signed, None, false),
    ];
    for (sender, from, dkim, bounce, tls) in table {
        let out = p
            .prepare(
                &env(sender, &["b@remote.test"], None),
                MessageId::from_u64(1),
                lane(4),
                msg(from),
                1_700_000_000,
            )
            .unwrap();
        assert_eq!(out.dkim, dkim, "{sender} / {from}");
        assert_eq!(out.bounce_domain.as_deref(), bounce, "{sender} / {from}");
        assert_eq!(out.require_tls, tls, "{sender} / {from}");
        let signed = String::from_utf8(out.message).unwrap();
        assert_eq!(signed.starts_with("DKIM-Signature:"), dkim == Dkim::Signed);
        if dkim == Dkim::Signed {
            assert!(
                signed.contains("t=1700000000"),
                "the clock passed in signs: {signed}"
            );
        }
    }
}

#[test]
fn verp_senders_and_their_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let id = MessageId::from_u64(0x1234);
    let lane = Priority::new(2).unwrap();
    let rcpts = vec![(0, "x@r.test".to_string()), (3, "y@r.test".to_string())];
    let mut e = env("a@example.com", &["x@r.test", "", "", "y@r.test"], None);
    e.bounce_domain = Some("bounces.example.com".into());
    // VERP: one sender and token per recipient
    let p = policy(dir.path(), true);
    let t = p.transactions(id, lane, &e, &rcpts, NOW_MS);
    assert_eq!(t.senders.len(), 2);
    assert_eq!(t.senders[1].1, vec![3]);
    for (s, _) in &t.senders {
        assert!(
            s.starts_with("b+") && s.ends_with("@bounces.example.com"),
            "{s}"
        );
    }
    assert_eq!(t.tokens[1].1, Some(3));
    assert_eq!(t.tokens[1].2.recipient, "y@r.test");
    assert_eq!(t.tokens[1].2.sender_domain, "example.com");
    assert_eq!(t.tokens[1].2.expires_at, NOW_MS + 86_400_000);
    // the same inputs give the same addresses
    let again = p.transactions(id, lane, &e, &rcpts, NOW_MS);
    assert_eq!(again.senders, t.senders);
    // every VERP address is a valid bounce recipient; a forged one is not
    for (s, _) in &t.senders {
        assert_eq!(p.bounce_recipient(s), Some(RecipientVerdict::Accept));
    }
    assert!(matches!(
        p.bounce_recipient("b+forged@bounces.example.com"),
        Some(RecipientVerdict::Refuse(_))
    ));
    assert_eq!(
        p.bounce_recipient("postmaster@bounces.example.com"),
        Some(RecipientVerdict::Accept)
    );
    assert_eq!(p.bounce_recipient("x@r.test"), None);
    // without VERP: one sender for the whole message
    let p = policy(dir.path(), false);
    let t = p.transactions(id, lane, &e, &rcpts, NOW_MS);
    assert_eq!(t.senders.len(), 1);
    assert_eq!(t.senders[0].1, vec![0, 3]);
    assert_eq!(t.tokens[0].1, None);
    // without a bounce domain: the original sender, no tokens
    e.bounce_domain = None;
    let t = p.transactions(id, lane, &e, &rcpts, NOW_MS);
    assert_eq!(t.senders, vec![("a@example.com".to_string(), vec![0, 3])]);
    assert!(t.tokens.is_empty());
}

fn info(expires_at: u64) -> TokenInfo {
    TokenInfo {
        recipient: "bob@remote.test".into(),
        sender: "alice@example.com".into(),
        sender_domain: "example.com".into(),
        lane: 4,
        expires_at,
    }
}

fn report(kind: Kind, status: &str, class: Class) -> Returned {
    Returned {
        kind,
        recipients: vec![Bounced {
            address: "bob@remote.test".into(),
            action: Some("failed".into()),
            status: Some(status.into()),
            diagnostic: Some(format!("smtp; 550 {status} x")),
            class,
        }],
        original_message_id: None,
        original_mail_from: None,
        feedback_type: None,
    }
}

#[test]
fn what_returned_mail_means() {
    let dir = tempfile::tempdir().unwrap();
    let p = policy(dir.path(), true);
    let id = MessageId::from_u64(7);
    // (report, suppression scope)
    let table = [
        (report(Kind::Dsn, "5.1.1", Class::Hard), Some(Scope::All)),
        (report(Kind::Dsn, "5.2.2", Class::Soft), None),
        (report(Kind::Dsn, "5.7.1", Class::Policy), None),
        (
            report(Kind::Complaint, "", Class::Complaint),
            Some(Scope::Bulk),
        ),
    ];
    for (rep, scope) in table {
        let d = p.returned(id, &info(NOW_MS + 1), Some(&rep), NOW_MS);
        assert_eq!(d.len(), 1, "{rep:?}");
        assert_eq!(d[0].suppress.as_ref().map(|s| s.scope), scope, "{rep:?}");
        assert_eq!(d[0].original, id);
        if let Some(s) = &d[0].suppress {
            assert_eq!(
                (s.sender_domain.as_str(), s.address.as_str()),
                ("example.com", "bob@remote.test")
            );
            assert_eq!(s.since, NOW_MS / 1000);
        }
    }
    // an expired token, a success DSN and a non-report say nothing
    let hard = report(Kind::Dsn, "5.1.1", Class::Hard);
    assert!(
        p.returned(id, &info(NOW_MS - 1), Some(&hard), NOW_MS)
            .is_empty()
    );
    let ok = report(Kind::Dsn, "2.0.0", Class::Success);
    assert!(
        p.returned(id, &info(NOW_MS + 1), Some(&ok), NOW_MS)
            .is_empty()
    );
    assert!(p.returned(id, &info(NOW_MS + 1), None, NOW_MS).is_empty());
}

#[test]
fn what_a_permanent_failure_does_to_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let p = policy(dir.path(), true);
    let hop = Some(NextHop {
        host: "mx.remote.test".into(),
        addr: "192.0.2.1:25".parse().unwrap(),
    });
    let remote = |code, esc, stage| Outcome::remote(stage, Reply::new(code, esc, "x"), hop.clone());
    let table = [
        (remote(550, (5, 1, 1), Stage::Rcpt), "a@example.com", true),
        (remote(550, (5, 1, 1), Stage::Rcpt), "", false),
        (remote(550, (5, 7, 1), Stage::Rcpt), "a@example.com", false),
        (remote(550, (5, 1, 8), Stage::Rcpt), "a@example.com", false),
        (
            Outcome::permanent(Stage::Dns, Status::new(5, 1, 2), "NXDOMAIN"),
            "a@example.com",
            false,
        ),
    ];
    for (o, sender, suppressed) in table {
        let s = p.delivery_failure(sender, "bob@remote.test", &o, 5);
        assert_eq!(s.is_some(), suppressed, "{o} from {sender:?}");
        if let Some(s) = s {
            assert_eq!(s.scope, Scope::All);
            assert_eq!(s.reason, "bounced 5.1.1");
        }
    }
}

#[test]
fn suppressions_stop_the_lanes_their_scope_names() {
    let dir = tempfile::tempdir().unwrap();
    let p = policy(dir.path(), true);
    let s = |scope| Suppression {
        address: "bob@remote.test".into(),
        sender_domain: "example.com".into(),
        reason: "x".into(),
        scope,
        since: 0,
    };
    let lane = |n| Priority::new(n).unwrap();
    assert!(p.stops(&s(Scope::All), lane(9)));
    assert!(p.stops(&s(Scope::Bulk), lane(4)));
    assert!(
        !p.stops(&s(Scope::Bulk), lane(5)),
        "transactional_min_lane defaults to 5"
    );
}

#[test]
fn one_click_unsubscribe_on_bulk_mail_to_one_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let p = policy(dir.path(), true);
    let prepared = |rcpts: &[&str], l: i64, m: Vec<u8>| {
        let out = p
            .prepare(
                &env("news@example.com", rcpts, None),
                MessageId::from_u64(42),
                lane(l),
                m,
                1_700_000_000,
            )
            .unwrap();
        String::from_utf8(out.message).unwrap()
    };
    let bulk = prepared(&["bob@remote.test"], 0, msg("news@example.com"));
    let link = bulk
        .lines()
        .find_map(|l| l.strip_prefix("List-Unsubscribe: <https://u.example.com/u/"))
        .and_then(|l| l.strip_suffix(">,"))
        .unwrap_or_else(|| panic!("no link in {bulk}"));
    assert!(bulk.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    // the mailto fallback goes to the bounce domain, the token in the subject
    let mailto =
        format!(" <mailto:unsubscribe@bounces.example.com?subject=unsubscribe%20{link}>\r\n");
    assert!(bulk.contains(&mailto), "{bulk}");
    // signed after they were added, and the signature covers them
    let sig = &bulk[bulk.find("DKIM-Signature").expect("signed")..];
    let h = sig[sig.find("h=").unwrap()..]
        .split(';')
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        h.contains("list-unsubscribe") && h.contains("list-unsubscribe-post"),
        "{h}"
    );
    // the token stands for bob leaving example.com's bulk lanes
    let (u, s) = p.unsubscribe(link, 7).expect("a valid token");
    assert_eq!((u.message_id, u.lane), (MessageId::from_u64(42), 0));
    assert_eq!(
        (
            s.sender_domain.as_str(),
            s.address.as_str(),
            s.scope,
            s.since
        ),
        ("example.com", "bob@remote.test", Scope::Bulk, 7)
    );
    let mut forged = link.to_string().into_bytes();
    forged[20] = if forged[20] == b'a' { b'b' } else { b'a' };
    assert!(
        p.unsubscribe(std::str::from_utf8(&forged).unwrap(), 7)
            .is_none()
    );
    assert!(p.unsubscribe("forged", 7).is_none());
    // not on urgent lanes, not for two recipients, not over the sender's own
    for (rcpts, l, m) in [
        (&["bob@remote.test"][..], 9, msg("news@example.com")),
        (
            &["bob@remote.test", "eve@remote.test"][..],
            0,
            msg("news@example.com"),
        ),
        (
            &["bob@remote.test"][..],
            0,
            b"From: news@example.com\r\nList-Unsubscribe: <mailto:u@example.com>\r\n\r\nx\r\n"
                .to_vec(),
        ),
    ] {
        let out = prepared(rcpts, l, m);
        assert!(!out.contains("u.example.com/u/"), "{out}");
    }
}
