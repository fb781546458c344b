//! `laneway-bench`: load generator, counting sink and benchmark scenarios.

use std::time::Duration;

use clap::{Parser, Subcommand};
use laneway_bench::sink::{Sink, SinkConfig};

/// Benchmark tools for Laneway (and any SMTP relay).
#[derive(Parser, Debug)]
#[command(name = "laneway-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A counting SMTP sink: prints the count once a second.
    Sink {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:2526")]
        bind: std::net::SocketAddr,
        /// Time per message, e.g. "20ms".
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        delay: Duration,
        /// Messages per second for the whole sink (0: unlimited).
        #[arg(long, default_value_t = 0)]
        rate: u32,
        /// Write each message received to DIR/<n>.eml (envelope in X-Sink-* headers).
        #[arg(long)]
        save: Option<std::path::PathBuf>,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        _ => Err(format!("bad duration {s:?}: use ms or s")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Sink {
            bind,
            delay,
            rate,
            save,
        } => {
            let sink = Sink::start(SinkConfig {
                delay,
                rate,
                bind: Some(bind),
                ..Default::default()
            })
            .await?;
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
                        std::fs::write(dir.join(format!("{saved}.eml")), out)?;
                        saved += 1;
                    }
                }
                println!("received={}", msgs.len());
            }
        }
    }
}
