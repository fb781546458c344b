//! The SMTP client side of a delivery (RFC 5321, RFC 3207 STARTTLS, RFC
//! 4954 AUTH PLAIN): connecting, the greeting and EHLO (capabilities read
//! with smtp-proto's EHLO parser), TLS, and bounded, timed reads of each
//! reply. Transactions are in [`transaction`]. Every failure is a
//! [`ClientError`] that says what kind of trouble it was; the dispatcher
//! turns it into a typed [`Outcome`] with the stage it happened at.

mod transaction;

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use laneway_common::Reply;
use laneway_common::delivery::{NextHop, Outcome, Stage, Status};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use smtp_proto::response::parser::ResponseReceiver;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

pub use transaction::{Transaction, TxResult, dot_stuff, xtext};

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

/// Why TLS to a host failed, in the terms of RFC 8460 §4.3 (TLS reports
/// count failures by these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The host does not offer STARTTLS, or refused it.
    StarttlsNotSupported,
    /// The certificate is not for the host's name.
    CertificateHostMismatch,
    /// The certificate has expired.
    CertificateExpired,
    /// The certificate does not chain to a trusted root.
    CertificateNotTrusted,
    /// The host's TLSA records could not be looked up (DANE).
    DnssecInvalid,
    /// Anything else: a failed handshake, a DANE mismatch, an MTA-STS
    /// policy that names none of the MX hosts.
    ValidationFailure,
    /// The host does not offer what this message needs after TLS
    /// (REQUIRETLS), or credentials would go out in the clear.
    Unavailable,
}

impl TlsFailure {
    /// The RFC 8460 `result-type`.
    pub fn result_type(self) -> &'static str {
        match self {
            TlsFailure::StarttlsNotSupported => "starttls-not-supported",
            TlsFailure::CertificateHostMismatch => "certificate-host-mismatch",
            TlsFailure::CertificateExpired => "certificate-expired",
            TlsFailure::CertificateNotTrusted => "certificate-not-trusted",
            TlsFailure::DnssecInvalid => "dnssec-invalid",
            TlsFailure::ValidationFailure | TlsFailure::Unavailable => "validation-failure",
        }
    }

    /// The status a delivery deferred for it is reported with: 4.7.4
    /// (security features not supported) or 4.7.5 (cryptographic failure).
    pub fn status(self) -> Status {
        match self {
            TlsFailure::StarttlsNotSupported | TlsFailure::Unavailable => Status::new(4, 7, 4),
            _ => Status::new(4, 7, 5),
        }
    }

    /// What a failed handshake says, from rustls's own error.
    fn of_handshake(e: &std::io::Error) -> TlsFailure {
        use rustls::CertificateError as C;
        match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidCertificate(c)) => match c {
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    TlsFailure::CertificateHostMismatch
                }
                C::Expired | C::ExpiredContext { .. } => TlsFailure::CertificateExpired,
                C::UnknownIssuer => TlsFailure::CertificateNotTrusted,
                _ => TlsFailure::ValidationFailure,
            },
            _ => TlsFailure::ValidationFailure,
        }
    }
}

/// What went wrong talking to a server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Could not connect (4.4.1).
    #[error("4.4.1 {0}")]
    Connect(String),
    /// The connection broke or timed out during a session (4.4.2).
    #[error("4.4.2 {0}")]
    Lost(String),
    /// The server refused a session step (greeting, EHLO, STARTTLS,
    /// AUTH) with this reply.
    #[error("{1}")]
    Rejected(Stage, Reply),
    /// TLS could not be set up or fails the policy in force (4.7.5;
    /// 4.7.4 when the host lacks a required feature).
    #[error("{status} {1}", status = .0.status())]
    Tls(TlsFailure, String),
    /// The server speaks something that is not SMTP (4.5.0).
    #[error("4.5.0 {0}")]
    Protocol(String),
}

impl ClientError {
    /// The transient outcome this error means for a recipient, when it
    /// happened at `stage` (the stage of a refusal or a TLS failure is
    /// its own).
    pub fn outcome(&self, stage: Stage, hop: Option<NextHop>) -> Outcome {
        let o = match self {
            ClientError::Connect(d) => Outcome::transient(Stage::Connect, Status::new(4, 4, 1), d),
            ClientError::Lost(d) => Outcome::transient(stage, Status::new(4, 4, 2), d),
            ClientError::Protocol(d) => Outcome::transient(stage, Status::new(4, 5, 0), d),
            ClientError::Tls(kind, d) => Outcome::transient(Stage::Tls, kind.status(), d),
            // a refusal before any transaction says nothing final about
            // a recipient: even a 5xx greeting is tried again later
            ClientError::Rejected(stage, r) => {
                let mut o = Outcome::remote(*stage, r.clone(), None);
                if !o.is_transient() {
                    o.disposition = laneway_common::Disposition::Transient;
                }
                o
            }
        };
        o.at(hop)
    }

    /// The TLS failure, when this is one.
    pub fn tls_failure(&self) -> Option<TlsFailure> {
        match self {
            ClientError::Tls(k, _) => Some(*k),
            _ => None,
        }
    }
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
    /// RFC 4954 AUTH PLAIN offered.
    pub auth_plain: bool,
}

impl Caps {
    /// Reads the capabilities of an EHLO reply with smtp-proto's parser
    /// (the reply is put back on the wire form it came in). An EHLO reply
    /// it cannot read offers nothing beyond plain RFC 5321.
    pub fn parse(reply: &Reply) -> Caps {
        use smtp_proto::*;
        let wire = Reply {
            esc: None,
            ..reply.clone()
        }
        .to_wire();
        let Ok(r) = EhloResponse::<String>::parse(&mut wire.as_bytes().iter()) else {
            return Caps {
                hostname: reply
                    .lines
                    .first()
                    .and_then(|l| l.split_whitespace().next())
                    .unwrap_or("")
                    .to_string(),
                ..Caps::default()
            };
        };
        let has = |ext: u32| r.capabilities & ext != 0;
        Caps {
            hostname: r.hostname,
            pipelining: has(EXT_PIPELINING),
            size_ext: has(EXT_SIZE),
            size: r.size as u64,
            eightbit: has(EXT_8BIT_MIME),
            smtputf8: has(EXT_SMTP_UTF8),
            dsn: has(EXT_DSN),
            chunking: has(EXT_CHUNKING),
            starttls: has(EXT_START_TLS),
            requiretls: has(EXT_REQUIRE_TLS),
            auth_plain: has(EXT_AUTH) && r.auth_mechanisms & AUTH_PLAIN != 0,
        }
    }
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
            return Err(ClientError::Rejected(Stage::Greeting, greeting));
        }
        c.ehlo(helo).await?;
        Ok(c)
    }

    /// The next hop this session reached.
    pub fn hop(&self) -> NextHop {
        NextHop {
            host: self.host.clone(),
            addr: self.peer,
        }
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
            return Err(ClientError::Rejected(Stage::Greeting, r));
        }
        let r = self
            .command(&format!("HELO {helo}\r\n"), self.timeouts.greeting)
            .await?;
        if r.code != 250 {
            return Err(ClientError::Rejected(Stage::Greeting, r));
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
            return Err(ClientError::Tls(
                TlsFailure::StarttlsNotSupported,
                format!("STARTTLS refused: {r}"),
            ));
        }
        let Stream::Plain(tcp) = self.stream else {
            return Err(ClientError::Protocol("TLS already active".into()));
        };
        let server_name = ServerName::try_from(name.to_string())
            .or_else(|_| ServerName::try_from(self.peer.ip().to_string()))
            .map_err(|e| {
                ClientError::Tls(
                    TlsFailure::ValidationFailure,
                    format!("bad server name {name}: {e}"),
                )
            })?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls =
            match tokio::time::timeout(self.timeouts.greeting, connector.connect(server_name, tcp))
                .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    return Err(ClientError::Tls(
                        TlsFailure::of_handshake(&e),
                        format!("TLS handshake with {name}: {e}"),
                    ));
                }
                Err(_) => {
                    return Err(ClientError::Tls(
                        TlsFailure::ValidationFailure,
                        format!("TLS handshake with {name} timed out"),
                    ));
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
            Err(ClientError::Rejected(Stage::Greeting, r))
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(c.auth_plain);
        let mut r = r;
        r.lines.push("requiretls".into());
        assert!(Caps::parse(&r).requiretls);
        assert_eq!(c.size, 1000);
    }

    #[test]
    fn errors_become_transient_outcomes_at_their_stage() {
        let hop = NextHop {
            host: "mx.test".into(),
            addr: "127.0.0.1:25".parse().unwrap(),
        };
        let o = ClientError::Lost("gone".into()).outcome(Stage::Data, Some(hop.clone()));
        assert!(o.is_transient());
        assert_eq!(
            (o.stage, o.status.to_string()),
            (Stage::Data, "4.4.2".into())
        );
        assert_eq!(o.hop.as_ref(), Some(&hop));
        let o = ClientError::Tls(TlsFailure::StarttlsNotSupported, "x".into())
            .outcome(Stage::Mail, None);
        assert_eq!(
            (o.stage, o.status.to_string()),
            (Stage::Tls, "4.7.4".into())
        );
        let o = ClientError::Rejected(Stage::Greeting, Reply::new(554, (5, 3, 2), "no"))
            .outcome(Stage::Mail, None);
        assert!(o.is_transient() && o.remote.is_some());
        assert_eq!(o.stage, Stage::Greeting);
    }
}
