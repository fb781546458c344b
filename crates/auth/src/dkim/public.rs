//! The public half of a configured signing key, as its DNS record
//! publishes it (`p=`): what `laneway domain check` compares the
//! published record with.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use laneway_common::config::DkimAlgorithm;

/// The record value for the key in `path`: `v=DKIM1; k=rsa; p=<base64>`
/// (RSA: SubjectPublicKeyInfo DER; Ed25519: the raw 32 bytes, RFC 8463).
pub fn public_record(path: &Path, algorithm: DkimAlgorithm) -> Result<String, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read key file: {e}"))?;
    let der =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("not a PEM private key: {e}"))?;
    let (k, public) = match (algorithm, &der) {
        (DkimAlgorithm::RsaSha256, PrivateKeyDer::Pkcs1(k)) => {
            let key = rsa::PrivateKey::from_pkcs1_der(k.secret_pkcs1_der())
                .map_err(|e| format!("RSA key rejected: {e}"))?;
            ("rsa", spki(&key)?)
        }
        (DkimAlgorithm::RsaSha256, PrivateKeyDer::Pkcs8(k)) => {
            let key = rsa::PrivateKey::from_pkcs8_der(k.secret_pkcs8_der())
                .map_err(|e| format!("RSA key rejected: {e}"))?;
            ("rsa", spki(&key)?)
        }
        (DkimAlgorithm::Ed25519Sha256, PrivateKeyDer::Pkcs8(k)) => {
            use ring::signature::KeyPair;
            let pair =
                ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(k.secret_pkcs8_der())
                    .map_err(|e| format!("Ed25519 key rejected: {e}"))?;
            ("ed25519", pair.public_key().as_ref().to_vec())
        }
        _ => return Err("the key does not match its algorithm".into()),
    };
    Ok(format!("v=DKIM1; k={k}; p={}", B64.encode(public)))
}

fn spki(key: &rsa::PrivateKey) -> Result<Vec<u8>, String> {
    key.to_public_key()
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record of a key made by keygen is the record keygen printed.
    #[test]
    fn the_public_record_is_what_keygen_printed() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [DkimAlgorithm::RsaSha256, DkimAlgorithm::Ed25519Sha256] {
            let (pem, line) = super::super::keygen(alg, "example.com", "s1").unwrap();
            let f = dir.path().join("k.pem");
            std::fs::write(&f, pem).unwrap();
            let value = public_record(&f, alg).unwrap();
            let printed: String = line.split('"').skip(1).step_by(2).collect();
            assert_eq!(value, printed);
        }
    }
}
