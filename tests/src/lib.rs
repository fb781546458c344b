//! Test harness for end-to-end tests: runs the real `laneway` binary on
//! loopback with port 0, finds its listeners from the `listening` log
//! lines, and talks SMTP to it. Nothing here sleeps for luck: every wait is
//! on a condition with a deadline.

pub mod dns;
pub mod http;
pub mod https;
pub mod redis;
pub mod smtp;
pub mod tls;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The path of the `laneway` binary, built once per test run.
pub fn laneway_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("LANEWAY_BIN") {
            return PathBuf::from(p);
        }
        build("laneway", "laneway")
    })
    .clone()
}

/// The path of the `laneway-bench` binary, built once per test run.
pub fn bench_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        laneway_bin();
        build("laneway-bench", "laneway-bench")
    })
    .clone()
}

fn build(package: &str, bin: &str) -> PathBuf {
    {
        // The test process carries the variables cargo sets for running
        // tests (CARGO_PKG_NAME, …); passed on, they would make the nested
        // build look different and rebuild every time.
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", package, "--bin", bin])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if (k.starts_with("CARGO_") && !matches!(&*k, "CARGO_HOME" | "CARGO_TARGET_DIR"))
                || k == "OUT_DIR"
            {
                cmd.env_remove(&*k);
            }
        }
        let out = cmd.output().expect("running cargo build");
        assert!(
            out.status.success(),
            "cargo build -p {package} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // target/debug/deps/<test-binary> -> target/debug/<bin>
        let exe = std::env::current_exe().expect("test binary path");
        let dir = exe.parent().and_then(Path::parent).expect("target dir");
        dir.join(bin)
    }
}

#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    exited: bool,
}

/// A running laneway daemon.
pub struct Daemon {
    child: Option<Child>,
    dir: Arc<tempfile::TempDir>,
    config: String,
    /// Listener name → bound address, from the `listening` lines.
    pub addrs: HashMap<String, SocketAddr>,
    log: Arc<(Mutex<LogState>, Condvar)>,
    env: Vec<(String, String)>,
}

impl Daemon {
    /// Starts a daemon with this configuration. `{dir}` in the text is
    /// replaced with the daemon's temporary directory (its spool goes to
    /// `{dir}/spool` unless the config says otherwise).
    pub fn start(config: &str) -> Daemon {
        Daemon::start_with_env(config, &[])
    }

    /// Like [`Daemon::start`], with extra environment variables.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut d = Daemon {
            child: None,
            dir,
            config: config.to_string(),
            addrs: HashMap::new(),
            log: Arc::default(),
            env,
        };
        d.spawn();
        d
    }

    /// The daemon's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The spool directory.
    pub fn spool(&self) -> PathBuf {
        self.dir().join("spool")
    }

    /// The configuration file path.
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("laneway.toml")
    }

    /// Rewrites the configuration file (for reload tests).
    pub fn write_config(&self, config: &str) {
        let text = config.replace("{dir}", &self.dir().display().to_string());
        std::fs::write(self.config_path(), text).expect("write config");
    }

    fn spawn(&mut self) {
        let text = if self.config.contains("spool_dir") {
            self.config.clone()
        } else {
            format!(
                "[server]\nhostname = \"laneway.test\"\nspool_dir = \"{{dir}}/spool\"\n{}",
                self.config
            )
        };
        // Never the system resolver, never a real host (DESIGN §7): a test
        // that sets up no DNS of its own gets a name server address where
        // nothing listens, so its mail is accepted and stays deferred.
        let text = if text.contains("[dns]") {
            text
        } else {
            format!(
                "{text}\n[dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout = \"1s\"\nattempts = 1\n"
            )
        };
        self.config = text.clone();
        self.write_config(&text);
        let mut cmd = Command::new(laneway_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .env(
                "RUST_LOG",
                std::env::var("LANEWAY_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn laneway");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new((Mutex::new(LogState::default()), Condvar::new()));
        self.log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("LANEWAY_TEST_LOG").is_some() {
                    eprintln!("[laneway] {line}");
                }
                let (m, cv) = &*log;
                m.lock().unwrap().lines.push(line);
                cv.notify_all();
            }
            let (m, cv) = &*log;
            m.lock().unwrap().exited = true;
            cv.notify_all();
        });
        self.child = Some(child);
        assert!(
            self.wait_log(|l| l.contains(" ready")),
            "laneway did not become ready:\n{}",
            self.logs().join("\n")
        );
        self.addrs.clear();
        for l in self.logs() {
            if let Some(rest) = l.split("listening ").nth(1) {
                let name = field(rest, "name");
                let addr = field(rest, "addr");
                if let (Some(n), Some(a)) = (name, addr) {
                    self.addrs.insert(n, a.parse().expect("listening addr"));
                }
            }
        }
    }

    /// The address of a listener.
    pub fn addr(&self, name: &str) -> SocketAddr {
        *self
            .addrs
            .get(name)
            .unwrap_or_else(|| panic!("no listener {name}; have {:?}", self.addrs))
    }

    /// All log lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.log.0.lock().unwrap().lines.clone()
    }

    /// Waits until a log line satisfies `pred` (true) or the daemon exits or
    /// the deadline passes (false).
    pub fn wait_log(&self, pred: impl Fn(&str) -> bool) -> bool {
        let (m, cv) = &*self.log;
        let deadline = Instant::now() + DEADLINE;
        let mut st = m.lock().unwrap();
        let mut seen = 0;
        loop {
            if st.lines[seen..].iter().any(|l| pred(l)) {
                return true;
            }
            seen = st.lines.len();
            if st.exited {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = cv.wait_timeout(st, left).unwrap().0;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("pid");
        rustix::process::kill_process(pid, sig).expect("kill");
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit (deadline), returning its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(s) = c.try_wait().expect("try_wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "laneway did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        self.wait_exit()
    }

    /// Starts the daemon again on the same directory and configuration.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the daemon first");
        self.spawn();
    }

    /// Runs `laneway <args>` with this daemon's configuration file.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(laneway_bin())
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            .output()
            .expect("run laneway cli")
    }

    /// Message counts per lane from `laneway spool stats --json`.
    pub fn spool_stats(&self) -> serde_json::Value {
        let out = self.cli(&["spool", "stats", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("stats JSON")
    }

    /// The ids of the messages in a lane, from the spool directories.
    pub fn spooled_ids(&self, lane: u8) -> Vec<String> {
        let mut ids = Vec::new();
        let lane_dir = self.spool().join("lanes").join(lane.to_string());
        if let Ok(shards) = std::fs::read_dir(lane_dir) {
            for shard in shards.flatten() {
                for f in std::fs::read_dir(shard.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let name = f.file_name().to_string_lossy().into_owned();
                    if name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                        ids.push(name);
                    }
                }
            }
        }
        ids.sort();
        ids
    }

    /// The stored bytes of a message (envelope header and data).
    pub fn spooled_file(&self, lane: u8, id: &str) -> Vec<u8> {
        let lane_dir = self.spool().join("lanes").join(lane.to_string());
        for shard in std::fs::read_dir(lane_dir).expect("lane dir").flatten() {
            let p = shard.path().join(id);
            if p.exists() {
                return std::fs::read(p).expect("read spool file");
            }
        }
        panic!("{id} not in lane {lane}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `key=value` from a log line.
fn field(line: &str, key: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_string())
}

/// Polls `cond` until it holds or the deadline passes.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
