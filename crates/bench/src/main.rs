//! `laneway-bench`: load generator, counting sink and benchmark scenarios.
//! Every scenario prints one machine-readable line per figure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use laneway_bench::blast::{self, Blast};
use laneway_bench::scenarios::{self, System, Urgent};
use laneway_bench::sink::{Sink, SinkConfig};

/// Benchmark tools for Laneway (and any SMTP relay).
#[derive(Parser, Debug)]
#[command(name = "laneway-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct Load {
    /// Messages to send.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Concurrent SMTP sessions.
    #[arg(long, default_value_t = 20)]
    sessions: usize,
    /// Messages per connection (0: as many as there are).
    #[arg(long, default_value_t = 0)]
    per_session: usize,
    /// Send MAIL, RCPT and DATA one by one even when PIPELINING is offered.
    #[arg(long)]
    no_pipelining: bool,
    /// Recipient domain.
    #[arg(long, default_value = "bench.test")]
    domain: String,
}

impl Load {
    fn blast(&self, addr: SocketAddr, lane: Option<u8>) -> Blast {
        Blast {
            addr,
            messages: self.messages,
            size: self.size,
            sessions: self.sessions,
            per_session: self.per_session,
            lane,
            domain: self.domain.clone(),
            pipelining: !self.no_pipelining,
            id_prefix: "m".into(),
        }
    }
}

#[derive(Args, Debug, Clone)]
struct Target {
    /// The laneway binary to start (default: the one next to laneway-bench).
    #[arg(long)]
    laneway: Option<PathBuf>,
    /// Measure a relay that is already running here instead …
    #[arg(long, requires = "sink_bind")]
    relay: Option<SocketAddr>,
    /// … and relays to a sink this tool starts here.
    #[arg(long)]
    sink_bind: Option<SocketAddr>,
    /// The relay's (master) process: the throughput scenario then reports
    /// its CPU time, with its children's, per message.
    #[arg(long, requires = "relay")]
    relay_pid: Option<u32>,
    /// Working directory for Laneway (configuration and spool).
    #[arg(long)]
    dir: Option<PathBuf>,
}

impl Target {
    fn bin(&self) -> PathBuf {
        self.laneway.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("laneway")))
                .unwrap_or_else(|| PathBuf::from("laneway"))
        })
    }

    fn dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("laneway-bench-{}", std::process::id()))
        })
    }

    fn system(&self) -> System {
        match (self.relay, self.sink_bind) {
            (Some(smtp), Some(sink)) => System::Relay {
                smtp,
                sink,
                pid: self.relay_pid,
            },
            _ => System::Laneway {
                bin: self.bin(),
                dir: self.dir(),
            },
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A counting SMTP sink: prints the count every 200 ms.
    Sink {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:2526")]
        bind: SocketAddr,
        /// Time per message in ms.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Messages per second for the whole sink (0: unlimited).
        #[arg(long, default_value_t = 0)]
        rate: u32,
        /// Write each message received to DIR/<n>.eml (envelope in X-Sink-* headers).
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// Send a load to any SMTP server.
    Blast {
        /// Where.
        #[arg(long)]
        to: SocketAddr,
        /// Lane (adds X-Priority-Queue and X-Bench-Lane).
        #[arg(long)]
        lane: Option<u8>,
        #[command(flatten)]
        load: Load,
    },
    /// Scenario 1: end-to-end relay rate into a fast sink (and the harness's ceiling).
    Throughput {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        load: Load,
        /// Also blast straight into a sink (the harness's own limit).
        #[arg(long)]
        ceiling: bool,
        /// Laneway also sends every event to a webhook receiver.
        #[arg(long)]
        webhook: bool,
    },
    /// Scenario 2: lane-9 latency behind a lane-0 backlog to a slow destination.
    Urgent {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        load: Load,
        /// Lane-0 messages queued first.
        #[arg(long, default_value_t = 100_000)]
        backlog: usize,
        /// The sink's rate (messages per second).
        #[arg(long, default_value_t = 200)]
        sink_rate: u32,
        /// Lane-9 messages.
        #[arg(long, default_value_t = 30)]
        urgent: usize,
        /// Milliseconds between lane-9 messages.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Connections to the slow destination ([[destination]] max_connections).
        #[arg(long, default_value_t = 4)]
        max_connections: usize,
    },
    /// Scenario 3: accepted messages per second with fsync, nothing delivered.
    Acceptance {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        load: Load,
    },
    /// Scenario 4: memory and restart time with many queued messages.
    QueueScale {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        load: Load,
    },
    /// Scenario 5: HTTP submissions per second, and as a share of SMTP acceptance.
    Api {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        load: Load,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 20)]
        clients: usize,
    },
}

async fn run(cmd: Command) -> Result<(), String> {
    match cmd {
        Command::Sink {
            bind,
            delay_ms,
            rate,
            save,
        } => {
            let sink = Sink::start(SinkConfig {
                delay: Duration::from_millis(delay_ms),
                rate,
                bind: Some(bind),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
            println!("sink listening addr={}", sink.addr);
            let mut saved = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let msgs = sink.messages();
                if let Some(dir) = &save {
                    for m in &msgs[saved..] {
                        let mut out = format!(
                            "X-Sink-Mail-From: <{}>\r\nX-Sink-Rcpt-To: {}\r\n",
                            m.from,
                            m.rcpts.join(", ")
                        )
                        .into_bytes();
                        out.extend_from_slice(&m.data);
                        std::fs::write(dir.join(format!("{saved}.eml")), out)
                            .map_err(|e| e.to_string())?;
                        saved += 1;
                    }
                }
                println!("received={}", msgs.len());
            }
        }
        Command::Blast { to, lane, load } => {
            let r = blast::run(&load.blast(to, lane)).await;
            scenarios::figure("blast", "target", "accepted_msgs_per_s", r.rate(), "msg/s");
            scenarios::figure("blast", "target", "accepted", r.accepted as f64, "messages");
            scenarios::figure("blast", "target", "failed", r.failed as f64, "messages");
            if let Some(e) = r.first_error {
                eprintln!("first error: {e}");
            }
            Ok(())
        }
        Command::Throughput {
            target,
            load,
            ceiling,
            webhook,
        } => {
            let sys = target.system();
            scenarios::throughput(
                &sys,
                load.blast("127.0.0.1:1".parse().expect("addr"), None),
                ceiling,
                webhook,
            )
            .await
        }
        Command::Urgent {
            target,
            load,
            backlog,
            sink_rate,
            urgent,
            interval_ms,
            max_connections,
        } => {
            let sys = target.system();
            scenarios::urgent(
                &sys,
                load.blast("127.0.0.1:1".parse().expect("addr"), None),
                Urgent {
                    backlog,
                    sink_rate,
                    urgent,
                    interval: Duration::from_millis(interval_ms),
                    max_connections,
                },
            )
            .await
        }
        Command::Acceptance { target, load } => {
            let sys = target.system();
            scenarios::acceptance(&sys, load.blast("127.0.0.1:1".parse().expect("addr"), None))
                .await
        }
        Command::QueueScale { target, load } => {
            scenarios::queue_scale(
                &target.bin(),
                &target.dir(),
                load.blast("127.0.0.1:1".parse().expect("addr"), None),
            )
            .await
        }
        Command::Api {
            target,
            load,
            clients,
        } => {
            scenarios::api(
                &target.bin(),
                &target.dir(),
                load.blast("127.0.0.1:1".parse().expect("addr"), None),
                clients,
            )
            .await
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("laneway-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
