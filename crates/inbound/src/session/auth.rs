//! The AUTH exchange (RFC 4954): PLAIN (RFC 4616) and LOGIN, over TLS only.
//! Failures answer the same `535 5.7.8` after the same delay whether the
//! user exists or not; too many failures end the session.

use std::time::Duration;

use laneway_common::Reply;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};

use super::{Flow, Mode, Session};
use crate::auth::{self, SaslError};

/// Delay before a failed AUTH is answered (slows password guessing).
pub const FAILURE_DELAY: Duration = Duration::from_secs(1);
/// Failed AUTH attempts before the session is closed.
pub const MAX_FAILURES: u32 = 3;

/// Where an AUTH exchange stands while waiting for a response line.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// PLAIN without an initial response: waiting for it.
    Plain,
    /// LOGIN: waiting for the user name.
    LoginUser,
    /// LOGIN: waiting for the password of this user.
    LoginPass(String),
}

impl Session {
    pub(super) async fn auth_start(&mut self, mechanism: u64, initial: String) -> Option<Flow> {
        if self.conn.tls.is_none() {
            self.reply(Reply::new(
                538,
                (5, 7, 11),
                "Encryption required for requested authentication mechanism",
            ));
            return None;
        }
        if self.shared.settings.load().users.is_empty() {
            self.reply(Reply::new(502, (5, 5, 1), "AUTH not available"));
            return None;
        }
        if self.conn.auth_user.is_some() {
            self.reply(Reply::new(503, (5, 5, 1), "Already authenticated"));
            return None;
        }
        if self.tx.is_some() {
            self.reply(Reply::new(
                503,
                (5, 5, 1),
                "AUTH not permitted during a mail transaction",
            ));
            return None;
        }
        match mechanism {
            AUTH_PLAIN if initial.is_empty() => {
                self.reply(Reply::bare(334, ""));
                self.mode = Mode::Auth(Step::Plain);
                None
            }
            AUTH_PLAIN => self.finish_plain(&initial).await,
            AUTH_LOGIN if initial.is_empty() => {
                self.reply(Reply::bare(334, auth::encode("Username:")));
                self.mode = Mode::Auth(Step::LoginUser);
                None
            }
            AUTH_LOGIN => {
                self.auth_response(Step::LoginUser, initial.as_bytes())
                    .await
            }
            _ => {
                self.reply(Reply::new(
                    504,
                    (5, 5, 4),
                    "Unrecognized authentication mechanism",
                ));
                None
            }
        }
    }

    pub(super) async fn auth_response(&mut self, step: Step, line: &[u8]) -> Option<Flow> {
        let text = String::from_utf8_lossy(line);
        match step {
            Step::Plain => self.finish_plain(&text).await,
            Step::LoginUser => match auth::decode(&text) {
                Ok(user) => {
                    let user = String::from_utf8_lossy(&user).into_owned();
                    self.reply(Reply::bare(334, auth::encode("Password:")));
                    self.mode = Mode::Auth(Step::LoginPass(user));
                    None
                }
                Err(e) => self.sasl_error(e),
            },
            Step::LoginPass(user) => match auth::decode(&text) {
                Ok(pass) => self.check_password(user, pass).await,
                Err(e) => self.sasl_error(e),
            },
        }
    }

    async fn finish_plain(&mut self, text: &str) -> Option<Flow> {
        match auth::decode(text).and_then(|r| auth::parse_plain(&r)) {
            Ok((user, pass)) => self.check_password(user, pass).await,
            Err(e) => self.sasl_error(e),
        }
    }

    fn sasl_error(&mut self, e: SaslError) -> Option<Flow> {
        match e {
            SaslError::Cancelled => {
                self.reply(Reply::new(501, (5, 0, 0), "Authentication cancelled"))
            }
            SaslError::Malformed => self.reply(Reply::new(
                501,
                (5, 5, 2),
                "Cannot decode the authentication response",
            )),
        }
        None
    }

    async fn check_password(&mut self, user: String, pass: Vec<u8>) -> Option<Flow> {
        let users = self.shared.settings.load().users.clone();
        let name = user.clone();
        let ok = tokio::task::spawn_blocking(move || users.verify(&name, &pass))
            .await
            .unwrap_or(false);
        if ok {
            tracing::info!(listener = %self.conn.listener, peer = %self.conn.peer.ip(), user = %user, "authenticated");
            self.conn.auth_user = Some(user);
            self.reply(Reply::new(235, (2, 7, 0), "Authentication successful"));
            return None;
        }
        self.conn.auth_failures += 1;
        tracing::warn!(listener = %self.conn.listener, peer = %self.conn.peer.ip(), user = %user, failures = self.conn.auth_failures, "authentication failed");
        tokio::time::sleep(FAILURE_DELAY).await;
        self.reply(Reply::new(
            535,
            (5, 7, 8),
            "Authentication credentials invalid",
        ));
        if self.conn.auth_failures >= MAX_FAILURES {
            self.reply(Reply::new(
                421,
                (4, 7, 0),
                "Too many authentication failures, closing connection",
            ));
            return Some(Flow::Close);
        }
        None
    }
}
