//! `laneway`: the daemon and its command-line tools (DESIGN §5). This file
//! only parses the command line and dispatches; the work lives in the
//! library crates and in [`serve`].

mod config;
mod ingest;
mod logging;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Laneway: the SMTP relay where a password reset never waits behind a newsletter.
#[derive(Parser, Debug)]
#[command(name = "laneway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon.
    Serve {
        /// Configuration file; without it the embedded default runs
        /// (SMTP on 127.0.0.1:2525, spool in ./spool).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration and report every problem found.
    CheckConfig {
        /// Configuration file (default: the embedded default).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Read the spool directly (works with the daemon running or stopped).
    Spool {
        #[command(subcommand)]
        command: SpoolCommand,
    },
    /// Hash a password for `[[smtp_user]] password_hash` (reads it from stdin).
    HashPassword,
}

#[derive(Subcommand, Debug)]
enum SpoolCommand {
    /// Count messages per lane.
    Stats {
        /// Configuration file naming the spool.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Print JSON: {"total": N, "lanes": {"0": n0, …}}.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve::main(config),
        Command::CheckConfig { config } => config::check(config.as_deref()),
        Command::Spool {
            command: SpoolCommand::Stats { config, json },
        } => config::spool_stats(config.as_deref(), json),
        Command::HashPassword => config::hash_password(),
    }
}
