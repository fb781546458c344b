//! Loading `[[domain.dkim]]` private keys, with one clear message per
//! problem.
//!
//! mail-auth (over ring) would refuse most bad keys too, but with messages
//! such as `InvalidComponent` that do not tell the operator what to fix. So
//! the PEM is inspected first: is it a key at all, is it the algorithm the
//! configuration claims, is an RSA modulus at least 2048 bits (RFC 8301
//! §3.2 makes 1024 the floor for verifiers; senders should use 2048).

use std::path::Path;

use mail_auth::common::crypto::{DkimKey as SigningKey, Ed25519Key, RsaKey, Sha256};
use rsa::pkcs1::RsaPrivateKeyRef;
use rsa::pkcs8::der::Decode;
use rsa::pkcs8::{ObjectIdentifier, PrivateKeyInfoRef};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use laneway_common::config::DkimAlgorithm;

/// Smallest RSA modulus Laneway signs with, bits.
pub const MIN_RSA_BITS: usize = 2048;

const RSA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// What a PEM file turned out to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// RSA with this many modulus bits.
    Rsa(usize),
    Ed25519,
    /// Some other key type, named for the message.
    Other(&'static str),
}

/// Reads `path` and turns it into a signing key of `algorithm`.
///
/// The error is a sentence without the file name; the caller adds context.
pub(super) fn load_key(path: &Path, algorithm: DkimAlgorithm) -> Result<SigningKey, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read key file: {e}"))?;
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        format!("not a PEM private key (PKCS#1 \"RSA PRIVATE KEY\" or PKCS#8 \"PRIVATE KEY\"): {e}")
    })?;
    let found = inspect(&der)?;
    match (algorithm, found) {
        (DkimAlgorithm::RsaSha256, Found::Rsa(bits)) if bits < MIN_RSA_BITS => Err(format!(
            "RSA key has {bits} bits; DKIM keys need at least {MIN_RSA_BITS} (RFC 8301)"
        )),
        (DkimAlgorithm::RsaSha256, Found::Rsa(_)) => RsaKey::<Sha256>::from_key_der(der)
            .map(SigningKey::Rsa)
            .map_err(|e| format!("RSA key rejected: {e}")),
        (DkimAlgorithm::Ed25519Sha256, Found::Ed25519) => {
            let PrivateKeyDer::Pkcs8(p8) = &der else {
                return Err("Ed25519 keys must be PKCS#8".into());
            };
            // OpenSSL writes PKCS#8 v1 (no public key inside), which the
            // checked constructor refuses.
            Ed25519Key::from_pkcs8_maybe_unchecked_der(p8.secret_pkcs8_der())
                .map(SigningKey::Ed25519)
                .map_err(|e| format!("Ed25519 key rejected: {e}"))
        }
        (want, found) => Err(format!(
            "algorithm is {} but the file holds {}",
            algorithm_name(want),
            match found {
                Found::Rsa(_) => "an RSA key",
                Found::Ed25519 => "an Ed25519 key",
                Found::Other(what) => what,
            }
        )),
    }
}

/// The configuration spelling of an algorithm.
pub(super) fn algorithm_name(a: DkimAlgorithm) -> &'static str {
    match a {
        DkimAlgorithm::RsaSha256 => "rsa-sha256",
        DkimAlgorithm::Ed25519Sha256 => "ed25519-sha256",
    }
}

/// Key type and, for RSA, modulus size.
fn inspect(der: &PrivateKeyDer<'_>) -> Result<Found, String> {
    match der {
        PrivateKeyDer::Pkcs1(k) => rsa_bits(k.secret_pkcs1_der()).map(Found::Rsa),
        PrivateKeyDer::Sec1(_) => Ok(Found::Other("an EC (SEC1) key, which DKIM does not use")),
        PrivateKeyDer::Pkcs8(k) => {
            let info = PrivateKeyInfoRef::from_der(k.secret_pkcs8_der())
                .map_err(|e| format!("malformed PKCS#8 key: {e}"))?;
            let oid = info.algorithm.oid;
            if oid == RSA_OID {
                rsa_bits(info.private_key.as_bytes()).map(Found::Rsa)
            } else if oid == ED25519_OID {
                Ok(Found::Ed25519)
            } else {
                Ok(Found::Other(
                    "a key of another type (not RSA or Ed25519), which DKIM does not use",
                ))
            }
        }
        _ => Ok(Found::Other("a key in an unknown encoding")),
    }
}

/// Modulus size of a PKCS#1 RSAPrivateKey, bits.
fn rsa_bits(pkcs1: &[u8]) -> Result<usize, String> {
    let key = RsaPrivateKeyRef::from_der(pkcs1).map_err(|e| format!("malformed RSA key: {e}"))?;
    let n = key.modulus.as_bytes(); // big-endian, leading zeros stripped
    Ok(match n.first() {
        Some(&top) => n.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn res(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/resources")
            .join(name)
    }

    fn err(name: &str, a: DkimAlgorithm) -> String {
        match load_key(&res(name), a) {
            Ok(_) => panic!("{name} loaded as {a:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn good_keys_load() {
        for f in ["rsa2048_pkcs1.pem", "rsa2048_pkcs8.pem"] {
            assert!(matches!(
                load_key(&res(f), DkimAlgorithm::RsaSha256),
                Ok(SigningKey::Rsa(_))
            ));
        }
        assert!(matches!(
            load_key(&res("ed25519_pkcs8.pem"), DkimAlgorithm::Ed25519Sha256),
            Ok(SigningKey::Ed25519(_))
        ));
    }

    #[test]
    fn rsa_size_is_measured() {
        let pem = std::fs::read(res("rsa2048_pkcs1.pem")).unwrap();
        let der = PrivateKeyDer::from_pem_slice(&pem).unwrap();
        assert_eq!(inspect(&der), Ok(Found::Rsa(2048)));
        let pem = std::fs::read(res("rsa1024_pkcs8.pem")).unwrap();
        let der = PrivateKeyDer::from_pem_slice(&pem).unwrap();
        assert_eq!(inspect(&der), Ok(Found::Rsa(1024)));
    }

    #[test]
    fn each_problem_has_its_own_message() {
        let e = err("rsa1024_pkcs8.pem", DkimAlgorithm::RsaSha256);
        assert!(e.contains("1024 bits") && e.contains("2048"), "{e}");
        let e = err("ed25519_pkcs8.pem", DkimAlgorithm::RsaSha256);
        assert!(e.contains("rsa-sha256") && e.contains("Ed25519 key"), "{e}");
        let e = err("rsa2048_pkcs8.pem", DkimAlgorithm::Ed25519Sha256);
        assert!(e.contains("ed25519-sha256") && e.contains("RSA key"), "{e}");
        let e = err("ec_p256.pem", DkimAlgorithm::RsaSha256);
        assert!(e.contains("another type"), "{e}");
        let e = err("not_a_key.pem", DkimAlgorithm::RsaSha256);
        assert!(e.contains("not a PEM private key"), "{e}");
        let e = err("does-not-exist.pem", DkimAlgorithm::Ed25519Sha256);
        assert!(e.contains("cannot read key file"), "{e}");
    }
}
