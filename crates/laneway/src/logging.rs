//! Log set-up: plain text (or JSON) lines on stderr (those that one step
//! logs together in one write: `laneway_common::logline`), colours only on
//! a terminal, level from `RUST_LOG` or `[log] level`.

use std::io::IsTerminal;

use laneway_common::config::{Log, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the process-wide subscriber.
pub fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // stderr; the lines of one step (a message's acceptance) in one write
        .with_writer(|| laneway_common::logline::Stderr)
        .with_ansi(ansi)
        .with_target(false);
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
