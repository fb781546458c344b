//! One SMTP session (RFC 5321), generic over its stream so that the same
//! code runs over TCP, over TLS and, in tests, over in-memory pipes.
//!
//! Input is framed here: command lines are cut at LF and held to 512
//! octets (RFC 5321 §4.5.3.1.4; AUTH responses to 12288, RFC 4954 §4),
//! then parsed by smtp-proto; message content goes through
//! [`crate::content::ContentReader`]. Replies are collected and written
//! when the input buffer runs dry, so pipelined commands (RFC 2920) get
//! their replies in one write.

mod auth;
mod data;
pub mod state;
mod verbs;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use laneway_common::Reply;
use laneway_common::config::Listener;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Shared;
use crate::content::ContentReader;
use state::{Conn, Transaction};

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with CRLF.
pub const MAX_COMMAND_LINE: usize = 512;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// What the session is reading.
enum Mode {
    /// Command lines.
    Command,
    /// The rest of a command line that was too long; its reply is sent
    /// when the line ends. `true` when it was an AUTH response.
    Discard(bool),
    /// DATA content.
    Data(ContentReader, Vec<u8>),
    /// A BDAT chunk: bytes still to read, whether it is the LAST one, and
    /// the reply to give instead of accepting it (bad sequence).
    Bdat {
        remaining: usize,
        last: bool,
        refuse: Option<Reply>,
    },
    /// A SASL response line for AUTH.
    Auth(auth::Step),
}

/// How processing of the buffered input ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// All buffered input is used up: read more.
    NeedInput,
    /// Close the connection (after QUIT, a fatal error or a 421).
    Close,
    /// Upgrade to TLS now (STARTTLS was accepted).
    StartTls,
}

/// An SMTP session.
pub struct Session {
    shared: Arc<Shared>,
    listener: Listener,
    conn: Conn,
    tx: Option<Transaction>,
    mode: Mode,
    inbuf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
}

impl Session {
    /// A session for a new connection.
    pub fn new(shared: Arc<Shared>, listener: Listener, conn: Conn) -> Session {
        Session {
            shared,
            listener,
            conn,
            tx: None,
            mode: Mode::Command,
            inbuf: Vec::with_capacity(4096),
            pos: 0,
            out: Vec::with_capacity(1024),
        }
    }

    /// The session after STARTTLS: only the connection's identity survives;
    /// HELO, AUTH, the transaction and any buffered input are gone (RFC 3207 §4.2).
    pub fn into_tls(self, tls: String) -> Session {
        let mut conn = self.conn;
        conn.helo = None;
        conn.esmtp = false;
        conn.auth_user = None;
        conn.tls = Some(tls);
        Session::new(self.shared, self.listener, conn)
    }

    /// Connection facts (for logs and tests).
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    fn hostname(&self) -> String {
        self.shared.settings.load().hostname.clone()
    }

    pub(crate) fn reply(&mut self, r: Reply) {
        if r.code >= 400 {
            self.conn.errors += 1;
        }
        self.out.extend_from_slice(r.to_wire().as_bytes());
    }

    /// Writes the greeting.
    pub fn greet(&mut self) {
        let host = self.hostname();
        self.reply(Reply::bare(220, format!("{host} ESMTP Laneway")));
    }

    /// Runs the session on `io` until it closes or asks for STARTTLS.
    pub(crate) async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut S) -> Flow {
        loop {
            let flow = self.process().await;
            if !self.out.is_empty() {
                let res = io.write_all(&self.out).await;
                self.out.clear();
                if res.is_err() {
                    return Flow::Close;
                }
            }
            match flow {
                Flow::NeedInput => {}
                Flow::Close => {
                    let _ = io.shutdown().await;
                    return Flow::Close;
                }
                Flow::StartTls => return Flow::StartTls,
            }
            if self.conn.errors > self.listener.max_errors {
                self.reply(Reply::new(
                    421,
                    (4, 7, 0),
                    "Too many errors, closing connection",
                ));
                let _ = io.write_all(&self.out).await;
                return Flow::Close;
            }
            match self.read_more(io).await {
                Ok(true) => {}
                Ok(false) => return Flow::Close,
                Err(reply) => {
                    self.reply(reply);
                    let _ = io.write_all(&self.out).await;
                    let _ = io.shutdown().await;
                    return Flow::Close;
                }
            }
        }
    }

    /// Reads more input. `Ok(false)` at EOF; `Err(reply)` when the session
    /// must end with that reply (timeout, shutdown).
    async fn read_more<S: AsyncRead + Unpin>(&mut self, io: &mut S) -> Result<bool, Reply> {
        if self.pos > 0 {
            self.inbuf.drain(..self.pos);
            self.pos = 0;
        }
        let in_data = matches!(self.mode, Mode::Data(..) | Mode::Bdat { .. });
        let mut wait = if in_data {
            self.listener.data_timeout
        } else {
            self.listener.command_timeout
        };
        if let Some(tx) = &self.tx {
            let left = self
                .listener
                .transaction_timeout
                .saturating_sub(tx.started.elapsed());
            if left.is_zero() {
                return Err(Reply::new(
                    421,
                    (4, 4, 2),
                    "Transaction time limit exceeded, closing connection",
                ));
            }
            wait = wait.min(left);
            if in_data && let Some(deadline) = tx.data_deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Reply::new(
                        421,
                        (4, 4, 2),
                        "Data arriving too slowly, closing connection",
                    ));
                }
                wait = wait.min(left);
            }
        }
        let idle = self.tx.is_none() && matches!(self.mode, Mode::Command);
        let lifecycle = self.shared.lifecycle.clone();
        let len = self.inbuf.len();
        self.inbuf.resize(len + READ_CHUNK, 0);
        let read = async {
            tokio::select! {
                r = io.read(&mut self.inbuf[len..]) => Some(r),
                _ = lifecycle.shutdown_requested(), if idle => None,
            }
        };
        let res = tokio::time::timeout(wait, read).await;
        match res {
            Err(_) => {
                self.inbuf.truncate(len);
                let slow = in_data
                    && self
                        .tx
                        .as_ref()
                        .and_then(|t| t.data_deadline)
                        .is_some_and(|d| d <= Instant::now());
                Err(Reply::new(
                    421,
                    (4, 4, 2),
                    if slow {
                        "Data arriving too slowly, closing connection"
                    } else {
                        "Timeout exceeded, closing connection"
                    },
                ))
            }
            Ok(None) => {
                self.inbuf.truncate(len);
                Err(Reply::new(
                    421,
                    (4, 3, 2),
                    "Service shutting down, closing connection",
                ))
            }
            Ok(Some(Ok(0))) | Ok(Some(Err(_))) => {
                self.inbuf.truncate(len);
                Ok(false)
            }
            Ok(Some(Ok(n))) => {
                self.inbuf.truncate(len + n);
                if in_data {
                    self.extend_data_deadline(n);
                }
                Ok(true)
            }
        }
    }

    /// Processes buffered input as far as it goes.
    async fn process(&mut self) -> Flow {
        loop {
            if self.pos >= self.inbuf.len() {
                return Flow::NeedInput;
            }
            let mode = std::mem::replace(&mut self.mode, Mode::Command);
            let flow = match mode {
                Mode::Command | Mode::Auth(_) => {
                    let limit = match &mode {
                        Mode::Auth(_) => crate::auth::MAX_AUTH_LINE,
                        _ if starts_with_ci(&self.inbuf[self.pos..], b"AUTH ") => {
                            crate::auth::MAX_AUTH_LINE
                        }
                        _ => MAX_COMMAND_LINE,
                    };
                    let avail = &self.inbuf[self.pos..];
                    match memchr::memchr(b'\n', avail) {
                        Some(i) if i < limit => {
                            let line = avail[..=i].to_vec();
                            self.pos += i + 1;
                            match mode {
                                Mode::Auth(step) => self.auth_response(step, &line).await,
                                _ => self.command(&line).await,
                            }
                        }
                        Some(i) => {
                            self.pos += i + 1;
                            self.line_too_long(matches!(mode, Mode::Auth(_)));
                            None
                        }
                        None if avail.len() >= limit => {
                            self.pos = self.inbuf.len();
                            self.mode = Mode::Discard(matches!(mode, Mode::Auth(_)));
                            None
                        }
                        None => {
                            self.mode = mode;
                            return Flow::NeedInput;
                        }
                    }
                }
                Mode::Discard(auth) => {
                    let avail = &self.inbuf[self.pos..];
                    match memchr::memchr(b'\n', avail) {
                        Some(i) => {
                            self.pos += i + 1;
                            self.line_too_long(auth);
                        }
                        None => {
                            self.pos = self.inbuf.len();
                            self.mode = Mode::Discard(auth);
                        }
                    }
                    None
                }
                Mode::Data(mut reader, mut body) => {
                    let avail = &self.inbuf[self.pos..];
                    match reader.feed(avail, &mut body) {
                        Some(n) => {
                            self.pos += n;
                            self.end_of_data(reader, body).await;
                        }
                        None => {
                            self.pos = self.inbuf.len();
                            self.mode = Mode::Data(reader, body);
                        }
                    }
                    None
                }
                Mode::Bdat {
                    remaining,
                    last,
                    refuse,
                } => {
                    let avail = &self.inbuf[self.pos..];
                    let take = remaining.min(avail.len());
                    if refuse.is_none()
                        && let Some(tx) = self.tx.as_mut()
                        && let Some((reader, body)) = tx.bdat.as_mut()
                    {
                        reader.feed(&avail[..take], body);
                    }
                    self.pos += take;
                    let remaining = remaining - take;
                    if remaining == 0 {
                        self.end_of_chunk(last, refuse).await;
                    } else {
                        self.mode = Mode::Bdat {
                            remaining,
                            last,
                            refuse,
                        };
                    }
                    None
                }
            };
            if let Some(flow) = flow {
                return flow;
            }
        }
    }

    /// Gives the client more time for the `n` bytes it just sent, at the
    /// listener's minimum data rate (0: no rate limit, only `data_timeout`
    /// between reads and the transaction deadline).
    fn extend_data_deadline(&mut self, n: usize) {
        let rate = self.listener.min_data_rate;
        let Some(tx) = self.tx.as_mut() else { return };
        match (&mut tx.data_deadline, rate) {
            (Some(_), 0) => tx.data_deadline = None,
            (Some(deadline), rate) => {
                *deadline += Duration::from_secs_f64(n as f64 / rate as f64);
            }
            (None, _) => {}
        }
    }

    fn line_too_long(&mut self, auth: bool) {
        if auth {
            self.reply(Reply::new(
                500,
                (5, 5, 6),
                "Authentication exchange line too long",
            ));
        } else {
            self.reply(Reply::new(
                500,
                (5, 5, 2),
                "Line too long (RFC 5321 4.5.3.1.4)",
            ));
        }
        self.mode = Mode::Command;
    }

    /// The read timeout in force (for tests and diagnostics).
    pub fn command_timeout(&self) -> Duration {
        self.listener.command_timeout
    }
}

fn starts_with_ci(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests;
