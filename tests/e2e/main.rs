//! End-to-end tests against the real `laneway` binary.

mod daemon;
mod delivery;
mod smtp;
