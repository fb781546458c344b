//! The config loader: any text gives a config or a list of errors, never a
//! panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match laneway_common::Config::from_toml(text, std::path::Path::new("/nonexistent")) {
        Ok(loaded) => {
            let _ = format!("{:?}", loaded.config);
        }
        Err(e) => assert!(!e.0.is_empty(), "an error without a message"),
    }
});
