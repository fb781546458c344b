//! A private `redis-server` for the cluster tests: its own port on
//! loopback, its own directory, no persistence (so a restart comes back
//! empty, as a Redis without AOF does), killed when dropped. Never the
//! system's Redis.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::DEADLINE;

/// A running private Redis.
pub struct Redis {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// The `redis-server` binary, if installed (`.ci/run` installs it).
fn binary() -> Option<PathBuf> {
    let candidates = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"];
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

impl Redis {
    /// Starts one, or `None` (with a message saying the test is skipped)
    /// when `redis-server` is not installed.
    pub fn start(test: &str) -> Option<Redis> {
        let Some(_) = binary() else {
            eprintln!(
                "SKIPPED {test}: redis-server is not installed (apt-get install redis-server; .ci/run does)"
            );
            return None;
        };
        let port = free_port();
        let mut r = Redis {
            child: None,
            port,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        r.spawn();
        Some(r)
    }

    fn spawn(&mut self) {
        let child = Command::new(binary().expect("redis-server"))
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &self.dir.path().display().to_string(),
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs one command with `redis-cli`-free RESP over TCP; the raw reply.
    pub fn command(&self, args: &[&str]) -> String {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).expect("write to redis");
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
