//! Loading the configuration (file or embedded default) and the offline
//! commands built on it: `check-config`, `spool stats`, `hash-password`.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use laneway_common::Config;
use laneway_common::config::{ConfigErrors, Loaded};

/// The embedded default configuration.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Loads `path`, or the embedded default when there is none.
pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigErrors> {
    match path {
        Some(p) => Config::load(p),
        None => Config::from_toml(DEFAULT_CONFIG, Path::new(".")),
    }
}

/// Everything check-config verifies beyond the schema: TLS material loads,
/// password hashes parse.
pub fn deep_check(config: &Config) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = laneway_inbound::Settings::new(config) {
        errors.push(e.to_string());
    }
    if let Err(e) = laneway_outbound::TlsClients::new(config.outbound.ca_file.as_deref()) {
        errors.push(e);
    }
    if let Err(e) = laneway_auth::Policy::from_config(config) {
        errors.extend(e);
    }
    for r in &config.routes {
        if let Err(e) = laneway_outbound::lookup::parse_via(&r.via, config.outbound.port) {
            errors.push(format!("[[route]] {:?}: {e}", r.domain));
        }
        if let Some(f) = &r.auth_password_file
            && let Err(e) = std::fs::read(f)
        {
            errors.push(format!(
                "[[route]] {:?}: auth_password_file {}: {e}",
                r.domain,
                f.display()
            ));
        }
    }
    if let Some(p) = &config.log.events
        && let Some(dir) = p.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        errors.push(format!(
            "[log] events {}: directory {} does not exist",
            p.display(),
            dir.display()
        ));
    }
    errors
}

/// `laneway check-config`
pub fn check(path: Option<&Path>) -> ExitCode {
    let name = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "embedded default".into());
    match load(path) {
        Ok(loaded) => {
            for w in loaded
                .warnings
                .iter()
                .chain(&laneway_auth::alignment_warnings(&loaded.config))
            {
                eprintln!("warning: {w}");
            }
            let errors = deep_check(&loaded.config);
            if errors.is_empty() {
                println!("{name}: configuration OK");
                ExitCode::SUCCESS
            } else {
                for e in &errors {
                    eprintln!("error: {e}");
                }
                eprintln!("{name}: {} problem(s)", errors.len());
                ExitCode::FAILURE
            }
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("{name}: {} problem(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

/// `laneway spool stats`
pub fn spool_stats(path: Option<&Path>, json: bool) -> ExitCode {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = &loaded.config.server.spool_dir;
    match laneway_spool::lane_counts(dir) {
        Ok(c) => {
            if json {
                println!("{}", serde_json::to_string(&c).expect("counts serialize"));
            } else {
                println!("spool {}", dir.display());
                println!("{:>5}  {:>10}", "lane", "messages");
                for (lane, n) in c.lanes.iter().rev() {
                    println!("{lane:>5}  {n:>10}");
                }
                println!("{:>5}  {:>10}", "total", c.total);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot read spool {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// `laneway hash-password`: reads a password from stdin, prints its argon2id PHC string.
pub fn hash_password() -> ExitCode {
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        eprintln!("cannot read the password from stdin");
        return ExitCode::FAILURE;
    }
    let password = input.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("empty password");
        return ExitCode::FAILURE;
    }
    println!(
        "{}",
        laneway_inbound::auth::hash_password(password.as_bytes())
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented example must be a valid configuration.
    #[test]
    fn the_example_configuration_loads() {
        let text = include_str!("../../../etc/laneway.toml");
        let loaded = Config::from_toml(text, Path::new("/etc/laneway")).unwrap();
        assert_eq!(loaded.config.listeners[0].name, "mx");
        assert!(deep_check(&loaded.config).is_empty());
    }

    #[test]
    fn the_embedded_default_loads() {
        let loaded = load(None).unwrap();
        assert_eq!(
            loaded.config.listeners[0].bind.to_string(),
            "127.0.0.1:2525"
        );
        assert_eq!(loaded.config.server.spool_dir, Path::new("./spool"));
    }
}
