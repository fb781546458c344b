//! Signed VERP bounce addresses (`b+<token>@<bounce domain>`).
//!
//! Laneway sends each recipient's copy with its own envelope sender so that
//! a bounce, whatever shape it comes back in, names the message and the
//! recipient in the address it is sent *to* — no guessing from the bounce
//! text. The token is signed so that nobody can forge bounces that suppress
//! other people's addresses, and it is short enough to stay far below the
//! 64-octet local-part limit of RFC 5321 §4.5.3.1.1.
//!
//! Token layout (18 bytes, then lowercase RFC 4648 base32 without padding,
//! 29 characters):
//!
//! ```text
//! [ message id: 8 bytes BE ][ recipient index: 2 bytes BE, 0xFFFF = whole message ]
//! [ HMAC-SHA256(secret, those 10 bytes || lower-cased bounce domain)[..8] ]
//! ```
//!
//! The bounce domain is part of the MAC, so a token minted for one domain
//! does not decode under another. Decoding accepts any letter case because
//! receiving systems may fold the local part.

use std::fmt;
use std::path::{Path, PathBuf};

use data_encoding::BASE32_NOPAD;
use laneway_common::MessageId;
use ring::hmac;

/// Local-part prefix that marks a bounce address.
pub const PREFIX: &str = "b+";
/// Minimum length of the secret, bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// Recipient index meaning "the whole message" (no single recipient).
const WHOLE_MESSAGE: u16 = 0xFFFF;
/// Bytes of the truncated MAC.
const MAC_LEN: usize = 8;
/// Bytes of id + recipient index.
const BODY_LEN: usize = 10;
/// Bytes of the whole token before base32.
const TOKEN_LEN: usize = BODY_LEN + MAC_LEN;

/// The HMAC key that signs bounce tokens, from `auth.bounce_secret_file`.
///
/// Cheap to clone; `Debug` never prints the secret.
#[derive(Clone)]
pub struct BounceKey {
    pub(crate) key: hmac::Key,
}

/// Why the bounce secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read bounce secret file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Fewer than [`MIN_SECRET_LEN`] bytes after trimming trailing whitespace.
    #[error(
        "bounce secret file {path} holds {len} bytes (after trimming trailing whitespace); \
         at least {MIN_SECRET_LEN} are needed, e.g. `head -c 32 /dev/urandom | base64 > FILE`"
    )]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Bytes found.
        len: usize,
    },
}

/// Why a local part is not a valid bounce token. Each cause has its own
/// variant so logs tell forged or mangled tokens apart from stray mail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The local part does not start with `b+` (any case).
    #[error("not a bounce address (no \"b+\" prefix)")]
    MissingPrefix,
    /// The token is not base32 (RFC 4648, no padding).
    #[error("bounce token is not valid base32")]
    BadEncoding,
    /// The token decodes to the wrong number of bytes.
    #[error("bounce token has {0} bytes, expected {TOKEN_LEN}")]
    BadLength(usize),
    /// The MAC does not match: forged, altered, or for another domain or key.
    #[error("bounce token signature does not match")]
    BadSignature,
}

impl BounceKey {
    /// Reads the secret from `path`: the file's bytes with trailing
    /// whitespace removed, at least [`MIN_SECRET_LEN`] of them.
    pub fn from_file(path: &Path) -> Result<BounceKey, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        BounceKey::from_secret(&bytes[..end]).ok_or(KeyError::TooShort {
            path: path.to_path_buf(),
            len: end,
        })
    }

    /// A key from the secret bytes themselves; `None` when shorter than
    /// [`MIN_SECRET_LEN`].
    pub fn from_secret(secret: &[u8]) -> Option<BounceKey> {
        (secret.len() >= MIN_SECRET_LEN).then(|| BounceKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// The envelope sender for message `id` sent to recipient number `rcpt`
    /// (`None`: one sender for the whole message):
    /// `b+<token>@<bounce_domain>`, local part 31 characters.
    pub fn address(&self, id: MessageId, rcpt: Option<u16>, bounce_domain: &str) -> String {
        let body = body_bytes(id, rcpt);
        let mut token = [0u8; TOKEN_LEN];
        token[..BODY_LEN].copy_from_slice(&body);
        token[BODY_LEN..].copy_from_slice(&self.mac(&body, bounce_domain));
        let encoded = BASE32_NOPAD.encode(&token).to_ascii_lowercase();
        format!("{PREFIX}{encoded}@{bounce_domain}")
    }

    /// Reads a bounce address back: `local_part` is the part before the
    /// `@` (any case), `domain` the bounce domain it arrived at.
    ///
    /// Returns the message id and the recipient index (`None` for a
    /// whole-message token).
    pub fn decode(
        &self,
        local_part: &str,
        domain: &str,
    ) -> Result<(MessageId, Option<u16>), TokenError> {
        let token = local_part
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .map(|_| &local_part[PREFIX.len()..])
            .ok_or(TokenError::MissingPrefix)?;
        let bytes = BASE32_NOPAD
            .decode(token.to_ascii_uppercase().as_bytes())
            .map_err(|_| TokenError::BadEncoding)?;
        if bytes.len() != TOKEN_LEN {
            return Err(TokenError::BadLength(bytes.len()));
        }
        let (body, mac) = bytes.split_at(BODY_LEN);
        let expected = self.mac(body, domain);
        // Constant-time comparison of the truncated MACs: compare HMACs of
        // both values with ring's verify, which leaks nothing about
        // `expected` even though the truncation rules out verifying the
        // full tag directly ("double HMAC" comparison).
        let probe = hmac::sign(&self.key, &expected);
        hmac::verify(&self.key, mac, probe.as_ref()).map_err(|_| TokenError::BadSignature)?;
        let id = u64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
        let rcpt = u16::from_be_bytes([body[8], body[9]]);
        Ok((
            MessageId::from_u64(id),
            (rcpt != WHOLE_MESSAGE).then_some(rcpt),
        ))
    }

    /// Truncated MAC over the token body and the lower-cased domain.
    fn mac(&self, body: &[u8], domain: &str) -> [u8; MAC_LEN] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(body);
        ctx.update(domain.to_ascii_lowercase().as_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        out
    }
}

impl fmt::Debug for BounceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BounceKey(<secret>)")
    }
}

/// The 10 signed bytes: id, then recipient index.
fn body_bytes(id: MessageId, rcpt: Option<u16>) -> [u8; BODY_LEN] {
    let mut body = [0u8; BODY_LEN];
    body[..8].copy_from_slice(&id.as_u64().to_be_bytes());
    body[8..].copy_from_slice(&rcpt.unwrap_or(WHOLE_MESSAGE).to_be_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-test-secret";

    fn key() -> BounceKey {
        BounceKey::from_secret(SECRET).unwrap()
    }

    fn split(addr: &str) -> (&str, &str) {
        addr.rsplit_once('@').unwrap()
    }

    #[test]
    fn round_trip_recipient_and_whole_message() {
        let k = key();
        let id = MessageId::from_u64(0x0123_4567_89ab_cdef);
        for rcpt in [Some(0), Some(1), Some(0xFFFE), None] {
            let addr = k.address(id, rcpt, "bounce.example.com");
            let (local, domain) = split(&addr);
            assert_eq!(domain, "bounce.example.com");
            assert_eq!(k.decode(local, domain), Ok((id, rcpt)), "{addr}");
        }
    }

    #[test]
    fn shape_is_stable_and_short() {
        let addr = key().address(MessageId::from_u64(1), Some(2), "b.example");
        let (local, _) = split(&addr);
        assert!(local.starts_with("b+"));
        assert_eq!(local.len(), 2 + 29);
        assert!(local.len() <= 64, "RFC 5321 local-part limit");
        assert!(
            local[2..]
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))
        );
        // Deterministic: same inputs, same address.
        assert_eq!(
            addr,
            key().address(MessageId::from_u64(1), Some(2), "b.example")
        );
        // Different recipient, different token.
        assert_ne!(
            addr,
            key().address(MessageId::from_u64(1), Some(3), "b.example")
        );
    }

    #[test]
    fn receivers_may_fold_case() {
        let k = key();
        let id = MessageId::from_u64(42);
        let addr = k.address(id, Some(7), "Bounce.Example.COM");
        let (local, domain) = split(&addr);
        let upper = local.to_ascii_uppercase();
        assert!(upper.starts_with("B+"));
        assert_eq!(k.decode(&upper, domain), Ok((id, Some(7))));
        assert_eq!(
            k.decode(local, &domain.to_ascii_lowercase()),
            Ok((id, Some(7)))
        );
    }

    #[test]
    fn rejections_have_distinct_causes() {
        let k = key();
        let addr = k.address(MessageId::from_u64(99), Some(1), "bounce.example");
        let (local, domain) = split(&addr);
        assert_eq!(
            k.decode(&local[2..], domain),
            Err(TokenError::MissingPrefix)
        );
        assert_eq!(k.decode("", domain), Err(TokenError::MissingPrefix));
        assert_eq!(k.decode("bé", domain), Err(TokenError::MissingPrefix));
        assert_eq!(
            k.decode("b+not!base32", domain),
            Err(TokenError::BadEncoding)
        );
        // '1' and '8' are not in the base32 alphabet.
        assert_eq!(k.decode("b+18", domain), Err(TokenError::BadEncoding));
        assert_eq!(k.decode("b+mfrgg", domain), Err(TokenError::BadLength(3)));
        assert_eq!(
            k.decode(&format!("{local}aa"), domain),
            Err(TokenError::BadLength(19))
        );
        // Another domain, another key, a flipped bit: bad signature.
        assert_eq!(
            k.decode(local, "other.example"),
            Err(TokenError::BadSignature)
        );
        let other = BounceKey::from_secret(b"another-secret-of-16+").unwrap();
        assert_eq!(other.decode(local, domain), Err(TokenError::BadSignature));
        let mut bytes = BASE32_NOPAD
            .decode(local[2..].to_ascii_uppercase().as_bytes())
            .unwrap();
        bytes[3] ^= 0x01; // change the message id
        let forged = format!("b+{}", BASE32_NOPAD.encode(&bytes).to_ascii_lowercase());
        assert_eq!(k.decode(&forged, domain), Err(TokenError::BadSignature));
    }

    #[test]
    fn key_file_is_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, b"0123456789abcdef-test-secret \n\n").unwrap();
        let k = BounceKey::from_file(&path).unwrap();
        let addr = k.address(MessageId::from_u64(5), None, "x.example");
        let (local, domain) = split(&addr);
        // Same secret without the whitespace decodes it.
        assert_eq!(key().decode(local, domain).unwrap().0.as_u64(), 5);

        std::fs::write(&path, b"short-secret   \n").unwrap();
        let err = BounceKey::from_file(&path).unwrap_err();
        assert!(matches!(err, KeyError::TooShort { len: 12, .. }), "{err}");
        assert!(err.to_string().contains("at least 16"));

        let err = BounceKey::from_file(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, KeyError::Read { .. }));
        assert!(err.to_string().contains("missing"));
        assert!(!format!("{k:?}").contains("0123"));
    }

    #[test]
    fn known_vector() {
        // Pins the wire format: a change here breaks every bounce address
        // already in flight, so it must be deliberate.
        let addr = key().address(
            MessageId::from_u64(0x0001_0203_0405_0607),
            Some(0x0809),
            "bounce.example.com",
        );
        let (local, _) = split(&addr);
        let raw = BASE32_NOPAD
            .decode(local[2..].to_ascii_uppercase().as_bytes())
            .unwrap();
        assert_eq!(&raw[..10], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, SECRET));
        ctx.update(&raw[..10]);
        ctx.update(b"bounce.example.com");
        assert_eq!(&raw[10..], &ctx.sign().as_ref()[..8]);
        assert_eq!(local, KNOWN_LOCAL);
    }

    const KNOWN_LOCAL: &str = "b+aaaqeayeaudaocajh75awegyarh32";
}
