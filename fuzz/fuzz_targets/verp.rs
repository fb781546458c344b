//! VERP bounce addresses are chosen by strangers: decoding must never
//! panic, and anything that decodes must be what we would have issued.
#![no_main]

use std::sync::OnceLock;

use laneway_auth::BounceKey;

fn key() -> &'static BounceKey {
    static KEY: OnceLock<BounceKey> = OnceLock::new();
    KEY.get_or_init(|| BounceKey::from_secret(&[7u8; 32]).expect("key"))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (local, domain) = text.rsplit_once('@').unwrap_or((text, "bounce.test"));
    if let Ok((id, rcpt)) = key().decode(local, domain) {
        // only our own tokens verify: re-encoding gives the same address
        let again = key().address(id, rcpt, domain);
        assert!(
            again.eq_ignore_ascii_case(&format!("{local}@{domain}")),
            "{text:?} decoded to {id}/{rcpt:?}, which encodes as {again}"
        );
    }
});
