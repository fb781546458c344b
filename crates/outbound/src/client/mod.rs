//! The SMTP client side of a delivery (RFC 5321, RFC 2920 pipelining,
//! RFC 3030 BDAT, RFC 3207 STARTTLS, RFC 4954 AUTH PLAIN, RFC 3461 DSN
//! parameters). Replies are read with smtp-proto's incremental parser and
//! bounded in size, every phase has its own timeout, and each recipient
//! gets its own outcome.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use laneway_common::Reply;
use laneway_spool::queue::Outcome;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use smtp_proto::response::parser::ResponseReceiver;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// Longest reply we read (all lines together); a peer that sends more is cut off.
pub const MAX_REPLY: usize = 64 * 1024;

/// A plain or TLS connection.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What went wrong talking to a server. The text of each starts with the
/// RFC 3463 status it is reported with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Could not connect, or the connection broke.
    #[error("4.4.1 {0}")]
    Connect(String),
    /// The connection broke or timed out during a session.
    #[error("4.4.2 {0}")]
    Lost(String),
    /// The server answered with an error at a session step (greeting,
    /// EHLO, STARTTLS, AUTH).
    #[error("{0}")]
    Rejected(Reply),
    /// TLS could not be set up.
    #[error("4.7.5 {0}")]
    Tls(String),
    /// TLS is required by policy and the server does not offer it.
    #[error("4.7.4 {0}")]
    TlsUnavailable(String),
    /// The server speaks something that is not SMTP.
    #[error("4.5.0 {0}")]
    Protocol(String),
}

/// Per-phase timeouts (RFC 5321 §4.5.3.2).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// Greeting, EHLO and STARTTLS replies.
    pub greeting: Duration,
    /// MAIL, RCPT, DATA and RSET replies.
    pub command: Duration,
    /// Sending the content and waiting for the final reply.
    pub data: Duration,
}

/// What the server offers in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    /// The host name in the first line.
    pub hostname: String,
    /// RFC 2920
    pub pipelining: bool,
    /// RFC 1870 SIZE offered.
    pub size_ext: bool,
    /// RFC 1870 limit, 0 = none given.
    pub size: u64,
    /// RFC 6152
    pub eightbit: bool,
    /// RFC 6531
    pub smtputf8: bool,
    /// RFC 3461
    pub dsn: bool,
    /// RFC 3030
    pub chunking: bool,
    /// RFC 3207
    pub starttls: bool,
    /// RFC 8689
    pub requiretls: bool,
    /// RFC 4954 mechanisms
    pub auth: Vec<String>,
}

impl Caps {
    /// Parses the lines of an EHLO reply.
    pub fn parse(reply: &Reply) -> Caps {
        let mut c = Caps::default();
        for (i, line) in reply.lines.iter().enumerate() {
            if i == 0 {
                c.hostname = line.split_whitespace().next().unwrap_or("").to_string();
                continue;
            }
            let mut words = line.split_whitespace();
            let kw = words.next().unwrap_or("").to_ascii_uppercase();
            match kw.as_str() {
                "PIPELINING" => c.pipelining = true,
                "SIZE" => {
                    c.size_ext = true;
                    c.size = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                }
                "8BITMIME" => c.eightbit = true,
                "SMTPUTF8" => c.smtputf8 = true,
                "DSN" => c.dsn = true,
                "CHUNKING" => c.chunking = true,
                "STARTTLS" => c.starttls = true,
                "REQUIRETLS" => c.requiretls = true,
                "AUTH" => c.auth = words.map(|w| w.to_ascii_uppercase()).collect(),
                _ => {}
            }
        }
        c
    }
}

/// One transaction to send.
#[derive(Debug, Clone)]
pub struct Transaction<'a> {
    /// Reverse path (empty for `<>`).
    pub from: &'a str,
    /// Recipients: index, address, NOTIFY= value, ORCPT (`rfc822;addr`).
    pub rcpts: Vec<(usize, &'a str, Option<String>, Option<&'a str>)>,
    /// The message (CRLF line ends, not dot-stuffed).
    pub message: &'a [u8],
    /// Needs SMTPUTF8.
    pub smtputf8: bool,
    /// Has 8-bit content (BODY=8BITMIME).
    pub eightbit: bool,
    /// RFC 3461 RET.
    pub ret: Option<&'static str>,
    /// RFC 3461 ENVID.
    pub envid: Option<&'a str>,
    /// RFC 8689 REQUIRETLS: passed on; the connection must be TLS to a
    /// server that offers it (the dispatcher also checks the certificate).
    pub require_tls: bool,
}

/// The result of a transaction.
#[derive(Debug, Clone, Default)]
pub struct TxResult {
    /// One outcome per recipient.
    pub outcomes: Vec<(usize, Outcome)>,
    /// The server pushed back (421, 4.7.x).
    pub throttled: bool,
    /// The connection can carry another transaction.
    pub reusable: bool,
}

/// An open SMTP client session.
pub struct Client {
    stream: Stream,
    buf: Vec<u8>,
    pos: usize,
    /// What the server offers.
    pub caps: Caps,
    /// TLS protocol and cipher when encrypted.
    pub tls: Option<String>,
    /// The address connected to.
    pub peer: SocketAddr,
    /// The host name connected to.
    pub host: String,
    timeouts: Timeouts,
}

fn reply_of(r: smtp_proto::Response<String>) -> Reply {
    let esc = (r.esc != [0, 0, 0]).then_some((r.esc[0], r.esc[1], r.esc[2] as u16));
    Reply {
        code: r.code,
        esc,
        lines: r.message.split('\n').map(str::to_string).collect(),
    }
}

/// Connects to `addr`, from `source` if given.
pub async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<TcpStream, ClientError> {
    let sock = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| ClientError::Connect(format!("socket: {e}")))?;
    if let Some(ip) = source {
        sock.bind(SocketAddr::new(ip, 0))
            .map_err(|e| ClientError::Connect(format!("cannot bind source address {ip}: {e}")))?;
    }
    match tokio::time::timeout(timeout, sock.connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(ClientError::Connect(format!("connect to {addr}: {e}"))),
        Err(_) => Err(ClientError::Connect(format!(
            "connect to {addr}: timed out"
        ))),
    }
}

impl Client {
    /// Starts a session on a connected socket: reads the greeting and says EHLO (HELO if EHLO is refused).
    pub async fn start(
        tcp: TcpStream,
        host: &str,
        helo: &str,
        timeouts: Timeouts,
    ) -> Result<Client, ClientError> {
        let peer = tcp
            .peer_addr()
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let mut c = Client {
            stream: Stream::Plain(tcp),
            buf: Vec::with_capacity(4096),
            pos: 0,
            caps: Caps::default(),
            tls: None,
            peer,
            host: host.to_string(),
            timeouts,
        };
        let greeting = c.read_reply(timeouts.greeting).await?;
        if greeting.code != 220 {
            return Err(ClientError::Rejected(greeting));
        }
        c.ehlo(helo).await?;
        Ok(c)
    }

    async fn ehlo(&mut self, helo: &str) -> Result<(), ClientError> {
        let r = self
            .command(&format!("EHLO {helo}\r\n"), self.timeouts.greeting)
            .await?;
        if r.code == 250 {
            self.caps = Caps::parse(&r);
            return Ok(());
        }
        if r.code == 421 {
            return Err(ClientError::Rejected(r));
        }
        let r = self
            .command(&format!("HELO {helo}\r\n"), self.timeouts.greeting)
            .await?;
        if r.code != 250 {
            return Err(ClientError::Rejected(r));
        }
        self.caps = Caps::default();
        Ok(())
    }

    /// Upgrades with STARTTLS and says EHLO again (RFC 3207 §4.2).
    pub async fn starttls(
        mut self,
        config: Arc<ClientConfig>,
        name: &str,
        helo: &str,
    ) -> Result<Client, ClientError> {
        let r = self.command("STARTTLS\r\n", self.timeouts.greeting).await?;
        if r.code != 220 {
            return Err(ClientError::Tls(format!("STARTTLS refused: {r}")));
        }
        let Stream::Plain(tcp) = self.stream else {
            return Err(ClientError::Protocol("TLS already active".into()));
        };
        let server_name = ServerName::try_from(name.to_string())
            .or_else(|_| ServerName::try_from(self.peer.ip().to_string()))
            .map_err(|e| ClientError::Tls(format!("bad server name {name}: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls =
            match tokio::time::timeout(self.timeouts.greeting, connector.connect(server_name, tcp))
                .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    return Err(ClientError::Tls(format!("TLS handshake with {name}: {e}")));
                }
                Err(_) => {
                    return Err(ClientError::Tls(format!(
                        "TLS handshake with {name} timed out"
                    )));
                }
            };
        let conn = tls.get_ref().1;
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            v => format!("{v:?}"),
        };
        let suite = conn
            .negotiated_cipher_suite()
            .map(|s| format!(" {:?}", s.suite()))
            .unwrap_or_default();
        self.tls = Some(format!("{version}{suite}"));
        self.stream = Stream::Tls(Box::new(tls));
        self.buf.clear();
        self.pos = 0;
        self.ehlo(helo).await?;
        Ok(self)
    }

    /// AUTH PLAIN (only over TLS; the caller checks policy).
    pub async fn auth_plain(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        let r = self
            .command(&format!("AUTH PLAIN {token}\r\n"), self.timeouts.command)
            .await?;
        if r.code == 235 {
            Ok(())
        } else {
            Err(ClientError::Rejected(r))
        }
    }

    /// Reads one reply, bounded in size and time.
    pub async fn read_reply(&mut self, timeout: Duration) -> Result<Reply, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut rx = ResponseReceiver::default();
        let mut seen = 0usize;
        loop {
            if self.pos < self.buf.len() {
                let mut it = self.buf[self.pos..].iter();
                let before = it.len();
                let res = rx.parse(&mut it);
                let used = before - it.len();
                self.pos += used;
                seen += used;
                match res {
                    Ok(r) => return Ok(reply_of(r)),
                    Err(smtp_proto::Error::NeedsMoreData { .. }) => {}
                    Err(e) => {
                        return Err(ClientError::Protocol(format!(
                            "unparsable reply from {}: {e:?}",
                            self.host
                        )));
                    }
                }
                if seen > MAX_REPLY {
                    return Err(ClientError::Protocol(format!(
                        "reply from {} longer than {MAX_REPLY} bytes",
                        self.host
                    )));
                }
            }
            if self.pos == self.buf.len() {
                self.buf.clear();
                self.pos = 0;
            }
            let mut chunk = [0u8; 8192];
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) => {
                    return Err(ClientError::Lost(format!(
                        "{} closed the connection",
                        self.host
                    )));
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    return Err(ClientError::Lost(format!(
                        "reading from {}: {e}",
                        self.host
                    )));
                }
                Err(_) => {
                    return Err(ClientError::Lost(format!(
                        "timeout waiting for {}",
                        self.host
                    )));
                }
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn write(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), ClientError> {
        match tokio::time::timeout(timeout, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ClientError::Lost(format!("writing to {}: {e}", self.host))),
            Err(_) => Err(ClientError::Lost(format!(
                "timeout writing to {}",
                self.host
            ))),
        }
    }

    async fn command(&mut self, line: &str, timeout: Duration) -> Result<Reply, ClientError> {
        self.write(line.as_bytes(), timeout).await?;
        self.read_reply(timeout).await
    }

    /// Sends `QUIT` and closes, ignoring errors.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            if self
                .write(b"QUIT\r\n", Duration::from_secs(5))
                .await
                .is_ok()
            {
                let _ = self.read_reply(Duration::from_secs(5)).await;
            }
            let _ = self.stream.shutdown().await;
        })
        .await;
    }

    /// Sends one transaction and reports every recipient's outcome.
    pub async fn send(&mut self, tx: &Transaction<'_>) -> TxResult {
        let all = |o: Outcome| -> Vec<(usize, Outcome)> {
            tx.rcpts.iter().map(|(i, ..)| (*i, o.clone())).collect()
        };
        // What this server cannot take, refused before MAIL (never
        // downgraded): each a permanent failure for every recipient.
        let refusal = if tx.require_tls && !(self.caps.requiretls && self.tls.is_some()) {
            Some(format!(
                "5.7.10 REQUIRETLS needed: {} does not offer REQUIRETLS over TLS",
                self.host
            ))
        } else if tx.smtputf8 && !self.caps.smtputf8 {
            Some(format!(
                "5.6.7 {} does not support SMTPUTF8, which this message needs",
                self.host
            ))
        } else if tx.eightbit && !self.caps.eightbit {
            Some(format!(
                "5.6.3 {} does not support 8BITMIME and the message has 8-bit content",
                self.host
            ))
        } else if self.caps.size > 0 && tx.message.len() as u64 > self.caps.size {
            Some(format!(
                "5.3.4 Message too big for {} (limit {} bytes)",
                self.host, self.caps.size
            ))
        } else {
            None
        };
        if let Some(reply) = refusal {
            return TxResult {
                outcomes: all(Outcome::Failed { reply }),
                throttled: false,
                reusable: true,
            };
        }
        match self.transaction(tx).await {
            Ok(r) => r,
            Err(e) => TxResult {
                outcomes: all(Outcome::Deferred {
                    reply: e.to_string(),
                }),
                throttled: false,
                reusable: false,
            },
        }
    }

    fn mail_line(&self, tx: &Transaction<'_>) -> String {
        let mut line = format!("MAIL FROM:<{}>", tx.from);
        if self.caps.size_ext {
            line.push_str(&format!(" SIZE={}", tx.message.len()));
        }
        if tx.eightbit {
            line.push_str(" BODY=8BITMIME");
        }
        if tx.smtputf8 {
            line.push_str(" SMTPUTF8");
        }
        if tx.require_tls {
            line.push_str(" REQUIRETLS");
        }
        if self.caps.dsn {
            if let Some(r) = tx.ret {
                line.push_str(&format!(" RET={r}"));
            }
            if let Some(e) = tx.envid {
                line.push_str(&format!(" ENVID={}", xtext(e)));
            }
        }
        line.push_str("\r\n");
        line
    }

    fn rcpt_line(&self, addr: &str, notify: &Option<String>, orcpt: Option<&str>) -> String {
        let mut line = format!("RCPT TO:<{addr}>");
        if self.caps.dsn {
            if let Some(n) = notify {
                line.push_str(&format!(" NOTIFY={n}"));
            }
            if let Some(o) = orcpt {
                let (kind, value) = o.split_once(';').unwrap_or(("rfc822", o));
                line.push_str(&format!(" ORCPT={kind};{}", xtext(value)));
            }
        }
        line.push_str("\r\n");
        line
    }

    async fn transaction(&mut self, tx: &Transaction<'_>) -> Result<TxResult, ClientError> {
        let cmd = self.timeouts.command;
        let bdat = self.caps.chunking;
        let mut result = TxResult {
            outcomes: Vec::new(),
            throttled: false,
            reusable: true,
        };
        let mail = self.mail_line(tx);
        let rcpts: Vec<String> = tx
            .rcpts
            .iter()
            .map(|(_, a, n, o)| self.rcpt_line(a, n, *o))
            .collect();
        let pipelined_data = self.caps.pipelining && !bdat;
        if self.caps.pipelining {
            let mut batch = mail.clone();
            for r in &rcpts {
                batch.push_str(r);
            }
            if pipelined_data {
                batch.push_str("DATA\r\n");
            }
            self.write(batch.as_bytes(), cmd).await?;
        } else {
            self.write(mail.as_bytes(), cmd).await?;
        }
        let mail_reply = self.read_reply(cmd).await?;
        if mail_reply.code / 100 != 2 {
            let outcome = outcome_for(&mail_reply);
            note_pushback(&mail_reply, &mut result);
            result.outcomes = tx
                .rcpts
                .iter()
                .map(|(i, ..)| (*i, outcome.clone()))
                .collect();
            if self.caps.pipelining {
                // drain the replies to what was pipelined after MAIL
                for _ in 0..rcpts.len() + usize::from(pipelined_data) {
                    if self.read_reply(cmd).await.is_err() {
                        result.reusable = false;
                        return Ok(result);
                    }
                }
            }
            if result.reusable && self.rset().await.is_err() {
                result.reusable = false;
            }
            return Ok(result);
        }
        let mut accepted = Vec::new();
        for (n, (idx, ..)) in tx.rcpts.iter().enumerate() {
            if !self.caps.pipelining {
                self.write(rcpts[n].as_bytes(), cmd).await?;
            }
            let r = self.read_reply(cmd).await?;
            if r.code / 100 == 2 {
                accepted.push(*idx);
            } else {
                note_pushback(&r, &mut result);
                result.outcomes.push((*idx, outcome_for(&r)));
                if r.code == 421 {
                    return Ok(result_with_rest(
                        result,
                        tx,
                        Outcome::Deferred {
                            reply: r.to_string(),
                        },
                    ));
                }
            }
        }
        if accepted.is_empty() {
            if pipelined_data {
                let _ = self.read_reply(cmd).await?;
            }
            self.rset().await?;
            return Ok(result);
        }
        let final_reply = if bdat {
            let mut chunk = format!("BDAT {} LAST\r\n", tx.message.len()).into_bytes();
            chunk.extend_from_slice(tx.message);
            self.write(&chunk, self.timeouts.data).await?;
            self.read_reply(self.timeouts.data).await?
        } else {
            if !pipelined_data {
                self.write(b"DATA\r\n", cmd).await?;
            }
            let r = self.read_reply(cmd).await?;
            if r.code != 354 {
                note_pushback(&r, &mut result);
                let o = outcome_for(&r);
                result
                    .outcomes
                    .extend(accepted.iter().map(|i| (*i, o.clone())));
                self.rset().await?;
                return Ok(result);
            }
            let body = dot_stuff(tx.message);
            self.write(&body, self.timeouts.data).await?;
            self.read_reply(self.timeouts.data).await?
        };
        note_pushback(&final_reply, &mut result);
        let o = if final_reply.code / 100 == 2 {
            Outcome::Delivered {
                reply: final_reply.to_string(),
                dsn_passed: self.caps.dsn,
            }
        } else {
            outcome_for(&final_reply)
        };
        result
            .outcomes
            .extend(accepted.iter().map(|i| (*i, o.clone())));
        if final_reply.code == 421 {
            result.reusable = false;
        }
        Ok(result)
    }

    async fn rset(&mut self) -> Result<(), ClientError> {
        let r = self.command("RSET\r\n", self.timeouts.command).await?;
        if r.code / 100 == 2 {
            Ok(())
        } else {
            Err(ClientError::Rejected(r))
        }
    }
}

fn result_with_rest(mut result: TxResult, tx: &Transaction<'_>, o: Outcome) -> TxResult {
    for (i, ..) in &tx.rcpts {
        if !result.outcomes.iter().any(|(j, _)| j == i) {
            result.outcomes.push((*i, o.clone()));
        }
    }
    result.reusable = false;
    result.throttled = true;
    result
}

/// Notes replies that mean "slow down": 421 and 4.7.x.
fn note_pushback(r: &Reply, result: &mut TxResult) {
    if r.code == 421 {
        result.throttled = true;
        result.reusable = false;
    } else if r.code / 100 == 4 && matches!(r.esc, Some((4, 7, _))) {
        result.throttled = true;
    }
}

/// The outcome a non-2xx reply means for a recipient.
pub fn outcome_for(r: &Reply) -> Outcome {
    if r.code / 100 == 5 {
        Outcome::Failed {
            reply: r.to_string(),
        }
    } else {
        Outcome::Deferred {
            reply: r.to_string(),
        }
    }
}

/// RFC 3461 §4 xtext: `+` followed by two hex digits for anything outside
/// `!`..`~` and for `+` and `=`.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// Dot-stuffs a message for DATA (RFC 5321 §4.5.2) and appends the end of
/// data. A line end is always CRLF on the wire: a stray bare CR or LF (which
/// ingest never stores) is sent as CRLF rather than relayed.
pub fn dot_stuff(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 64 + 8);
    let mut line_start = true;
    let mut i = 0;
    while i < msg.len() {
        let b = msg[i];
        if line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' if msg.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                line_start = true;
                continue;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                line_start = true;
            }
            _ => {
                out.push(b);
                line_start = false;
            }
        }
        i += 1;
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing() {
        assert_eq!(
            dot_stuff(b"a\r\n.b\r\n..c\r\n"),
            b"a\r\n..b\r\n...c\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(dot_stuff(b"no end"), b"no end\r\n.\r\n");
        assert_eq!(dot_stuff(b"bare\nlf\r\n.x"), b"bare\r\nlf\r\n..x\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    #[test]
    fn xtext_encoding() {
        assert_eq!(xtext("bob@example.net"), "bob@example.net");
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }

    #[test]
    fn caps() {
        let r = Reply {
            code: 250,
            esc: None,
            lines: vec![
                "mx.test greets you".into(),
                "PIPELINING".into(),
                "SIZE 1000".into(),
                "8BITMIME".into(),
                "dsn".into(),
                "AUTH PLAIN login".into(),
                "STARTTLS".into(),
            ],
        };
        let c = Caps::parse(&r);
        assert_eq!(c.hostname, "mx.test");
        assert!(c.pipelining && c.eightbit && c.dsn && c.starttls && !c.chunking && !c.smtputf8);
        assert!(!c.requiretls);
        let mut r = r;
        r.lines.push("requiretls".into());
        assert!(Caps::parse(&r).requiretls);
        assert_eq!(c.size, 1000);
        assert_eq!(c.auth, vec!["PLAIN", "LOGIN"]);
    }
}
