//! Returned mail (DSN, ARF, free-form NDR) from anyone on the Internet:
//! the parser must never panic, and whatever it finds must be consistent.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(r) = laneway_auth::report::parse(data) {
        // a parsed report is usable: its debug form renders
        let _ = format!("{r:?}");
    }
});
