//! Benchmark and test tooling for Laneway: a counting SMTP [`sink`] that
//! works as the remote MX of tests and benchmarks, a signature-checking
//! [`webhook`] receiver, the load generator
//! [`blast`], and the benchmark [`scenarios`] (which run against Laneway
//! and against any other relay, Postfix included, on the same machine).

pub mod blast;
pub mod cpu;
pub mod daemon;
pub mod http;
pub mod scenarios;
pub mod sink;
pub mod webhook;

/// The end of the first complete SMTP reply in `buf`, if there is one.
pub fn complete_reply(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + i + 1];
        if line.len() >= 4 && line[3] == b' ' {
            return Some(start + i + 1);
        }
        start += i + 1;
    }
    None
}
