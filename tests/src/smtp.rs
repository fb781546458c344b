//! A small blocking SMTP client for transcripts: `c.cmd("RCPT TO:<a@b>", "250")`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::DEADLINE;
pub use laneway_bench::complete_reply;

/// Anything we can talk SMTP over.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// An SMTP client connection.
pub struct Client {
    io: Box<dyn Stream>,
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects and reads the greeting, which must start with `expect`.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::connect_from(addr, None)
    }

    /// Connects from a given local address (e.g. 127.0.0.2, an untrusted client).
    pub fn connect_from(addr: SocketAddr, local: Option<&str>) -> Client {
        let tcp = match local {
            None => TcpStream::connect_timeout(&addr, DEADLINE).expect("connect"),
            Some(ip) => {
                let sock = std::net::TcpListener::bind(format!("{ip}:0"))
                    .and_then(|l| l.local_addr())
                    .expect("pick local port");
                connect_bound(sock, addr)
            }
        };
        tcp.set_read_timeout(Some(DEADLINE)).unwrap();
        tcp.set_nodelay(true).unwrap();
        let io: Box<dyn Stream> = Box::new(tcp.try_clone().unwrap());
        Client {
            io,
            tcp,
            buf: Vec::new(),
        }
    }

    /// Reads the greeting and checks it.
    pub fn greeting(&mut self, expect: &str) -> String {
        let r = self.reply();
        assert!(r.starts_with(expect), "greeting {r:?}, wanted {expect:?}");
        r
    }

    /// Connects, reads a 220 greeting and says EHLO.
    pub fn hello(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr);
        c.greeting("220");
        c.cmd("EHLO client.test", "250");
        c
    }

    /// Sets how long reads wait.
    pub fn set_timeout(&self, t: Duration) {
        self.tcp.set_read_timeout(Some(t)).unwrap();
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).expect("send");
    }

    /// Sends raw bytes, or returns the error (the server hung up).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes)?;
        self.io.flush()
    }

    /// Reads one whole reply (all lines of a multi-line reply).
    pub fn reply(&mut self) -> String {
        self.try_reply().unwrap_or_else(|e| {
            panic!(
                "no reply: {e}; had {:?}",
                String::from_utf8_lossy(&self.buf)
            )
        })
    }

    /// Reads one whole reply, or the I/O error (timeout, EOF).
    pub fn try_reply(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(end) = complete_reply(&self.buf) {
                let r: Vec<u8> = self.buf.drain(..end).collect();
                return Ok(String::from_utf8_lossy(&r).into_owned());
            }
            let mut chunk = [0u8; 8192];
            let n = self.io.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command line and checks the reply starts with `expect`.
    pub fn cmd(&mut self, line: &str, expect: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        let r = self.reply();
        assert!(
            r.starts_with(expect),
            "{line:?} -> {r:?}, wanted {expect:?}"
        );
        r
    }

    /// Sends a whole message: MAIL, RCPT(s), DATA, content (dot-stuffed
    /// here), and returns the final reply.
    pub fn send_mail(&mut self, from: &str, to: &[&str], content: &str) -> String {
        self.cmd(&format!("MAIL FROM:<{from}>"), "250");
        for t in to {
            self.cmd(&format!("RCPT TO:<{t}>"), "250");
        }
        self.cmd("DATA", "354");
        let mut data = String::new();
        for line in content.split_inclusive("\r\n") {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
        }
        if !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.send(data.as_bytes());
        self.reply()
    }

    /// Upgrades with STARTTLS (the 220 must already have been read) using `config`.
    pub fn start_tls(mut self, config: Arc<rustls::ClientConfig>) -> Client {
        assert!(
            self.buf.is_empty(),
            "bytes buffered before the TLS handshake: {:?}",
            self.buf
        );
        let name = rustls_pki_types::ServerName::try_from("localhost")
            .unwrap()
            .to_owned();
        let conn = rustls::ClientConnection::new(config, name).expect("tls client");
        let tcp = self.tcp.try_clone().unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        // complete the handshake now so errors show up here
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
        }
        self.io = Box::new(tls);
        self
    }

    /// Whether the server closed the connection (EOF within the read timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.io.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

fn connect_bound(local: SocketAddr, remote: SocketAddr) -> TcpStream {
    // std cannot bind before connect; use a socket from rustix.
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
    // with port 0 the kernel picks the port at bind time, against every
    // socket of the address: under the churn of parallel tests the range
    // can look full unless ports left in TIME_WAIT may be taken again
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true).expect("SO_REUSEADDR");
    bind(&fd, &local).expect("bind local address");
    connect(&fd, &remote).expect("connect");
    TcpStream::from(fd)
}

/// The queue id in a `250 2.0.0 Ok: queued as <id>` reply.
pub fn queued_id(reply: &str) -> String {
    let id = reply
        .trim_end()
        .rsplit(' ')
        .next()
        .expect("id in reply")
        .to_string();
    assert!(
        reply.starts_with("250") && id.len() == 16,
        "not a queued reply: {reply:?}"
    );
    id
}
