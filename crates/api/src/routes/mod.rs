//! One module per group of endpoints.

pub mod admin;
pub mod cluster;
pub mod events;
pub mod health;
pub mod openapi;
pub mod submit;
pub mod suppressions;
pub mod unsubscribe;
