//! Report parsing against realistic fixtures (tests/resources/*.eml) and
//! against garbage.

use std::path::Path;

use laneway_common::MessageId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::bounce::BounceKey;

const VERP: &str = "b+aaaqeayeaudaocajh75awegyarh32@bounce.example.com";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/resources")
            .join(name),
    )
    .unwrap()
}

fn summary(r: &Returned) -> Vec<(&str, Option<&str>, Class)> {
    r.recipients
        .iter()
        .map(|b| (b.address.as_str(), b.status.as_deref(), b.class))
        .collect()
}

#[test]
fn postfix_dsn() {
    let r = parse(&fixture("postfix_dsn.eml")).expect("a DSN");
    assert_eq!(r.kind, Kind::Dsn);
    assert_eq!(
        summary(&r),
        [
            ("bob@example.org", Some("5.1.1"), Class::Hard),
            ("carol@example.org", Some("5.2.2"), Class::Soft),
        ]
    );
    let bob = &r.recipients[0];
    assert_eq!(bob.action.as_deref(), Some("failed"));
    assert_eq!(
        bob.diagnostic.as_deref(),
        Some(
            "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in virtual mailbox table"
        )
    );
    assert_eq!(
        r.original_message_id.as_deref(),
        Some("receipt-1001@example.com")
    );
    assert_eq!(r.original_mail_from.as_deref(), Some(VERP));
    assert!(bob.class.suppresses() && !r.recipients[1].class.suppresses());
}

#[test]
fn gmail_dsn() {
    let r = parse(&fixture("gmail_dsn.eml")).expect("a DSN");
    assert_eq!(r.kind, Kind::Dsn);
    assert_eq!(
        summary(&r),
        [("no.such.user.4711@gmail.com", Some("5.1.1"), Class::Hard)]
    );
    let d = r.recipients[0].diagnostic.as_deref().unwrap();
    assert!(
        d.starts_with("550-5.1.1 The email account that you tried to reach does not exist."),
        "{d}"
    );
    assert!(d.ends_with("gsmtp"), "{d}");
    assert_eq!(
        r.original_message_id.as_deref(),
        Some("newsletter-77@example.com")
    );
    assert_eq!(r.original_mail_from.as_deref(), Some(VERP));
}

#[test]
fn exchange_ndr() {
    let r = parse(&fixture("exchange_ndr.eml")).expect("an NDR");
    assert_eq!(r.kind, Kind::Ndr);
    assert_eq!(
        summary(&r),
        [("jane.doe@contoso.com", Some("5.1.10"), Class::Hard)]
    );
    assert!(
        r.recipients[0]
            .diagnostic
            .as_deref()
            .unwrap()
            .contains("RecipientNotFound")
    );
    assert_eq!(
        r.original_message_id.as_deref(),
        Some("appt-5150@example.com")
    );
}

#[test]
fn qmail_ndr() {
    let r = parse(&fixture("qmail_ndr.eml")).expect("an NDR");
    assert_eq!(r.kind, Kind::Ndr);
    assert_eq!(
        summary(&r),
        [("dave@example.net", Some("5.1.1"), Class::Hard)]
    );
    assert_eq!(
        r.original_message_id.as_deref(),
        Some("order-88@example.com")
    );
}

#[test]
fn arf_complaint_names_recipient_and_token() {
    let r = parse(&fixture("arf_report.eml")).expect("a complaint");
    assert_eq!(r.kind, Kind::Complaint);
    assert_eq!(r.feedback_type.as_deref(), Some("abuse"));
    // No Original-Rcpt-To: the recipient comes from the original's To:.
    assert_eq!(summary(&r), [("frank@yahoo.com", None, Class::Complaint)]);
    assert_eq!(
        r.original_message_id.as_deref(),
        Some("deals-2026-11@example.com")
    );
    // The complaint arrived at the feedback address; the VERP token in the
    // original envelope sender still names message and recipient.
    let from = r.original_mail_from.as_deref().unwrap();
    let (local, domain) = from.rsplit_once('@').unwrap();
    let key = BounceKey::from_secret(b"0123456789abcdef-test-secret").unwrap();
    assert_eq!(
        key.decode(local, domain),
        Ok((MessageId::from_u64(0x0001_0203_0405_0607), Some(0x0809)))
    );
}

#[test]
fn arf_with_rcpt_to_fields() {
    let raw = String::from_utf8(fixture("arf_report.eml"))
        .unwrap()
        .replace(
            "Source-IP: 198.51.100.10",
            "Source-IP: 198.51.100.10\r\nOriginal-Rcpt-To: <grace@yahoo.com>",
        );
    let r = parse(raw.as_bytes()).unwrap();
    assert_eq!(summary(&r), [("grace@yahoo.com", None, Class::Complaint)]);
}

#[test]
fn not_reports() {
    let cases: &[&str] = &[
        // An auto-reply.
        "From: bob@example.org\r\nTo: b+x@bounce.example.com\r\nSubject: Out of office\r\n\r\nBack on Monday.\r\n",
        // A person answering, quoting a version number and an address.
        "From: bob@example.org\r\nSubject: Re: your newsletter\r\n\r\nVersion 5.1.1 works, ask carol@example.org.\r\n",
        // A bounce-looking sender, but no code or no address.
        "From: MAILER-DAEMON@mx.example.org\r\nSubject: hello\r\n\r\nSomething happened.\r\n",
        "From: MAILER-DAEMON@mx.example.org\r\nSubject: failure notice\r\n\r\n550 5.1.1 gone\r\n",
        // A DSN part without any recipient block, and no usable text.
        "From: x@y.z\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n--B--\r\n",
        "",
    ];
    for raw in cases {
        assert_eq!(parse(raw.as_bytes()), None, "{raw}");
    }
}

#[test]
fn ndr_in_html_only() {
    let raw = "From: Mail Delivery System <mailer-daemon@mx.example.org>\r\n\
               Subject: Mail delivery failed\r\nContent-Type: text/html\r\n\r\n\
               <p>Delivery to <b>ivan@example.org</b> failed:</p><p>550 5.1.1 unknown user</p>\r\n";
    let r = parse(raw.as_bytes()).expect("an NDR");
    assert_eq!(
        summary(&r),
        [("ivan@example.org", Some("5.1.1"), Class::Hard)]
    );
}

/// Feeds `raw` to the parser; a panic fails the test with the input.
fn survive(raw: &[u8]) {
    let r = std::panic::catch_unwind(|| parse(raw));
    assert!(
        r.is_ok(),
        "parse panicked on {:?}",
        String::from_utf8_lossy(raw)
    );
}

#[test]
fn never_panics_on_damaged_fixtures() {
    for name in [
        "postfix_dsn.eml",
        "gmail_dsn.eml",
        "exchange_ndr.eml",
        "qmail_ndr.eml",
        "arf_report.eml",
    ] {
        let raw = fixture(name);
        // Every truncation point in steps, plus a few fine-grained ones.
        for cut in (0..raw.len()).step_by(7) {
            survive(&raw[..cut]);
        }
        // Line ends mangled, bytes flipped to 0xFF / NUL at fixed strides.
        survive(
            &raw.iter()
                .map(|&b| if b == b'\r' { b'\n' } else { b })
                .collect::<Vec<_>>(),
        );
        for stride in [3, 11, 29, 97] {
            let mut bad = raw.clone();
            for i in (0..bad.len()).step_by(stride) {
                bad[i] = if i % 2 == 0 { 0xFF } else { 0 };
            }
            survive(&bad);
        }
    }
}

#[test]
fn never_panics_on_random_input() {
    let mut rng = StdRng::seed_from_u64(0x01a2_e3a7);
    // Raw bytes.
    for _ in 0..300 {
        let len = rng.random_range(0..600);
        let raw: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        survive(&raw);
    }
    // Report-shaped noise: random lines from report vocabulary, so the
    // field, code and address scanners see near-misses.
    const WORDS: &[&str] = &[
        "Content-Type: multipart/report; report-type=delivery-status; boundary=B",
        "Content-Type: message/delivery-status",
        "Content-Type: message/feedback-report",
        "Content-Type: message/rfc822",
        "Content-Type: text/rfc822-headers",
        "--B",
        "--B--",
        "",
        " folded",
        "Final-Recipient: rfc822;",
        "Final-Recipient: rfc822; a@b.c",
        "Original-Rcpt-To: <@>",
        "Action: failed",
        "Status: 5.",
        "Status: 5.1.1.1",
        "Diagnostic-Code: ;",
        "550 5.1.1 x@y.zz",
        "From: MAILER-DAEMON@x.y",
        "Subject: Undeliverable",
        "Message-ID: <",
        "é@ü. 5.1.999 @@ .@. 4",
        ":",
        "\t",
    ];
    for _ in 0..300 {
        let n = rng.random_range(0..40);
        let mut raw = String::new();
        for _ in 0..n {
            raw.push_str(WORDS[rng.random_range(0..WORDS.len())]);
            raw.push_str(if rng.random_bool(0.8) { "\r\n" } else { "\n" });
        }
        survive(raw.as_bytes());
    }
}
