//! The benchmark scenarios. Each prints one machine-readable line per
//! figure: `scenario=<name> system=<laneway|relay> figure=<name> value=<n> unit=<u>`.
//! A scenario runs against a Laneway it starts itself (`--laneway BIN`) or
//! against any relay already running (`--relay ADDR`) that relays to the
//! sink this tool starts on `--sink-bind` — Postfix on the same machine, for
//! instance, so that both are measured in the same run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::blast::{self, Blast};
use crate::daemon::Laneway;
use crate::sink::{Sink, SinkConfig};

/// What to measure.
#[derive(Debug, Clone)]
pub enum System {
    /// Start this laneway binary with a configuration made for the scenario.
    Laneway {
        /// The binary.
        bin: PathBuf,
        /// Working directory (configuration, spool).
        dir: PathBuf,
    },
    /// A relay that is already running at `smtp` and relays everything to
    /// `sink` (where this tool listens).
    Relay {
        /// The relay's SMTP address.
        smtp: SocketAddr,
        /// Where the relay delivers.
        sink: SocketAddr,
        /// Its (master) process, whose CPU time, with its children's, the
        /// throughput scenario reports per message.
        pid: Option<u32>,
    },
}

impl System {
    fn name(&self) -> &'static str {
        match self {
            System::Laneway { .. } => "laneway",
            System::Relay { .. } => "relay",
        }
    }
}

/// Prints one figure.
pub fn figure(scenario: &str, system: &str, name: &str, value: f64, unit: &str) {
    println!("scenario={scenario} system={system} figure={name} value={value:.3} unit={unit}");
}

/// A Laneway configuration relaying everything to `sink`.
pub fn laneway_config(dir: &std::path::Path, sink: SocketAddr, extra: &str) -> String {
    format!(
        r#"[server]
hostname = "bench.laneway.test"
spool_dir = "{}/spool"
[[listener]]
name = "smtp"
bind = "127.0.0.1:0"
trust_priority = true
max_connections_per_ip = 10000
[relay]
trusted_networks = ["127.0.0.0/8"]
[[route]]
domain = "*"
via = "{sink}"
[dns]
nameservers = ["127.0.0.1:9"]
{extra}
"#,
        dir.display()
    )
}

struct Setup {
    _laneway: Option<Laneway>,
    /// The process whose CPU time (with its children's) the load costs.
    pid: Option<u32>,
    smtp: SocketAddr,
    sink: Sink,
    system: &'static str,
}

async fn setup(system: &System, sink_cfg: SinkConfig, extra: &str) -> Result<Setup, String> {
    match system {
        System::Laneway { bin, dir } => {
            let sink = Sink::start(sink_cfg).await.map_err(|e| e.to_string())?;
            let _ = std::fs::remove_dir_all(dir.join("spool"));
            let l = Laneway::start(bin, dir, &laneway_config(dir, sink.addr, extra))?;
            Ok(Setup {
                smtp: l.addr("smtp"),
                pid: l.pid(),
                _laneway: Some(l),
                sink,
                system: "laneway",
            })
        }
        System::Relay { smtp, sink, pid } => {
            let sink = Sink::start(SinkConfig {
                bind: Some(*sink),
                ..sink_cfg
            })
            .await
            .map_err(|e| format!("sink on {sink}: {e}"))?;
            Ok(Setup {
                _laneway: None,
                pid: *pid,
                smtp: *smtp,
                sink,
                system: "relay",
            })
        }
    }
}

/// CPU time of the system under test (its process tree) from `start` to
/// [`Cpu::figure`], which prints it per message as `cpu_us_per_msg`.
struct Cpu {
    pid: Option<u32>,
    before: Option<Duration>,
}

impl Cpu {
    fn start(pid: Option<u32>) -> Cpu {
        Cpu {
            pid,
            before: pid.and_then(crate::cpu::tree_cpu),
        }
    }

    fn figure(&self, scenario: &str, system: &str, messages: usize) {
        let after = self.pid.and_then(crate::cpu::tree_cpu);
        if let (Some(a), Some(b)) = (after, self.before) {
            figure(
                scenario,
                system,
                "cpu_us_per_msg",
                a.saturating_sub(b).as_micros() as f64 / messages.max(1) as f64,
                "us/msg",
            );
        }
    }
}

/// Scenario 1: end-to-end relay rate into a fast sink, and the harness's
/// own ceiling (the same blast straight into the sink).
/// With `webhook`, Laneway also sends every event (a reception and a
/// delivery per message) to a signature-checking receiver, and the figures
/// say how long the last one took to arrive.
pub async fn throughput(
    system: &System,
    b: Blast,
    ceiling: bool,
    webhook: bool,
) -> Result<(), String> {
    let secret = b"a benchmark webhook secret";
    let hook = if webhook {
        let System::Laneway { dir, .. } = system else {
            return Err("--webhook needs a Laneway this tool starts".into());
        };
        let r = crate::webhook::Receiver::start(secret)
            .await
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let path = dir.join("webhook.secret");
        std::fs::write(&path, secret).map_err(|e| e.to_string())?;
        Some((r, path))
    } else {
        None
    };
    let extra = match &hook {
        Some((r, path)) => format!(
            "[[webhook]]\nname = \"bench\"\nurl = \"{}\"\nbatch_size = 500\nbatch_wait = \"200ms\"\nsecret_file = \"{}\"\n",
            r.url(),
            path.display()
        ),
        None => String::new(),
    };
    let s = setup(system, SinkConfig::default(), &extra).await?;
    let cpu = Cpu::start(s.pid);
    let start = Instant::now();
    let report = blast::run(&Blast {
        addr: s.smtp,
        ..b.clone()
    })
    .await;
    report.all_accepted(b.messages)?;
    let got = s.sink.wait_for(b.messages, Duration::from_secs(3600)).await;
    cpu.figure("throughput", s.system, got);
    let msgs = s.sink.messages();
    let last = msgs.iter().map(|m| m.at).max().unwrap_or_else(Instant::now);
    let e2e = last.duration_since(start);
    figure(
        "throughput",
        s.system,
        "accepted_msgs_per_s",
        report.rate(),
        "msg/s",
    );
    figure(
        "throughput",
        s.system,
        "end_to_end_msgs_per_s",
        got as f64 / e2e.as_secs_f64(),
        "msg/s",
    );
    if let Some((r, _)) = &hook {
        let want = 2 * b.messages;
        let deadline = Instant::now() + Duration::from_secs(600);
        while r.accepted().len() < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let events = r.accepted();
        let unsigned = r.deliveries().iter().filter(|d| !d.signed).count();
        figure(
            "throughput",
            s.system,
            "webhook_events",
            events.len() as f64,
            "events",
        );
        figure(
            "throughput",
            s.system,
            "webhook_unsigned_requests",
            unsigned as f64,
            "requests",
        );
        figure(
            "throughput",
            s.system,
            "webhook_last_event_after_last_delivery_s",
            r.deliveries()
                .last()
                .map(|d| d.at.saturating_duration_since(last).as_secs_f64())
                .unwrap_or(0.0),
            "s",
        );
    }
    if ceiling {
        let sink = Sink::start(SinkConfig::default())
            .await
            .map_err(|e| e.to_string())?;
        let r = blast::run(&Blast {
            addr: sink.addr,
            ..b
        })
        .await;
        figure(
            "throughput",
            "harness",
            "ceiling_msgs_per_s",
            r.rate(),
            "msg/s",
        );
    }
    Ok(())
}

/// Scenario 3: accepted messages per second with fsync, no delivery (the
/// destination is held: suspended in Laneway; for another relay, configure
/// it to defer, e.g. Postfix's `defer_transports = smtp`).
pub async fn acceptance(system: &System, b: Blast) -> Result<(), String> {
    let s = setup(system, SinkConfig::default(), "").await?;
    if let Some(l) = &s._laneway {
        l.cli(&["queue", "suspend", &b.domain])?;
    }
    let cpu = Cpu::start(s.pid);
    let report = blast::run(&Blast {
        addr: s.smtp,
        ..b.clone()
    })
    .await;
    report.all_accepted(b.messages)?;
    cpu.figure("acceptance", s.system, report.accepted);
    figure(
        "acceptance",
        s.system,
        "accepted_msgs_per_s",
        report.rate(),
        "msg/s",
    );
    Ok(())
}

/// Options of the urgent scenario.
#[derive(Debug, Clone)]
pub struct Urgent {
    /// Lane-0 messages queued first.
    pub backlog: usize,
    /// The sink's global rate, messages per second.
    pub sink_rate: u32,
    /// How many lane-9 messages.
    pub urgent: usize,
    /// Time between lane-9 messages.
    pub interval: Duration,
    /// Connections Laneway may open to the slow destination.
    pub max_connections: usize,
}

/// Scenario 2: a slow sink, a lane-0 backlog to one domain, then one
/// lane-9 message every `interval`: end-to-end latency of the lane-9
/// messages (from the start of their submission to their arrival).
pub async fn urgent(system: &System, b: Blast, u: Urgent) -> Result<(), String> {
    let extra = format!(
        "[[destination]]\ndomain = \"{}\"\nmax_connections = {}\n",
        b.domain, u.max_connections
    );
    let s = setup(
        system,
        SinkConfig {
            rate: u.sink_rate,
            ..Default::default()
        },
        &extra,
    )
    .await?;
    let backlog = Blast {
        addr: s.smtp,
        messages: u.backlog,
        lane: Some(0),
        id_prefix: "bulk".into(),
        ..b.clone()
    };
    let report = blast::run(&backlog).await;
    if report.accepted < u.backlog {
        return Err(format!(
            "backlog: only {} accepted: {:?}",
            report.accepted, report.first_error
        ));
    }
    figure(
        "urgent",
        s.system,
        "backlog_accepted_msgs_per_s",
        report.rate(),
        "msg/s",
    );
    let mut sent = Vec::new();
    for i in 0..u.urgent {
        let tick = Instant::now();
        let one = Blast {
            addr: s.smtp,
            messages: 1,
            sessions: 1,
            lane: Some(9),
            id_prefix: format!("urgent{i}-"),
            ..b.clone()
        };
        let t0 = Instant::now();
        let r = blast::run(&one).await;
        if r.accepted != 1 {
            return Err(format!("urgent message {i} refused: {:?}", r.first_error));
        }
        sent.push((format!("urgent{i}-0"), t0));
        let rest = u.interval.saturating_sub(tick.elapsed());
        tokio::time::sleep(rest).await;
    }
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut lat = Vec::new();
    for (id, t0) in &sent {
        loop {
            if let Some(m) = s
                .sink
                .messages()
                .iter()
                .find(|m| m.bench_id.as_deref() == Some(id))
            {
                lat.push(m.at.duration_since(*t0).as_secs_f64());
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{id} never arrived"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    figure(
        "urgent",
        s.system,
        "lane9_latency_p50_ms",
        pct(0.5) * 1000.0,
        "ms",
    );
    figure(
        "urgent",
        s.system,
        "lane9_latency_p99_ms",
        pct(0.99) * 1000.0,
        "ms",
    );
    figure(
        "urgent",
        s.system,
        "lane9_latency_max_ms",
        lat.last().copied().unwrap_or(0.0) * 1000.0,
        "ms",
    );
    figure(
        "urgent",
        s.system,
        "sink_transaction_ms",
        1000.0 / u.sink_rate as f64,
        "ms",
    );
    Ok(())
}

/// Scenario 4: `n` queued messages (destination held): resident memory of
/// the daemon, how long a restart takes until it serves, and until it has
/// read the whole spool back.
pub async fn queue_scale(
    bin: &std::path::Path,
    dir: &std::path::Path,
    b: Blast,
) -> Result<(), String> {
    let sink = Sink::start(SinkConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(dir.join("spool"));
    let hold = format!("[[destination]]\ndomain = \"{}\"\nhold = true\n", b.domain);
    let mut l = Laneway::start(bin, dir, &laneway_config(dir, sink.addr, &hold))?;
    let report = blast::run(&Blast {
        addr: l.addr("smtp"),
        ..b.clone()
    })
    .await;
    report.all_accepted(b.messages)?;
    figure(
        "queue-scale",
        "laneway",
        "queued_messages",
        report.accepted as f64,
        "messages",
    );
    figure(
        "queue-scale",
        "laneway",
        "rss_before_restart_mib",
        l.rss_kib().unwrap_or(0) as f64 / 1024.0,
        "MiB",
    );
    let t = l.restart()?;
    figure(
        "queue-scale",
        "laneway",
        "restart_to_ready_s",
        t.as_secs_f64(),
        "s",
    );
    // It serves at once and reads the spool in the background.
    let recovered = l
        .wait_log("spool recovered", Duration::from_secs(1800))
        .ok_or("the spool was not recovered within 30 minutes")?;
    figure(
        "queue-scale",
        "laneway",
        "restart_to_recovered_s",
        recovered.as_secs_f64(),
        "s",
    );
    figure(
        "queue-scale",
        "laneway",
        "rss_after_restart_mib",
        l.rss_kib().unwrap_or(0) as f64 / 1024.0,
        "MiB",
    );
    if sink.count() > 0 {
        return Err(format!(
            "{} messages were delivered though the destination was suspended",
            sink.count()
        ));
    }
    Ok(())
}

/// Scenario 5: HTTP submissions per second with `clients` concurrent
/// clients, as a share of SMTP acceptance measured on the same daemon in
/// the same run (`clients` SMTP sessions, the same size). The destination
/// is held during both loads, as in the acceptance scenario, so both
/// figures are acceptance alone (fsync before the answer); then it is
/// released and every message of both loads must arrive.
pub async fn api(
    bin: &std::path::Path,
    dir: &std::path::Path,
    b: Blast,
    clients: usize,
) -> Result<(), String> {
    let sink = Sink::start(SinkConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(dir.join("spool"));
    let token = "bench-token";
    let hash = crate::http::sha256_hex(token);
    let extra = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[[api.key]]\nname = \"bench\"\nsha256 = \"{hash}\"\nscopes = [\"send\"]\n"
    );
    let n = b.messages;
    let l = Laneway::start(bin, dir, &laneway_config(dir, sink.addr, &extra))?;
    l.cli(&["queue", "suspend", &b.domain])?;
    // Half of each load at a time, in the order SMTP, HTTP, HTTP, SMTP, so
    // that a drift of the machine (or a fuller spool) weighs on both alike.
    let (mut smtp, mut http) = (Duration::ZERO, Duration::ZERO);
    let halves = [n / 2, n - n / 2];
    for (round, smtp_first) in [(0, true), (1, false)] {
        let part = halves[round];
        for is_smtp in [smtp_first, !smtp_first] {
            if is_smtp {
                let r = blast::run(&Blast {
                    addr: l.addr("smtp"),
                    sessions: clients,
                    messages: part,
                    id_prefix: format!("s{round}-"),
                    ..b.clone()
                })
                .await;
                r.all_accepted(part)?;
                smtp += r.elapsed;
            } else {
                let r = crate::http::submit_load(
                    l.addr("api"),
                    token,
                    part,
                    clients,
                    b.size,
                    &b.domain,
                )
                .await;
                if r.accepted < part {
                    return Err(format!(
                        "only {} of {part} accepted over HTTP: {:?}",
                        r.accepted, r.first_error
                    ));
                }
                http += r.elapsed;
            }
        }
    }
    let smtp_rate = n as f64 / smtp.as_secs_f64().max(1e-9);
    let http_rate = n as f64 / http.as_secs_f64().max(1e-9);
    figure(
        "api",
        "laneway",
        "smtp_accepted_msgs_per_s",
        smtp_rate,
        "msg/s",
    );
    figure("api", "laneway", "submissions_per_s", http_rate, "req/s");
    figure(
        "api",
        "laneway",
        "share_of_smtp_pct",
        100.0 * http_rate / smtp_rate,
        "%",
    );
    l.cli(&["queue", "resume", &b.domain])?;
    let got = sink.wait_for(2 * n, Duration::from_secs(600)).await;
    figure("api", "laneway", "delivered", got as f64, "messages");
    if got < 2 * n {
        return Err(format!("{got} of {} messages arrived", 2 * n));
    }
    Ok(())
}

impl System {
    /// The system's label in output.
    pub fn label(&self) -> &'static str {
        self.name()
    }
}
