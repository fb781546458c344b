//! Starting a `laneway` binary for a benchmark: write its configuration,
//! spawn it, wait for `ready`, and read its listeners from the
//! `listening name=… addr=…` lines.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `(name, addr)` from a `listening name=<name> addr=<ip:port>` log line.
pub fn listening(line: &str) -> Option<(String, SocketAddr)> {
    let rest = line.split("listening ").nth(1)?;
    let field = |k: &str| {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
    };
    Some((field("name")?, field("addr")?.parse().ok()?))
}

/// A running laneway.
pub struct Laneway {
    child: Option<Child>,
    /// Listener name → address.
    pub addrs: HashMap<String, SocketAddr>,
    /// Its working directory (configuration and spool).
    pub dir: PathBuf,
    bin: PathBuf,
    /// How long start-up took (spawn to `ready`).
    pub startup: Duration,
    started: Instant,
    /// Its log lines, with when they arrived.
    log: Arc<Mutex<LogLines>>,
}

#[derive(Default)]
struct LogLines {
    lines: Vec<(Instant, String)>,
    /// The daemon closed its stderr (it exited).
    closed: bool,
}

impl Laneway {
    /// Writes `config` to `dir/laneway.toml` and starts `bin serve` on it.
    pub fn start(bin: &Path, dir: &Path, config: &str) -> Result<Laneway, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("laneway.toml"), config).map_err(|e| e.to_string())?;
        let mut l = Laneway {
            child: None,
            addrs: HashMap::new(),
            dir: dir.to_path_buf(),
            bin: bin.to_path_buf(),
            startup: Duration::ZERO,
            started: Instant::now(),
            log: Default::default(),
        };
        l.spawn()?;
        Ok(l)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let mut child = Command::new(&self.bin)
            .args(["serve", "--config"])
            .arg(self.dir.join("laneway.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        let stderr = child.stderr.take().expect("stderr");
        // Every line, kept with when it arrived; the reader also keeps the
        // pipe drained so the daemon never blocks on it.
        let log: Arc<Mutex<LogLines>> = Default::default();
        let writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = writer.lock() {
                    l.lines.push((Instant::now(), line));
                }
            }
            if let Ok(mut l) = writer.lock() {
                l.closed = true;
            }
        });
        self.child = Some(child);
        self.addrs.clear();
        self.log = log;
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut seen = 0;
        loop {
            let (fresh, closed) = {
                let l = self.log.lock().map_err(|e| e.to_string())?;
                let fresh: Vec<String> = l.lines[seen..].iter().map(|(_, s)| s.clone()).collect();
                (fresh, l.closed)
            };
            seen += fresh.len();
            for line in fresh {
                if let Some((n, a)) = listening(&line) {
                    self.addrs.insert(n, a);
                }
                if line.contains(" ready") {
                    self.startup = started.elapsed();
                    self.started = started;
                    return Ok(());
                }
                if line.contains("ERROR") {
                    return Err(line);
                }
            }
            if closed || Instant::now() > deadline {
                return Err("laneway did not become ready".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (up to `limit`) for a log line of this run containing
    /// `needle`; returns the time from spawn to that line.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> Option<Duration> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some((at, _)) = self
                .log
                .lock()
                .ok()?
                .lines
                .iter()
                .find(|(_, l)| l.contains(needle))
            {
                return Some(at.duration_since(self.started));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address of a listener.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs[name]
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Resident memory of the process, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    /// Runs `laneway <args> --config <its config>`.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--config")
            .arg(self.dir.join("laneway.toml"))
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    /// Starts again on the same directory; returns how long until `ready`.
    pub fn restart(&mut self) -> Result<Duration, String> {
        self.stop();
        self.spawn()?;
        Ok(self.startup)
    }
}

impl Drop for Laneway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
