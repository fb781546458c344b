//! Attacks and faults against the real daemon: smuggling inside BDAT and
//! oversize bodies, mail loops, memory under abuse, slow and many clients,
//! AUTH edge replies, corrupt spool files, hostile MX hosts, null senders,
//! `kill -9` in a loop under delivery load, a full disk and SIGXFSZ. Every
//! case checks both the reply and that nothing acknowledged is lost or
//! nothing refused is stored. Helpers here, the cases by subject below.

mod crash;
mod input;
mod limits;
mod peers;
mod spool;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use laneway_tests::dns::TestDns;
use laneway_tests::smtp::Client;
use laneway_tests::{DEADLINE, Daemon};

pub(crate) const SMALL: &str = r#"
[[listener]]
name = "mx"
bind = "127.0.0.1:0"
max_message_size = "100KiB"
[relay]
trusted_networks = ["127.0.0.1/32"]
"#;

/// Resident memory of a process in KiB, from /proc.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Opens a transaction and returns the client after `354` or ready for BDAT.
pub(crate) fn transaction(d: &Daemon) -> Client {
    let mut c = Client::hello(d.addr("mx"));
    c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("250"));
    c
}

/// Checks that no further reply is pending (no second 250 for smuggled
/// commands), then that the session still works.
pub(crate) fn exactly_one_reply(c: &mut Client) {
    c.cmd("NOOP", "250 2.0.0");
}

pub(crate) fn password_hash(pw: &str) -> String {
    let mut child = std::process::Command::new(laneway_tests::laneway_bin())
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A relay config delivering through the test DNS to `port`.
pub(crate) fn relay(dns: &TestDns, port: u16, extra: &str) -> String {
    format!(
        r#"
[[listener]]
name = "mx"
bind = "127.0.0.1:0"
trust_priority = true
[relay]
trusted_networks = ["127.0.0.1/32"]
[queue]
retry_base = "200ms"
retry_max = "500ms"
[outbound]
port = {port}
idle_timeout = "300ms"
connect_timeout = "2s"
command_timeout = "2s"
[log]
events = "{{dir}}/events.jsonl"
{}
{extra}
"#,
        dns.config()
    )
}

pub(crate) use crate::delivery::events;

/// What a hostile MX does.
#[derive(Clone, Copy)]
pub(crate) enum Hostile {
    /// An endless multi-line greeting.
    EndlessGreeting,
    /// One greeting line that never ends.
    HugeLine,
    /// Takes the whole message, then hangs up instead of replying — the
    /// first `n` times; afterwards it accepts.
    HangUpAfterDot(usize),
}

/// A raw SMTP server on 127.0.0.1 with hostile habits; returns its port
/// and the messages it finally accepted (their `Subject:` lines).
pub(crate) fn hostile_mx(how: Hostile) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let conns = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let (g, n) = (g.clone(), conns.fetch_add(1, Ordering::SeqCst));
            std::thread::spawn(move || {
                let _ = serve_hostile(s, how, n, &g);
            });
        }
    });
    (port, got)
}

pub(crate) fn serve_hostile(
    mut s: TcpStream,
    how: Hostile,
    conn: usize,
    got: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    s.set_write_timeout(Some(DEADLINE))?;
    match how {
        Hostile::EndlessGreeting => {
            let line = format!("220-{}\r\n", "x".repeat(200));
            loop {
                s.write_all(line.as_bytes())?;
            }
        }
        Hostile::HugeLine => {
            s.write_all(b"220 ")?;
            let chunk = vec![b'x'; 64 * 1024];
            loop {
                s.write_all(&chunk)?;
            }
        }
        Hostile::HangUpAfterDot(n) => {
            s.write_all(b"220 hostile.test ESMTP\r\n")?;
            let mut r = BufReader::new(s.try_clone()?);
            let mut subject = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                match verb.as_str() {
                    "EHLO" | "HELO" => s.write_all(b"250 hostile.test\r\n")?,
                    "MAIL" | "RCPT" | "RSET" | "NOOP" => s.write_all(b"250 ok\r\n")?,
                    "QUIT" => {
                        s.write_all(b"221 bye\r\n")?;
                        return Ok(());
                    }
                    "DATA" => {
                        s.write_all(b"354 go\r\n")?;
                        loop {
                            let mut l = String::new();
                            if r.read_line(&mut l)? == 0 {
                                return Ok(());
                            }
                            if l == ".\r\n" {
                                break;
                            }
                            if let Some(v) = l.strip_prefix("Subject: ") {
                                subject = v.trim().to_string();
                            }
                        }
                        if conn < n {
                            // the message is in, the reply never comes
                            return Ok(());
                        }
                        got.lock().unwrap().push(subject.clone());
                        s.write_all(b"250 ok\r\n")?;
                    }
                    _ => s.write_all(b"502 no\r\n")?,
                }
            }
        }
    }
}

/// A small tmpfs, mounted for the test and unmounted after.
pub(crate) struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "4m"), or says why it cannot.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?.keep();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Sends one message of `size` bytes of body; returns the final reply.
pub(crate) fn send_sized(d: &Daemon, size: usize) -> String {
    let mut c = Client::hello(d.addr("mx"));
    let r = c.cmd("MAIL FROM:<a@example.com>", "");
    if !r.starts_with("250") {
        return r;
    }
    c.cmd("RCPT TO:<b@example.net>", "250");
    c.cmd("DATA", "354");
    let line = format!("{}\r\n", "f".repeat(98));
    let mut body = String::from("Subject: fill\r\n\r\n");
    body.push_str(&line.repeat(size / line.len()));
    body.push_str(".\r\n");
    c.send(body.as_bytes());
    c.reply()
}

pub(crate) fn temp_files(spool: &std::path::Path) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(spool.join("tmp"))
        .unwrap()
        .flatten()
        .collect()
}
