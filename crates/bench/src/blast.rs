//! The load generator: `n` messages of `size` bytes over `sessions`
//! concurrent SMTP sessions, `per_session` messages per connection, each
//! to its own recipient (like Postfix's `smtp-source -N`), with the lane
//! set by an `X-Priority-Queue` header (honoured by a trusted listener) and
//! echoed in `X-Bench-Lane` for the sink.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to send.
#[derive(Debug, Clone)]
pub struct Blast {
    /// Where.
    pub addr: SocketAddr,
    /// How many messages in all.
    pub messages: usize,
    /// Size of each message in bytes (approximately, headers included).
    pub size: usize,
    /// Concurrent sessions.
    pub sessions: usize,
    /// Messages per connection before it is closed (0: unlimited).
    pub per_session: usize,
    /// Lane header to add, if any.
    pub lane: Option<u8>,
    /// Recipient domain.
    pub domain: String,
    /// Pipeline MAIL/RCPT/DATA (when the server offers PIPELINING).
    pub pipelining: bool,
    /// Prefix of the `X-Bench-Id` values.
    pub id_prefix: String,
}

impl Default for Blast {
    fn default() -> Self {
        Blast {
            addr: "127.0.0.1:2525".parse().expect("addr"),
            messages: 1000,
            size: 4096,
            sessions: 20,
            per_session: 0,
            lane: None,
            domain: "bench.test".into(),
            pipelining: true,
            id_prefix: "b".into(),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Messages that got a 250 at the end of data.
    pub accepted: usize,
    /// Messages refused or lost to errors.
    pub failed: usize,
    /// First connection to last reply.
    pub elapsed: Duration,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

impl Report {
    /// An error unless all `n` messages were accepted.
    pub fn all_accepted(&self, n: usize) -> Result<(), String> {
        if self.accepted < n {
            return Err(format!(
                "only {} of {n} accepted: {:?}",
                self.accepted, self.first_error
            ));
        }
        Ok(())
    }
}

impl Report {
    /// Accepted messages per second.
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One message of about `size` bytes.
pub fn message(id: &str, lane: Option<u8>, rcpt: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: bench@sender.test\r\nTo: {rcpt}\r\nSubject: benchmark {id}\r\nMessage-ID: <{id}@bench.test>\r\nX-Bench-Id: {id}\r\n"
    );
    if let Some(l) = lane {
        m.push_str(&format!("X-Priority-Queue: {l}\r\nX-Bench-Lane: {l}\r\n"));
    }
    m.push_str("\r\n");
    let line = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl\r\n";
    while m.len() + line.len() <= size {
        m.push_str(line);
    }
    m.into_bytes()
}

struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn reply(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = crate::complete_reply(&self.buf) {
                let r: Vec<u8> = self.buf.drain(..end).collect();
                return Ok(String::from_utf8_lossy(&r).into_owned());
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(120), self.s.read(&mut chunk))
                .await
                .map_err(|_| "timeout".to_string())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, b: &[u8]) -> Result<(), String> {
        self.s.write_all(b).await.map_err(|e| e.to_string())
    }

    async fn expect(&mut self, code: char) -> Result<String, String> {
        let r = self.reply().await?;
        if r.starts_with(code) {
            Ok(r)
        } else {
            Err(r.trim_end().to_string())
        }
    }
}

async fn open(addr: SocketAddr) -> Result<(Conn, bool), String> {
    let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let mut c = Conn { s, buf: Vec::new() };
    c.expect('2').await?;
    c.send(b"EHLO blast.bench.test\r\n").await?;
    let ehlo = c.expect('2').await?;
    Ok((c, ehlo.contains("PIPELINING")))
}

/// Sends one message over an open session; returns when the final reply came.
async fn one(c: &mut Conn, pipelining: bool, seq: usize, b: &Blast) -> Result<(), String> {
    let id = format!("{}{seq}", b.id_prefix);
    let rcpt = format!("r{seq}@{}", b.domain);
    let msg = message(&id, b.lane, &rcpt, b.size);
    let mail = "MAIL FROM:<bench@sender.test>\r\n".to_string();
    let rcpt_line = format!("RCPT TO:<{rcpt}>\r\n");
    if pipelining {
        c.send(format!("{mail}{rcpt_line}DATA\r\n").as_bytes())
            .await?;
        c.expect('2').await?;
        c.expect('2').await?;
        c.expect('3').await?;
    } else {
        c.send(mail.as_bytes()).await?;
        c.expect('2').await?;
        c.send(rcpt_line.as_bytes()).await?;
        c.expect('2').await?;
        c.send(b"DATA\r\n").await?;
        c.expect('3').await?;
    }
    let mut data = Vec::with_capacity(msg.len() + 8);
    data.extend_from_slice(&msg);
    data.extend_from_slice(b".\r\n");
    c.send(&data).await?;
    c.expect('2').await?;
    Ok(())
}

/// Runs a blast to the end.
pub async fn run(b: &Blast) -> Report {
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(AtomicUsize::new(0));
    let err = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..b.sessions.max(1) {
        let (next, ok, bad, err, b) = (
            next.clone(),
            ok.clone(),
            bad.clone(),
            err.clone(),
            b.clone(),
        );
        tasks.push(tokio::spawn(async move {
            'sessions: while next.load(Ordering::Relaxed) < b.messages {
                let (mut c, pipe) = match open(b.addr).await {
                    Ok(x) => x,
                    Err(e) => {
                        err.lock().expect("lock").get_or_insert(e);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let mut sent = 0;
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= b.messages {
                        let _ = c.send(b"QUIT\r\n").await;
                        break 'sessions;
                    }
                    match one(&mut c, pipe && b.pipelining, seq, &b).await {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            bad.fetch_add(1, Ordering::Relaxed);
                            err.lock().expect("lock").get_or_insert(e);
                            continue 'sessions;
                        }
                    }
                    sent += 1;
                    if b.per_session > 0 && sent >= b.per_session {
                        let _ = c.send(b"QUIT\r\n").await;
                        continue 'sessions;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Report {
        accepted: ok.load(Ordering::Relaxed),
        failed: bad.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        first_error: err.lock().expect("lock").clone(),
    }
}
