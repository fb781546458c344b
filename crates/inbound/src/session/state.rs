//! Session state, kept in two parts (RFC 5321 §4.1.1.5): facts about the
//! connection (peer, HELO, TLS, AUTH), which only a new connection or
//! STARTTLS resets, and the mail transaction (sender, recipients), which
//! RSET, EHLO and the end of data clear.

use std::net::SocketAddr;
use std::time::Instant;

use laneway_common::envelope::{BodyType, DsnRet};
use laneway_common::{ActivityGuard, Priority, Recipient};

use crate::content::ContentReader;

/// Facts about the connection.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The listener's name.
    pub listener: String,
    /// The client's address.
    pub peer: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
    /// The HELO/EHLO name, once given.
    pub helo: Option<String>,
    /// Whether the client said EHLO (not HELO).
    pub esmtp: bool,
    /// TLS protocol and cipher when the connection is encrypted.
    pub tls: Option<String>,
    /// The authenticated user.
    pub auth_user: Option<String>,
    /// Failed AUTH attempts.
    pub auth_failures: u32,
    /// Error replies sent.
    pub errors: u32,
    /// Messages accepted on this connection.
    pub accepted: u32,
}

impl Conn {
    /// A fresh connection on `listener` from `peer` to `local`.
    pub fn new(listener: impl Into<String>, peer: SocketAddr, local: SocketAddr) -> Conn {
        Conn {
            listener: listener.into(),
            peer,
            local,
            helo: None,
            esmtp: false,
            tls: None,
            auth_user: None,
            auth_failures: 0,
            errors: 0,
            accepted: 0,
        }
    }

    /// The RFC 3848 transmission type for `Received:`.
    pub fn protocol(&self) -> &'static str {
        match (self.esmtp, self.tls.is_some(), self.auth_user.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        }
    }
}

/// The MAIL FROM parameters kept for the envelope.
#[derive(Debug, Clone, Default)]
pub struct MailParams {
    /// `SMTPUTF8`
    pub smtputf8: bool,
    /// `BODY=`
    pub body: BodyType,
    /// `RET=`
    pub ret: Option<DsnRet>,
    /// `ENVID=`
    pub envid: Option<String>,
    /// `MT-PRIORITY=` mapped to a lane.
    pub mt_priority: Option<Priority>,
    /// RFC 8689 `REQUIRETLS` (only accepted over TLS).
    pub require_tls: bool,
}

/// One mail transaction, from MAIL to the end of data.
#[derive(Debug)]
pub struct Transaction {
    /// Reverse path (empty for `<>`).
    pub sender: String,
    /// MAIL parameters.
    pub params: MailParams,
    /// Accepted recipients.
    pub recipients: Vec<Recipient>,
    /// When MAIL was accepted (for the transaction deadline).
    pub started: Instant,
    /// When message data must be complete, once DATA or BDAT has begun:
    /// `data_timeout` from the start, extended by every byte received at
    /// the listener's minimum data rate.
    pub data_deadline: Option<tokio::time::Instant>,
    /// BDAT content collected so far.
    pub bdat: Option<(ContentReader, Vec<u8>)>,
    /// Keeps shutdown waiting until the transaction is over.
    pub _activity: ActivityGuard,
}
