//! Benchmark and test tooling for Laneway: a counting SMTP [`sink`] that
//! works as the remote MX of tests and benchmarks.

pub mod sink;
