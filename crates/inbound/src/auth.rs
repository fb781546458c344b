//! SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms,
//! against `[[smtp_user]]` entries whose passwords are argon2 PHC hashes.
//! Offered and accepted only over TLS.

use std::collections::HashMap;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use laneway_common::config::SmtpUser;

/// The largest SASL response line we read (RFC 4954 §4: at least 12288).
pub const MAX_AUTH_LINE: usize = 12288;

/// A hash to verify against when the user does not exist, so that unknown
/// users take as long as wrong passwords.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bGFuZXdheWR1bW15c2FsdA$k2kMz6D7jW9s4fTqS1mbV3gqkHqH9o0KoNq1a1Wq2vE";

/// The configured users.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, SmtpUser>,
}

impl Users {
    /// The users of the configuration.
    pub fn new(users: &[SmtpUser]) -> Users {
        Users {
            by_name: users.iter().map(|u| (u.name.clone(), u.clone())).collect(),
        }
    }

    /// Whether any user is configured (AUTH is only advertised then).
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// A user's entry.
    pub fn get(&self, name: &str) -> Option<&SmtpUser> {
        self.by_name.get(name)
    }

    /// Verifies a password. CPU-heavy by design (argon2): run it on a
    /// blocking thread.
    pub fn verify(&self, name: &str, password: &[u8]) -> bool {
        let (hash, known) = match self.by_name.get(name) {
            Some(u) => (u.password_hash.as_str(), true),
            None => (DUMMY_HASH, false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let ok = argon2::Argon2::default()
            .verify_password(password, &parsed)
            .is_ok();
        ok && known
    }
}

/// Checks that a PHC string is an argon2 hash argon2 can use (for check-config).
pub fn check_hash(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!("algorithm {} is not argon2", parsed.algorithm));
    }
    Ok(())
}

/// Hashes a password into an argon2id PHC string (`laneway hash-password`).
pub fn hash_password(password: &[u8]) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .expect("16 bytes always encode as a salt");
    argon2::Argon2::default()
        .hash_password(password, &salt)
        .expect("argon2 with default parameters hashes any password")
        .to_string()
}

/// Why a SASL response was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// The client sent `*` (RFC 4954 §4).
    Cancelled,
    /// Not valid base64, or not the mechanism's format.
    Malformed,
}

/// Decodes a base64 SASL response line.
pub fn decode(line: &str) -> Result<Vec<u8>, SaslError> {
    let t = line.trim();
    if t == "*" {
        return Err(SaslError::Cancelled);
    }
    if t == "=" {
        return Ok(Vec::new());
    }
    B64.decode(t).map_err(|_| SaslError::Malformed)
}

/// Splits a PLAIN response `authzid NUL authcid NUL passwd`.
pub fn parse_plain(resp: &[u8]) -> Result<(String, Vec<u8>), SaslError> {
    let mut parts = resp.split(|&b| b == 0);
    let (Some(authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let user = std::str::from_utf8(user).map_err(|_| SaslError::Malformed)?;
    if !authz.is_empty() && authz != user.as_bytes() {
        // Acting as someone else is not supported.
        return Err(SaslError::Malformed);
    }
    Ok((user.to_string(), pass.to_vec()))
}

/// base64 of a challenge text.
pub fn encode(text: &str) -> String {
    B64.encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_login_pieces() {
        assert_eq!(
            parse_plain(b"\0alice\0secret").unwrap(),
            ("alice".to_string(), b"secret".to_vec())
        );
        assert_eq!(parse_plain(b"alice\0alice\0pw").unwrap().0, "alice");
        assert!(parse_plain(b"bob\0alice\0pw").is_err());
        assert!(parse_plain(b"no-nuls").is_err());
        assert_eq!(decode("*"), Err(SaslError::Cancelled));
        assert_eq!(decode("!!!"), Err(SaslError::Malformed));
        assert_eq!(decode("YQ==").unwrap(), b"a");
    }

    #[test]
    fn hashes_verify() {
        let h = hash_password(b"s3cret");
        check_hash(&h).unwrap();
        let users = Users::new(&[SmtpUser {
            name: "alice".into(),
            password_hash: h,
            allowed_from_domains: None,
        }]);
        assert!(users.verify("alice", b"s3cret"));
        assert!(!users.verify("alice", b"wrong"));
        assert!(!users.verify("mallory", b"s3cret"));
        assert!(check_hash("plaintext").is_err());
        assert!(check_hash(DUMMY_HASH).is_ok());
    }
}
