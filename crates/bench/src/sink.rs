//! A counting SMTP sink: the remote MX of tests and benchmarks. It records
//! every message with its arrival time (and the lane, from an
//! `X-Bench-Lane` header, since Laneway removes `X-Priority-Queue`), can
//! take a fixed time per message, a global message rate, STARTTLS, and
//! scripted replies for RCPT and end of data.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smtp_proto::request::receiver::{BdatReceiver, DataReceiver, RequestReceiver};
use smtp_proto::{Error, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Decides a reply: `None` means the default (250).
pub type ReplyFn = Arc<dyn Fn(&Event<'_>) -> Option<String> + Send + Sync>;

/// What a scripted reply is about.
#[derive(Debug)]
pub enum Event<'a> {
    /// A `MAIL FROM` with this sender.
    Mail(&'a str),
    /// A `RCPT TO` with this recipient.
    Rcpt(&'a str),
    /// The end of data of this message (n-th message seen by the sink, from 0).
    Data(&'a Message, usize),
}

/// Sink behaviour.
#[derive(Clone, Default)]
pub struct SinkConfig {
    /// Time taken per message before the final reply.
    pub delay: Duration,
    /// Messages per second for the whole sink (0: unlimited): end-of-data
    /// replies are spaced globally, as a single slow receiver would.
    pub rate: u32,
    /// Scripted replies.
    pub reply: Option<ReplyFn>,
    /// Offer STARTTLS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Do not offer PIPELINING, CHUNKING, DSN, 8BITMIME, SMTPUTF8.
    pub minimal: bool,
    /// Offer DSN (RFC 3461).
    pub dsn: bool,
    /// Offer REQUIRETLS (RFC 8689) once TLS is up.
    pub requiretls: bool,
    /// Where to listen (default 127.0.0.1:0).
    pub bind: Option<SocketAddr>,
}

/// A message the sink received.
#[derive(Debug, Clone)]
pub struct Message {
    /// When the final reply was sent.
    pub at: Instant,
    /// When MAIL FROM arrived (the start of the transaction).
    pub mail_at: Instant,
    /// MAIL FROM address.
    pub from: String,
    /// The MAIL FROM line as sent.
    pub mail_line: String,
    /// RCPT TO addresses accepted.
    pub rcpts: Vec<String>,
    /// RCPT TO lines as sent.
    pub rcpt_lines: Vec<String>,
    /// The content (dot-unstuffed).
    pub data: Vec<u8>,
    /// Whether the session was encrypted.
    pub tls: bool,
    /// The client's address.
    pub peer: SocketAddr,
    /// The EHLO name the client gave.
    pub helo: String,
    /// The user name of AUTH PLAIN, if the client authenticated.
    pub auth: Option<String>,
    /// The `X-Bench-Lane` header, if any.
    pub lane: Option<u8>,
    /// The `X-Bench-Id` header, if any (correlates a send with its arrival).
    pub bench_id: Option<String>,
    /// The reply given.
    pub reply: String,
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Message>>,
    seen: AtomicUsize,
    connections: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
    notify: Notify,
    pace: tokio::sync::Mutex<Option<Instant>>,
}

/// A running sink.
#[derive(Clone)]
pub struct Sink {
    /// Its address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Sink {
    /// Starts a sink on the current tokio runtime.
    pub async fn start(cfg: SinkConfig) -> std::io::Result<Sink> {
        let listener = TcpListener::bind(
            cfg.bind
                .unwrap_or_else(|| "127.0.0.1:0".parse().expect("addr")),
        )
        .await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    continue;
                };
                s.connections.fetch_add(1, Ordering::Relaxed);
                let now_open = s.open.fetch_add(1, Ordering::SeqCst) + 1;
                s.max_open.fetch_max(now_open, Ordering::SeqCst);
                let (s, cfg) = (s.clone(), cfg.clone());
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    session(tcp, peer, s.clone(), cfg).await;
                    s.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(Sink { addr, shared })
    }

    /// Starts a sink on a runtime of its own thread (for blocking tests).
    pub fn spawn(cfg: SinkConfig) -> Sink {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("sink runtime");
            rt.block_on(async move {
                let sink = Sink::start(cfg).await.expect("sink bind");
                tx.send(sink).expect("sink handle");
                std::future::pending::<()>().await;
            });
        });
        rx.recv().expect("sink started")
    }

    /// Messages received so far.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.messages.lock().expect("sink lock").clone()
    }

    /// How many messages were received.
    pub fn count(&self) -> usize {
        self.shared.messages.lock().expect("sink lock").len()
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// How many connections are open now. A client that records each
    /// transaction before starting the next has at most one unrecorded
    /// transaction per open connection: what a crash may repeat.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The most connections that were open at once.
    pub fn max_open_connections(&self) -> usize {
        self.shared.max_open.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages arrived or `limit` passed; returns the count.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let c = self.count();
            if c >= n {
                return c;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                return self.count();
            }
        }
    }

    /// Blocking version of [`Sink::wait_for`].
    pub fn wait_blocking(&self, n: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.count();
            if c >= n || Instant::now() >= deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

enum Mode {
    Cmd(RequestReceiver),
    Data(DataReceiver),
    Bdat(BdatReceiver),
}

struct Tx {
    mail_at: Instant,
    from: String,
    mail_line: String,
    rcpts: Vec<String>,
    rcpt_lines: Vec<String>,
    data: Vec<u8>,
}

enum Next {
    Close,
    StartTls,
}

async fn session(mut tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>, cfg: SinkConfig) {
    if tcp.write_all(b"220 sink.test ESMTP\r\n").await.is_err() {
        return;
    }
    if let Next::StartTls = run(&mut tcp, false, peer, &shared, &cfg).await
        && let Some(tc) = cfg.tls.clone()
        && let Ok(mut t) = tokio_rustls::TlsAcceptor::from(tc).accept(tcp).await
    {
        run(&mut t, true, peer, &shared, &cfg).await;
    }
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    tls: bool,
    peer: SocketAddr,
    shared: &Shared,
    cfg: &SinkConfig,
) -> Next {
    let mut helo = String::new();
    let mut auth: Option<String> = None;
    let mut tx: Option<Tx> = None;
    let mut mode = Mode::Cmd(RequestReceiver::default());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match io.read(&mut buf).await {
            Ok(0) | Err(_) => return Next::Close,
            Ok(n) => n,
        };
        let mut out = Vec::new();
        let mut it = buf[..n].iter();
        loop {
            match &mut mode {
                Mode::Data(rx) => {
                    let Some(t) = tx.as_mut() else {
                        return Next::Close;
                    };
                    if rx.ingest(&mut it, &mut t.data) {
                        let t = tx.take().expect("tx");
                        out.extend(finish(t, tls, peer, &helo, &auth, shared, cfg).await);
                        mode = Mode::Cmd(RequestReceiver::default());
                    } else {
                        break;
                    }
                }
                Mode::Bdat(rx) => {
                    let mut scratch = Vec::new();
                    let sink = match tx.as_mut() {
                        Some(t) => &mut t.data,
                        None => &mut scratch,
                    };
                    if rx.ingest(&mut it, sink) {
                        if tx.is_none() {
                            out.extend_from_slice(b"503 5.5.1 need MAIL\r\n");
                        } else if rx.is_last {
                            let t = tx.take().expect("tx");
                            out.extend(finish(t, tls, peer, &helo, &auth, shared, cfg).await);
                        } else {
                            out.extend_from_slice(b"250 2.0.0 chunk ok\r\n");
                        }
                        mode = Mode::Cmd(RequestReceiver::default());
                    } else {
                        break;
                    }
                }
                Mode::Cmd(rx) => {
                    let line_start = it.as_slice();
                    let req = match rx.ingest(&mut it) {
                        Ok(r) => r.into_owned(),
                        Err(Error::NeedsMoreData { .. }) => break,
                        Err(_) => {
                            out.extend_from_slice(b"500 5.5.2 syntax error\r\n");
                            continue;
                        }
                    };
                    let consumed = line_start.len() - it.as_slice().len();
                    let line = String::from_utf8_lossy(&line_start[..consumed])
                        .trim_end()
                        .to_string();
                    match req {
                        Request::Ehlo { host }
                        | Request::Helo { host }
                        | Request::Lhlo { host } => {
                            helo = host;
                            tx = None;
                            let mut caps = vec!["250-sink.test".to_string()];
                            if !cfg.minimal {
                                caps.extend(
                                    [
                                        "250-PIPELINING",
                                        "250-8BITMIME",
                                        "250-SMTPUTF8",
                                        "250-CHUNKING",
                                        "250-SIZE 104857600",
                                    ]
                                    .map(String::from),
                                );
                            }
                            if cfg.dsn {
                                caps.push("250-DSN".into());
                            }
                            if cfg.tls.is_some() && !tls {
                                caps.push("250-STARTTLS".into());
                            }
                            if tls {
                                caps.push("250-AUTH PLAIN".into());
                            }
                            if tls && cfg.requiretls {
                                caps.push("250-REQUIRETLS".into());
                            }
                            caps.push("250 ENHANCEDSTATUSCODES".into());
                            for c in caps {
                                out.extend_from_slice(c.as_bytes());
                                out.extend_from_slice(b"\r\n");
                            }
                        }
                        Request::StartTls if cfg.tls.is_some() && !tls => {
                            out.extend_from_slice(b"220 2.0.0 go ahead\r\n");
                            let _ = io.write_all(&out).await;
                            return Next::StartTls;
                        }
                        Request::StartTls => out.extend_from_slice(b"502 5.5.1 no TLS\r\n"),
                        Request::Auth {
                            initial_response, ..
                        } if tls => {
                            let user = decode_plain_user(&initial_response);
                            if user.is_some() {
                                auth = user;
                                out.extend_from_slice(b"235 2.7.0 ok\r\n");
                            } else {
                                out.extend_from_slice(b"535 5.7.8 bad\r\n");
                            }
                        }
                        Request::Mail { from } => {
                            match scripted(cfg, &Event::Mail(&from.address)) {
                                Some(r) => push_reply(&mut out, &r),
                                None => {
                                    tx = Some(Tx {
                                        mail_at: Instant::now(),
                                        from: from.address,
                                        mail_line: line,
                                        rcpts: Vec::new(),
                                        rcpt_lines: Vec::new(),
                                        data: Vec::new(),
                                    });
                                    out.extend_from_slice(b"250 2.1.0 ok\r\n");
                                }
                            }
                        }
                        Request::Rcpt { to } => match tx.as_mut() {
                            None => out.extend_from_slice(b"503 5.5.1 need MAIL\r\n"),
                            Some(t) => match scripted(cfg, &Event::Rcpt(&to.address)) {
                                Some(r) => push_reply(&mut out, &r),
                                None => {
                                    t.rcpts.push(to.address);
                                    t.rcpt_lines.push(line);
                                    out.extend_from_slice(b"250 2.1.5 ok\r\n");
                                }
                            },
                        },
                        Request::Data => match &tx {
                            Some(t) if !t.rcpts.is_empty() => {
                                out.extend_from_slice(b"354 go ahead\r\n");
                                mode = Mode::Data(DataReceiver::new());
                            }
                            _ => out.extend_from_slice(b"554 5.5.1 no valid recipients\r\n"),
                        },
                        Request::Bdat {
                            chunk_size,
                            is_last,
                        } => {
                            mode = Mode::Bdat(BdatReceiver::new(chunk_size, is_last));
                        }
                        Request::Rset => {
                            tx = None;
                            out.extend_from_slice(b"250 2.0.0 ok\r\n");
                        }
                        Request::Quit => {
                            out.extend_from_slice(b"221 2.0.0 bye\r\n");
                            let _ = io.write_all(&out).await;
                            return Next::Close;
                        }
                        _ => out.extend_from_slice(b"250 2.0.0 ok\r\n"),
                    }
                }
            }
        }
        if !out.is_empty() && io.write_all(&out).await.is_err() {
            return Next::Close;
        }
    }
}

/// The user of an AUTH PLAIN initial response (any password is accepted).
fn decode_plain_user(b64: &str) -> Option<String> {
    let bytes = decode_b64(b64.trim())?;
    let mut parts = bytes.split(|&b| b == 0);
    let _authz = parts.next()?;
    let user = parts.next()?;
    parts.next()?;
    String::from_utf8(user.to_vec())
        .ok()
        .filter(|u| !u.is_empty())
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

fn scripted(cfg: &SinkConfig, e: &Event<'_>) -> Option<String> {
    cfg.reply.as_ref().and_then(|f| f(e))
}

fn push_reply(out: &mut Vec<u8>, r: &str) {
    out.extend_from_slice(r.trim_end().as_bytes());
    out.extend_from_slice(b"\r\n");
}

async fn finish(
    t: Tx,
    tls: bool,
    peer: SocketAddr,
    helo: &str,
    auth: &Option<String>,
    shared: &Shared,
    cfg: &SinkConfig,
) -> Vec<u8> {
    if !cfg.delay.is_zero() {
        tokio::time::sleep(cfg.delay).await;
    }
    if cfg.rate > 0 {
        let interval = Duration::from_secs_f64(1.0 / cfg.rate as f64);
        let mut pace = shared.pace.lock().await;
        let now = Instant::now();
        let slot = pace.map_or(now, |p| p.max(now));
        *pace = Some(slot + interval);
        drop(pace);
        tokio::time::sleep_until(slot.into()).await;
    }
    let lane = header(&t.data, "X-Bench-Lane").and_then(|v| v.trim().parse().ok());
    let bench_id = header(&t.data, "X-Bench-Id");
    let n = shared.seen.fetch_add(1, Ordering::Relaxed);
    let mut msg = Message {
        at: Instant::now(),
        mail_at: t.mail_at,
        from: t.from,
        mail_line: t.mail_line,
        rcpts: t.rcpts,
        rcpt_lines: t.rcpt_lines,
        data: t.data,
        tls,
        peer,
        helo: helo.to_string(),
        auth: auth.clone(),
        lane,
        bench_id,
        reply: String::new(),
    };
    let reply =
        scripted(cfg, &Event::Data(&msg, n)).unwrap_or_else(|| "250 2.0.0 queued".to_string());
    msg.reply = reply.clone();
    msg.at = Instant::now();
    if reply.starts_with('2') {
        shared.messages.lock().expect("sink lock").push(msg);
        shared.notify.notify_waiters();
    }
    let mut out = reply.trim_end().as_bytes().to_vec();
    out.extend_from_slice(b"\r\n");
    out
}

/// The value of a header field in a message (first occurrence).
pub fn header(data: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    for line in text.split("\r\n") {
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.trim().eq_ignore_ascii_case(name)
        {
            return Some(v.trim().to_string());
        }
    }
    None
}
