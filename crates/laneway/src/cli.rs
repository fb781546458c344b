//! The command line (DESIGN §5): every verb and flag, with clap. `main.rs`
//! dispatches; the work is elsewhere.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Laneway: the SMTP relay where a password reset never waits behind a newsletter.
#[derive(Parser, Debug)]
#[command(name = "laneway", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a configuration that works at once (loopback ports, a spool
    /// under DIR, an API key, a bounce secret; with --domain a DKIM key and
    /// the DNS records to publish).
    Init {
        /// Where to write laneway.toml and its secrets.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// A sender domain to sign and give a bounce domain.
        #[arg(long)]
        domain: Option<String>,
    },
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
    /// A live view of the running daemon's lanes, refreshed every second
    /// (like top): queued/ready/deferred, in/out rates and oldest age per
    /// lane, the busiest destinations, holds and shaping rules; keys 0-9
    /// show a lane, s/r suspend and resume a destination, q quits.
    Top {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// The suppression list of the running daemon.
    Suppressions {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: SuppressionCommand,
    },
    /// Provider shaping of the running daemon.
    Shaping {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: ShapingCommand,
    },
    /// Sender domains of the running daemon.
    Domain {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: DomainCommand,
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
pub struct TargetArgs {
    /// Configuration file (finds the control socket in the spool directory).
    #[arg(short, long, global = true)]
    pub config: Option<PathBuf>,
    /// A remote API instead of the local control socket, e.g. http://10.0.0.5:8025.
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Bearer token for --url (default: $LANEWAY_TOKEN).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Messages per lane, oldest ages, busiest destinations.
    Stats {
        /// Every node of the cluster, side by side.
        #[arg(long)]
        cluster: bool,
    },
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
    /// Hand every queued message to another node (to retire this one):
    /// each is removed here only once the other node has spooled it.
    Drain {
        /// The other node's API, e.g. http://10.0.0.2:8025.
        #[arg(long)]
        to: String,
        /// An API key of the other node with the admin scope (default:
        /// $LANEWAY_DRAIN_KEY).
        #[arg(long)]
        key: Option<String>,
        /// Start it and return; `laneway queue drain-status` follows it.
        #[arg(long)]
        no_wait: bool,
    },
    /// How the last drain went.
    DrainStatus,
    /// The whole story of a message (by queue id) or of a recipient (by
    /// address): received, each attempt, delivered or bounced — also after
    /// it left the queue (kept for [events] history).
    Trace {
        /// A queue id, or a recipient address.
        target: String,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum ShapingCommand {
    /// The providers (matched by MX host suffix) and domains of the shaping
    /// files, with their effective limits, and the automation rules
    /// holding a provider now.
    Show,
    /// End the automation rule holding a provider now (its lanes get the
    /// normal limits at once; on every node with [cluster]).
    Clear {
        /// The provider (or shaping domain), as `shaping show` lists it.
        provider: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DomainCommand {
    /// Is the DNS of a [[domain]] right for this relay? Bounce MX, SPF
    /// for every egress address, DKIM keys, DMARC alignment, PTR/FCrDNS
    /// against the HELO names, MTA-STS and TLS-RPT: each ok, wrong (with
    /// the record that would be right) or missing. Exit status 1 if any
    /// required check is not ok.
    Check {
        /// The sender domain.
        domain: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SuppressionCommand {
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
pub enum DkimCommand {
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
pub enum ApiKeyCommand {
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
pub enum SpoolCommand {
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
