//! Signed one-click unsubscribe links (RFC 8058).
//!
//! Bulk mail of a `[[domain]]` with `unsubscribe` gets
//! `List-Unsubscribe: <https://…/u/<token>>` and `List-Unsubscribe-Post:
//! List-Unsubscribe=One-Click`. The token itself is the authority for the
//! unsubscription — the `POST /u/<token>` needs no API key — so it is
//! signed with the bounce secret (the same key on every node of a
//! cluster), and it carries what it stands for instead of pointing into a
//! store: the link keeps working on any node, after the bounce window, and
//! after the message has left the queue. The message and lane it names
//! put the `unsubscribe` event into that message's history.
//!
//! Token layout, then lowercase RFC 4648 base32 without padding:
//!
//! ```text
//! [ version 0x01 ][ message id: 8 bytes BE ][ lane: 1 byte ]
//! [ sender length: 1 byte ][ envelope sender ][ recipient ]
//! [ HMAC-SHA256(secret, "laneway-unsubscribe\0" || those bytes)[..12] ]
//! ```
//!
//! The context string keeps an unsubscribe MAC from ever being a bounce
//! token's MAC or the reverse.

use data_encoding::BASE32_NOPAD;
use ring::hmac;

use laneway_common::MessageId;
use laneway_common::envelope::domain_of;

use crate::bounce::BounceKey;

const VERSION: u8 = 1;
const CONTEXT: &[u8] = b"laneway-unsubscribe\0";
const MAC_LEN: usize = 12;
/// RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its brackets.
const MAX_PART: usize = 254;
/// Version, id, lane, sender length.
const HEAD: usize = 11;

/// What an unsubscribe token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribed {
    /// The message the link was in.
    pub message_id: MessageId,
    /// Its lane.
    pub lane: u8,
    /// Its envelope sender: the domain of it is the one whose bulk mail stops.
    pub sender: String,
    /// The recipient who asked.
    pub recipient: String,
}

impl Unsubscribed {
    /// The sender domain whose list the recipient goes on (lower-cased).
    pub fn sender_domain(&self) -> String {
        domain_of(&self.sender)
    }
}

impl BounceKey {
    /// The token for `recipient` of message `id` (in `lane`, from
    /// `sender`) leaving the sender domain's bulk mail; `None` when an
    /// address is empty or too long.
    pub fn unsubscribe_token(
        &self,
        id: MessageId,
        lane: u8,
        sender: &str,
        recipient: &str,
    ) -> Option<String> {
        if [sender, recipient]
            .iter()
            .any(|a| a.is_empty() || a.len() > MAX_PART)
        {
            return None;
        }
        let mut body = vec![VERSION];
        body.extend_from_slice(&id.as_u64().to_be_bytes());
        body.push(lane);
        body.push(sender.len() as u8);
        body.extend_from_slice(sender.as_bytes());
        body.extend_from_slice(recipient.as_bytes());
        let mac = self.unsubscribe_mac(&body);
        body.extend_from_slice(&mac.as_ref()[..MAC_LEN]);
        Some(BASE32_NOPAD.encode(&body).to_ascii_lowercase())
    }

    /// Reads a token back; `None` for anything this key did not sign.
    pub fn open_unsubscribe(&self, token: &str) -> Option<Unsubscribed> {
        let bytes = BASE32_NOPAD
            .decode(token.to_ascii_uppercase().as_bytes())
            .ok()?;
        if bytes.len() < HEAD + MAC_LEN {
            return None;
        }
        let (body, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        let expected = self.unsubscribe_mac(body);
        // compare the truncated MACs in constant time (as bounce tokens do)
        let probe = hmac::sign(&self.key, &expected.as_ref()[..MAC_LEN]);
        hmac::verify(&self.key, mac, probe.as_ref()).ok()?;
        let len = usize::from(body[HEAD - 1]);
        let rest = &body[HEAD..];
        if body[0] != VERSION || rest.len() <= len {
            return None;
        }
        let (sender, rcpt) = rest.split_at(len);
        Some(Unsubscribed {
            message_id: MessageId::from_u64(u64::from_be_bytes(body[1..9].try_into().ok()?)),
            lane: body[9],
            sender: String::from_utf8(sender.to_vec()).ok()?,
            recipient: String::from_utf8(rcpt.to_vec()).ok()?,
        })
    }

    fn unsubscribe_mac(&self, body: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(CONTEXT);
        ctx.update(body);
        ctx.sign()
    }
}

/// The two header fields for a link (RFC 8058 §3.1), CRLF-terminated.
pub fn header_fields(base_url: &str, token: &str, bounce_domain: Option<&str>) -> String {
    let url = format!("<{}/u/{token}>", base_url.trim_end_matches('/'));
    let list = match bounce_domain {
        // the mailto fallback (RFC 2369) on a folded line of its own; the
        // token goes in the subject, the local part stays short
        Some(b) => {
            format!("{url},\r\n <mailto:{MAILTO_LOCAL}@{b}?subject={SUBJECT_WORD}%20{token}>")
        }
        None => url,
    };
    format!("List-Unsubscribe: {list}\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
}

/// The local part of the mailto unsubscribe address at a bounce domain.
pub const MAILTO_LOCAL: &str = "unsubscribe";
/// The word before the token in the mailto link's subject.
const SUBJECT_WORD: &str = "unsubscribe";

/// The token of a mailto unsubscribe: the last word of the message's
/// `Subject:` (mail clients may add `Re:` or quote it).
pub fn token_of_mail(message: &[u8]) -> Option<String> {
    let subject = laneway_common::headers::fields(message)
        .into_iter()
        .find(|f| f.is("Subject"))?
        .text();
    subject
        .split_whitespace()
        .last()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_ascii_lowercase()
        })
        .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &[u8]) -> BounceKey {
        BounceKey::from_secret(s).unwrap()
    }

    #[test]
    fn a_token_names_its_recipient_and_domain() {
        let k = key(b"0123456789abcdef-secret");
        let id = MessageId::from_u64(0x1234_5678_9abc);
        let t = k
            .unsubscribe_token(id, 2, "news@Shop.Example", "Bob@x.test")
            .unwrap();
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{t}"
        );
        let u = k.open_unsubscribe(&t).unwrap();
        assert_eq!((u.message_id, u.lane), (id, 2));
        assert_eq!(u.sender_domain(), "shop.example");
        assert_eq!(u.recipient, "Bob@x.test");
        assert!(k.unsubscribe_token(id, 2, "", "b@x.test").is_none());
        assert!(
            k.unsubscribe_token(id, 2, "a@x.test", &"b".repeat(300))
                .is_none()
        );
        // receivers may fold case
        assert_eq!(k.open_unsubscribe(&t.to_ascii_uppercase()), Some(u));
    }

    #[test]
    fn forged_altered_or_foreign_tokens_are_refused() {
        let k = key(b"0123456789abcdef-secret");
        let t = k
            .unsubscribe_token(MessageId::from_u64(1), 0, "n@shop.example", "bob@x.test")
            .unwrap();
        assert!(key(b"another-secret-of-16+").open_unsubscribe(&t).is_none());
        let mut b = t.clone().into_bytes();
        b[5] = if b[5] == b'a' { b'b' } else { b'a' };
        assert!(
            k.open_unsubscribe(std::str::from_utf8(&b).unwrap())
                .is_none()
        );
        for bad in ["", "not base32!", "aaaa", &t[..t.len() - 2]] {
            assert!(k.open_unsubscribe(bad).is_none(), "{bad}");
        }
        // a bounce address's token is not an unsubscribe token
        let bounce = k.address(MessageId::from_u64(7), Some(0), "b.test");
        let tok = &bounce[2..bounce.find('@').unwrap()];
        assert!(k.open_unsubscribe(tok).is_none());
    }

    #[test]
    fn the_header_fields_are_rfc_8058() {
        assert_eq!(
            header_fields("https://u.example/", "abc", None),
            "List-Unsubscribe: <https://u.example/u/abc>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        );
        assert_eq!(
            header_fields("https://u.example", "abc", Some("b.example")),
            "List-Unsubscribe: <https://u.example/u/abc>,\r\n <mailto:unsubscribe@b.example?subject=unsubscribe%20abc>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        );
    }

    #[test]
    fn the_mailto_token_is_the_subjects_last_word() {
        for (subject, want) in [
            ("unsubscribe abc2", Some("abc2")),
            ("Re: unsubscribe ABC2", Some("abc2")),
            ("\"unsubscribe abc2\"", Some("abc2")),
            ("", None),
        ] {
            let m = format!("From: x@y\r\nSubject: {subject}\r\n\r\nbody\r\n");
            assert_eq!(token_of_mail(m.as_bytes()).as_deref(), want, "{subject}");
        }
    }
}
