//! `laneway dkim keygen`: a new signing key and the DNS record that
//! publishes it.
//!
//! ring cannot generate RSA keys, so RSA comes from the RustCrypto `rsa`
//! crate (key generation only: no private-key operation ever runs on
//! attacker-chosen input there, and signing stays with mail-auth over
//! ring). Ed25519 comes from ring. Both private keys are written as PKCS#8
//! PEM, which [`super::Signer::load`] reads back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use rsa::pkcs8::der::pem::{self, LineEnding};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};

use laneway_common::config::DkimAlgorithm;

/// Bits of a generated RSA key: the RFC 8301 recommendation, and what
/// every major mailbox provider verifies.
pub const RSA_KEYGEN_BITS: usize = 2048;

/// Longest character-string in a TXT record (RFC 1035 §3.3.14).
const TXT_CHUNK: usize = 255;

/// Why a key could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    /// The domain or selector is not usable in a DNS name.
    #[error("invalid {what}: {value:?}")]
    InvalidName {
        /// `"domain"` or `"selector"`.
        what: &'static str,
        /// The rejected value.
        value: String,
    },
    /// The random number generator or the key encoder failed.
    #[error("key generation failed: {0}")]
    Crypto(String),
}

/// Generates a key for `selector` of `domain`.
///
/// Returns the PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`) and
/// one zone-file line:
/// `<selector>._domainkey.<domain>. IN TXT "v=DKIM1; k=rsa; p=<base64>"`,
/// the quoted value split into strings of at most 255 octets. For RSA,
/// `p=` is the SubjectPublicKeyInfo DER; for Ed25519 (`k=ed25519`), the raw
/// 32-byte public key (RFC 8463 §4.2).
pub fn keygen(
    algorithm: DkimAlgorithm,
    domain: &str,
    selector: &str,
) -> Result<(String, String), KeygenError> {
    let domain = domain.trim_end_matches('.');
    if !super::valid_selector(domain) {
        return Err(KeygenError::InvalidName {
            what: "domain",
            value: domain.into(),
        });
    }
    if !super::valid_selector(selector) {
        return Err(KeygenError::InvalidName {
            what: "selector",
            value: selector.into(),
        });
    }
    let crypto = |e: &dyn std::fmt::Display| KeygenError::Crypto(e.to_string());
    let (private_pem, k, public) = match algorithm {
        DkimAlgorithm::RsaSha256 => {
            let mut rng = crypto_common::getrandom::SysRng;
            let key = rsa::PrivateKey::new(&mut rng, RSA_KEYGEN_BITS).map_err(|e| crypto(&e))?;
            let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| crypto(&e))?;
            let spki = key
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| crypto(&e))?;
            (pem.to_string(), "rsa", spki.as_bytes().to_vec())
        }
        DkimAlgorithm::Ed25519Sha256 => {
            let rng = SystemRandom::new();
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| crypto(&e))?;
            let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|e| crypto(&e))?;
            let pem = pem::encode_string("PRIVATE KEY", LineEnding::LF, doc.as_ref())
                .map_err(|e| crypto(&e))?;
            (pem, "ed25519", pair.public_key().as_ref().to_vec())
        }
    };
    let value = format!("v=DKIM1; k={k}; p={}", B64.encode(public));
    let record = format!(
        "{selector}._domainkey.{domain}. IN TXT {}",
        quote_txt(&value)
    );
    Ok((private_pem, record))
}

/// `"…" "…"`: the value as quoted strings of at most 255 octets each.
/// The value is ASCII without quotes or backslashes (base64 and tags), so
/// no escaping is needed.
fn quote_txt(value: &str) -> String {
    value
        .as_bytes()
        .chunks(TXT_CHUNK)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_strings_are_at_most_255_octets() {
        let v = "x".repeat(600);
        let q = quote_txt(&v);
        let parts: Vec<&str> = q.split(' ').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].len(), 255 + 2);
        assert_eq!(parts[1].len(), 255 + 2);
        assert_eq!(parts[2].len(), 90 + 2);
        assert_eq!(quote_txt("short"), "\"short\"");
    }

    #[test]
    fn names_are_checked() {
        for (d, s) in [
            ("", "s"),
            ("ex ample.com", "s"),
            ("example.com", ""),
            ("a.b", "x_y"),
        ] {
            assert!(
                matches!(
                    keygen(DkimAlgorithm::Ed25519Sha256, d, s),
                    Err(KeygenError::InvalidName { .. })
                ),
                "{d:?} {s:?}"
            );
        }
    }

    #[test]
    fn ed25519_record_shape() {
        let (pem, txt) = keygen(DkimAlgorithm::Ed25519Sha256, "Example.com.", "ed1").unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(txt.starts_with("ed1._domainkey.Example.com. IN TXT \"v=DKIM1; k=ed25519; p="));
        let p = txt.split("p=").nth(1).unwrap().trim_end_matches('"');
        assert_eq!(B64.decode(p).unwrap().len(), 32);
        // Two calls, two keys.
        let (pem2, _) = keygen(DkimAlgorithm::Ed25519Sha256, "example.com", "ed1").unwrap();
        assert_ne!(pem, pem2);
    }
}
