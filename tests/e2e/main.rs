//! End-to-end tests against the real `laneway` binary.

mod api;
mod auth;
mod bench;
mod cluster;
mod daemon;
mod delivery;
mod domain;
mod events;
mod hardening;
mod smtp;
