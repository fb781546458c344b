//! `laneway`: the daemon and its command-line tools (DESIGN §5). This file
//! only dispatches the command line ([`cli`]); the work lives in the
//! library crates, in [`serve`] and in the tool modules.

mod admin;
mod cli;
mod cluster;
mod config;
mod ctl;
mod domain_check;
mod drain;
mod events;
mod ingest;
mod init;
mod logging;
mod metrics;
#[cfg(test)]
mod packaged;
mod print;
mod sender_auth;
mod serve;
mod table;
mod tools;
mod top;

use std::process::ExitCode;

use clap::Parser;

use cli::{ApiKeyCommand, Cli, Command, DkimCommand, SpoolCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Init { dir, domain } => init::main(&dir, domain.as_deref()),
        Command::Serve { config } => serve::main(config),
        Command::CheckConfig { config } => config::check(config.as_deref()),
        Command::Spool {
            command: SpoolCommand::Stats { config, json },
        } => config::spool_stats(config.as_deref(), json),
        Command::HashPassword => config::hash_password(),
        Command::Queue { target, command } => ctl::queue(target, command),
        Command::Top { target } => top::main(target),
        Command::ApiKey {
            command: ApiKeyCommand::New { name, scopes },
        } => tools::new_api_key(&name, &scopes),
        Command::Suppressions { target, command } => ctl::suppressions(target, command),
        Command::Shaping { target, command } => ctl::shaping(target, command),
        Command::Domain {
            target,
            command: cli::DomainCommand::Check { domain },
        } => ctl::domain_check(target, &domain),
        Command::Dkim {
            command:
                DkimCommand::Keygen {
                    domain,
                    selector,
                    algorithm,
                    out,
                },
        } => tools::dkim_keygen(&domain, &selector, &algorithm, &out),
    }
}
