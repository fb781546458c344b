//! `laneway`: the daemon and its command-line tools (DESIGN §5). This file
//! only parses the command line and dispatches; the work lives in the
//! library crates and in [`serve`].

mod admin;
mod config;
mod ctl;
mod ingest;
mod logging;
mod metrics;
mod sender_auth;
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
    /// Look at and act on the running daemon's queue (like postqueue/postsuper).
    Queue {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// The suppression list of the running daemon.
    Suppressions {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: SuppressionCommand,
    },
    /// DKIM keys.
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
    /// API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
}

/// How to reach the daemon.
#[derive(clap::Args, Debug)]
struct TargetArgs {
    /// Configuration file (finds the control socket in the spool directory).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    /// A remote API instead of the local control socket, e.g. http://10.0.0.5:8025.
    #[arg(long, global = true)]
    url: Option<String>,
    /// Bearer token for --url (default: $LANEWAY_TOKEN).
    #[arg(long, global = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum QueueCommand {
    /// Messages per lane, oldest ages, busiest destinations.
    Stats,
    /// List messages.
    List {
        /// Only this lane.
        #[arg(long)]
        lane: Option<u8>,
        /// Only messages with a recipient at this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only this envelope sender.
        #[arg(long)]
        sender: Option<String>,
        /// Only this state (ready, deferred, active, resolving).
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue after this id (from the previous page).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One message in detail.
    Show {
        /// Queue id.
        id: String,
    },
    /// Remove a message from the queue.
    Delete {
        /// Queue id.
        id: String,
        /// Also send the sender a DSN for the recipients not yet delivered.
        #[arg(long)]
        bounce: bool,
    },
    /// Retry a deferred message now.
    Retry {
        /// Queue id.
        id: String,
    },
    /// Move a message to another lane.
    SetPriority {
        /// Queue id.
        id: String,
        /// The new lane, 0-9.
        priority: u8,
    },
    /// Retry every deferred message now.
    Flush,
    /// Stop deliveries to a domain's destination (mail stays queued).
    Suspend {
        /// Recipient domain.
        domain: String,
    },
    /// Resume deliveries to a domain's destination.
    Resume {
        /// Recipient domain.
        domain: String,
    },
}

#[derive(Subcommand, Debug)]
enum SuppressionCommand {
    /// List suppressed recipients.
    List {
        /// Only this sender domain.
        #[arg(long)]
        sender_domain: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue from a previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Suppress a recipient for a sender domain.
    Add {
        /// The recipient.
        address: String,
        /// The sender domain.
        #[arg(long)]
        sender_domain: String,
        /// Why.
        #[arg(long, default_value = "manual")]
        reason: String,
        /// Only for bulk lanes (below [auth] transactional_min_lane).
        #[arg(long)]
        bulk_only: bool,
    },
    /// Lift a suppression.
    Remove {
        /// The recipient.
        address: String,
        /// The sender domain.
        #[arg(long)]
        sender_domain: String,
    },
}

#[derive(Subcommand, Debug)]
enum DkimCommand {
    /// Make a signing key (PEM, mode 0600) and print its DNS TXT record.
    Keygen {
        /// The signing domain (d=).
        #[arg(long)]
        domain: String,
        /// The selector (s=).
        #[arg(long)]
        selector: String,
        /// rsa-sha256 (2048 bits) or ed25519-sha256.
        #[arg(long, default_value = "rsa-sha256")]
        algorithm: String,
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ApiKeyCommand {
    /// Make a new token and print the [[api.key]] lines for it.
    New {
        /// The key's name.
        #[arg(long)]
        name: String,
        /// Scopes, comma-separated: send, admin.
        #[arg(long, value_delimiter = ',', default_value = "send")]
        scopes: Vec<String>,
    },
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
        Command::Queue { target, command } => queue(target, command),
        Command::ApiKey {
            command: ApiKeyCommand::New { name, scopes },
        } => ctl::new_api_key(&name, &scopes),
        Command::Suppressions { target, command } => suppressions(target, command),
        Command::Dkim {
            command:
                DkimCommand::Keygen {
                    domain,
                    selector,
                    algorithm,
                    out,
                },
        } => ctl::dkim_keygen(&domain, &selector, &algorithm, &out),
    }
}

fn suppressions(t: TargetArgs, command: SuppressionCommand) -> ExitCode {
    let target = match ctl::Target::new(t.config.as_deref(), t.url.as_deref(), t.token) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let done = |v: &serde_json::Value| println!("{}", serde_json::to_string(v).unwrap_or_default());
    match command {
        SuppressionCommand::List {
            sender_domain,
            limit,
            cursor,
        } => {
            let mut q = vec![format!("limit={limit}")];
            for (k, v) in [("sender_domain", sender_domain), ("cursor", cursor)] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", encode(&v)));
                }
            }
            ctl::run(
                &target,
                "GET",
                &format!("/api/v1/suppressions?{}", q.join("&")),
                None,
                t.json,
                ctl::print_suppressions,
            )
        }
        SuppressionCommand::Add {
            address,
            sender_domain,
            reason,
            bulk_only,
        } => ctl::run(
            &target,
            "POST",
            "/api/v1/suppressions",
            Some(
                serde_json::json!({"address": address, "sender_domain": sender_domain, "reason": reason,
                "lanes": if bulk_only { "bulk" } else { "all" }}),
            ),
            t.json,
            done,
        ),
        SuppressionCommand::Remove {
            address,
            sender_domain,
        } => ctl::run(
            &target,
            "DELETE",
            &format!(
                "/api/v1/suppressions?address={}&sender_domain={}",
                encode(&address),
                encode(&sender_domain)
            ),
            None,
            t.json,
            done,
        ),
    }
}

fn queue(t: TargetArgs, command: QueueCommand) -> ExitCode {
    let target = match ctl::Target::new(t.config.as_deref(), t.url.as_deref(), t.token) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = t.json;
    let done = |v: &serde_json::Value| println!("{}", serde_json::to_string(v).unwrap_or_default());
    match command {
        QueueCommand::Stats => ctl::run(
            &target,
            "GET",
            "/api/v1/queue",
            None,
            json,
            ctl::print_stats,
        ),
        QueueCommand::List {
            lane,
            domain,
            sender,
            state,
            limit,
            cursor,
        } => {
            let mut q = vec![format!("limit={limit}")];
            if let Some(l) = lane {
                q.push(format!("lane={l}"));
            }
            for (k, v) in [
                ("domain", domain),
                ("sender", sender),
                ("state", state),
                ("cursor", cursor),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", encode(&v)));
                }
            }
            ctl::run(
                &target,
                "GET",
                &format!("/api/v1/queue/messages?{}", q.join("&")),
                None,
                json,
                ctl::print_list,
            )
        }
        QueueCommand::Show { id } => ctl::run(
            &target,
            "GET",
            &format!("/api/v1/messages/{}", encode(&id)),
            None,
            json,
            ctl::print_detail,
        ),
        QueueCommand::Delete { id, bounce } => ctl::run(
            &target,
            "DELETE",
            &format!("/api/v1/messages/{}?bounce={bounce}", encode(&id)),
            None,
            json,
            done,
        ),
        QueueCommand::Retry { id } => ctl::run(
            &target,
            "POST",
            &format!("/api/v1/messages/{}/retry", encode(&id)),
            None,
            json,
            done,
        ),
        QueueCommand::SetPriority { id, priority } => ctl::run(
            &target,
            "POST",
            &format!("/api/v1/messages/{}/priority", encode(&id)),
            Some(serde_json::json!({"priority": priority})),
            json,
            ctl::print_detail,
        ),
        QueueCommand::Flush => ctl::run(&target, "POST", "/api/v1/queue/flush", None, json, done),
        QueueCommand::Suspend { domain } => ctl::run(
            &target,
            "POST",
            &format!("/api/v1/destinations/{}/suspend", encode(&domain)),
            None,
            json,
            done,
        ),
        QueueCommand::Resume { domain } => ctl::run(
            &target,
            "POST",
            &format!("/api/v1/destinations/{}/resume", encode(&domain)),
            None,
            json,
            done,
        ),
    }
}

/// Percent-encodes a path or query component.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
