//! Bytes in, replies out: an inbound SMTP session over an in-memory pipe
//! with an in-memory spool. The checks (well-formed replies, one stored
//! message per `250 queued`, no bare CR/LF or NUL ever stored) live in
//! `laneway_inbound::testing::fuzz_session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    laneway_inbound::testing::fuzz_session(data);
});
