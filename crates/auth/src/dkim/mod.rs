//! DKIM signing (RFC 6376) of mail Laneway may speak for, with mail-auth.
//!
//! Laneway does not implement DKIM itself (DESIGN §3): canonicalization,
//! hashing, the signature and its header all come from mail-auth 0.13.3.
//! This module adds what a relay needs around it:
//!
//! * keys per sender domain, loaded and checked up front with every problem
//!   reported at once ([`Signer::load`]);
//! * an injected clock: mail-auth 0.13's `DkimSigner::sign` reads the system
//!   time for `t=` and has no way to pass one in, so [`Signer::sign`] drives
//!   mail-auth's public pieces (`Signature::canonicalize`,
//!   `SigningKey::hash`, `SigningKey::sign`) exactly the way `sign` does,
//!   with `t=` taken from the caller. RSA PKCS#1 v1.5 and Ed25519 are
//!   deterministic, so the output is reproducible byte for byte (a test
//!   checks it against mail-auth's own `sign`);
//! * a work-around for mail-auth 0.13's relaxed body canonicalization,
//!   which keeps whitespace-only lines at the end of the body (upstream
//!   issue #62, fixed in 0.15): such lines are removed before signing, and
//!   the message Laneway relays is that normalised one;
//! * dual signing: every key of a domain adds one `DKIM-Signature:`, e.g.
//!   RSA for old verifiers and Ed25519 (RFC 8463) for new ones.

mod keygen;
mod keys;
mod normalize;
mod public;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use mail_auth::AuthenticatedMessage;
use mail_auth::common::crypto::{DkimKey as SigningKey, SigningKey as _};
use mail_auth::common::headers::{HeaderStream, HeaderWriter, Writable, Writer};
use mail_auth::dkim::{Canonicalization, Signature};

use laneway_common::config::SenderDomain;

pub use keygen::{KeygenError, keygen};
pub use keys::MIN_RSA_BITS;
pub use public::public_record;

/// Header fields signed when present (RFC 6376 §5.4.1); `h=` lists the
/// present ones bottom-up, as mail-auth orders them.
///
/// `From` is listed twice ("oversigned"): the second entry has no header to
/// match, which makes verifiers reject a second `From:` added in transit.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// All DKIM keys, by sender domain. Build once at start-up (and on
/// reload); share it behind an `Arc`, it is `Send + Sync`.
pub struct Signer {
    /// Lower-cased sender domain → its keys, in configuration order.
    domains: HashMap<String, Vec<DomainKey>>,
}

/// One loaded `[[domain.dkim]]` entry.
struct DomainKey {
    selector: String,
    key: SigningKey,
}

/// Why a message could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkimError {
    /// The message has no `From:` header, which RFC 6376 §5.4 requires
    /// every signature to cover.
    #[error("message has no From: header; DKIM signatures must cover it")]
    MissingFrom,
    /// mail-auth or the crypto library failed.
    #[error("DKIM signing failed: {0}")]
    Signing(String),
}

impl Signer {
    /// Loads every key of every `[[domain]]`.
    ///
    /// Reports all problems at once, one line each: unreadable file, not a
    /// key, key type not matching `algorithm`, RSA below
    /// [`MIN_RSA_BITS`], a domain listed twice, an empty or repeated
    /// selector.
    pub fn load(domains: &[SenderDomain]) -> Result<Signer, Vec<String>> {
        let mut problems = Vec::new();
        let mut map: HashMap<String, Vec<DomainKey>> = HashMap::new();
        for d in domains {
            let name = d.name.trim_end_matches('.').to_ascii_lowercase();
            if map.contains_key(&name) {
                problems.push(format!("[[domain]] {:?}: listed twice", d.name));
                continue;
            }
            let mut keys: Vec<DomainKey> = Vec::new();
            for (i, k) in d.dkim.iter().enumerate() {
                let at = format!(
                    "[[domain]] {:?} dkim[{i}] selector {:?} ({}, {})",
                    d.name,
                    k.selector,
                    keys::algorithm_name(k.algorithm),
                    k.key.display()
                );
                if !valid_selector(&k.selector) {
                    problems.push(format!(
                        "{at}: selector must be dot-separated letters, digits and hyphens"
                    ));
                    continue;
                }
                if d.dkim[..i].iter().any(|o| o.selector == k.selector) {
                    problems.push(format!("{at}: selector used twice for this domain"));
                    continue;
                }
                match keys::load_key(&k.key, k.algorithm) {
                    Ok(key) => keys.push(DomainKey {
                        selector: k.selector.clone(),
                        key,
                    }),
                    Err(e) => problems.push(format!("{at}: {e}")),
                }
            }
            map.insert(name, keys);
        }
        if problems.is_empty() {
            map.retain(|_, keys| !keys.is_empty());
            Ok(Signer { domains: map })
        } else {
            Err(problems)
        }
    }

    /// Whether mail from `sender_domain` gets signed.
    pub fn signs_for(&self, sender_domain: &str) -> bool {
        self.domains.contains_key(&domain_key(sender_domain))
    }

    /// Signs `message` (CRLF line ends) for `sender_domain`
    /// (case-insensitive, exact match on a `[[domain]]` name).
    ///
    /// `Ok(None)`: the domain has no keys; relay the message unchanged.
    /// `Ok(Some(signed))`: one `DKIM-Signature:` header per key (in
    /// configuration order) followed by the message with whitespace-only
    /// lines at the end of the body removed — relay exactly these bytes.
    /// `now_unix` (seconds since the Unix epoch) becomes `t=`; `0` omits
    /// the tag.
    pub fn sign(
        &self,
        message: &[u8],
        sender_domain: &str,
        now_unix: u64,
    ) -> Result<Option<Vec<u8>>, DkimError> {
        let Some((domain, keys)) = self.domains.get_key_value(&domain_key(sender_domain)) else {
            return Ok(None);
        };
        let message = normalize::trim_trailing_blank_lines(message);
        let parsed = AuthenticatedMessage::parse(&message).ok_or(DkimError::MissingFrom)?;
        if !parsed
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(b"From"))
        {
            return Err(DkimError::MissingFrom);
        }
        let mut out = Vec::with_capacity(message.len() + 600 * keys.len());
        for k in keys {
            let sig = sign_at(&k.key, domain, &k.selector, &parsed, now_unix)?;
            out.extend_from_slice(sig.to_header().as_bytes());
        }
        out.extend_from_slice(&message);
        Ok(Some(out))
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (domain, keys) in &self.domains {
            let sels: Vec<&str> = keys.iter().map(|k| k.selector.as_str()).collect();
            m.entry(domain, &sels);
        }
        m.finish()
    }
}

/// The map key for a sender domain.
fn domain_key(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

/// A selector is a dot-separated sequence of DNS labels (RFC 6376 §3.1).
fn valid_selector(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// One signature with an explicit `t=`.
///
/// The same steps as mail-auth 0.13.3's private `DkimSigner::sign_stream`
/// (src/dkim/sign.rs), which `DkimSigner::sign` calls with the system
/// clock: canonicalize, hash the body, fill in the tags, sign the canonical
/// headers followed by the signature header without `b=`. The header
/// fields come from mail-auth's own message parser (the one its verifier
/// uses), because its signing-side header iterator is crate-private.
fn sign_at(
    key: &SigningKey,
    domain: &str,
    selector: &str,
    message: &AuthenticatedMessage<'_>,
    now: u64,
) -> Result<Signature, DkimError> {
    let mut sig = Signature {
        v: 1,
        a: key.algorithm(),
        d: domain.to_string(),
        s: selector.to_string(),
        h: headers_to_sign(message),
        ch: Canonicalization::Relaxed,
        cb: Canonicalization::Relaxed,
        ..Default::default()
    };
    let (_, headers, signed, body) = sig.canonicalize(Fields::new(message));
    sig.bh = key.hash(body).as_ref().to_vec();
    sig.t = now;
    sig.h = signed;
    sig.b = key
        .sign(Unsigned {
            headers,
            signature: &sig,
        })
        .map_err(|e| DkimError::Signing(e.to_string()))?;
    Ok(sig)
}

/// [`SIGNED_HEADERS`] without the ones the message lacks (the oversigned
/// second `From` stays).
///
/// mail-auth 0.13.3 lists *every* requested header in `h=`, present or not
/// (an absent one signs as "must stay absent"). Laneway signs only what is
/// there, like OpenDKIM's default, so that a list manager adding, say,
/// `List-Unsubscribe` to a message that had none does not break the
/// signature; only `From` is oversigned.
fn headers_to_sign(message: &AuthenticatedMessage<'_>) -> Vec<String> {
    let present = |name: &str| {
        message
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    };
    SIGNED_HEADERS
        .iter()
        .filter(|h| **h == "From" || present(h))
        .map(|h| h.to_string())
        .collect()
}

/// A parsed message as mail-auth's [`HeaderStream`]: header fields in
/// order, then the body.
struct Fields<'x> {
    headers: std::vec::IntoIter<(&'x [u8], &'x [u8])>,
    body: &'x [u8],
}

impl<'x> Fields<'x> {
    fn new(message: &AuthenticatedMessage<'x>) -> Self {
        Fields {
            headers: message.headers.clone().into_iter(),
            body: message
                .raw_message
                .get(message.body_offset()..)
                .unwrap_or_default(),
        }
    }
}

impl<'x> HeaderStream<'x> for Fields<'x> {
    fn next_header(&mut self) -> Option<(&'x [u8], &'x [u8])> {
        self.headers.next()
    }

    fn body(&mut self) -> &'x [u8] {
        self.body
    }
}

/// The bytes a DKIM signature covers: the canonical signed headers, then
/// the `DKIM-Signature` header itself with an empty `b=`.
struct Unsigned<'a, H: Writable> {
    headers: H,
    signature: &'a Signature,
}

impl<H: Writable> Writable for Unsigned<'_, H> {
    fn write(self, writer: &mut impl Writer) {
        self.headers.write(writer);
        self.signature.write(writer, false);
    }
}
