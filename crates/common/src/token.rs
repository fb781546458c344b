//! Bearer tokens of the API: made random, stored only as their SHA-256
//! (lower-case hex), so a configuration file holds no secret.

/// A fresh token: `lw_` and 64 hex digits (256 random bits).
pub fn new_token() -> String {
    let b: [u8; 32] = rand::random();
    format!("lw_{}", data_encoding::HEXLOWER.encode(&b))
}

/// Lower-case hex SHA-256 of a token (what `[[api.key]] sha256` holds).
pub fn sha256_hex(token: &str) -> String {
    data_encoding::HEXLOWER
        .encode(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_their_digests() {
        let t = new_token();
        assert!(t.starts_with("lw_") && t.len() == 67);
        assert_ne!(t, new_token());
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
