//! `laneway init [DIR] [--domain D]`: a configuration that works at once,
//! without root — the embedded default's loopback listeners, a spool
//! under DIR, an API key (its token printed once), a bounce secret and,
//! with `--domain`, a DKIM key, the sender domain's bounce domain and the
//! DNS records to publish. Every other key follows as a comment.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use laneway_common::config::DkimAlgorithm;

/// The reference every generated file carries, as comments.
const REFERENCE: &str = include_str!("../../../etc/laneway.toml");

/// The DKIM selector `init` uses.
pub const SELECTOR: &str = "laneway";

/// What `init` made, for the caller to print.
#[derive(Debug)]
pub struct Made {
    /// The configuration file.
    pub config: PathBuf,
    /// The API token (shown once).
    pub token: String,
    /// DNS records to publish (with `--domain`).
    pub dns: Vec<String>,
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn random_hex(bytes: usize) -> String {
    let b: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    data_encoding::HEXLOWER.encode(&b)
}

/// Writes `dir/laneway.toml` and its secrets. Nothing that exists is
/// overwritten.
pub fn init(dir: &Path, domain: Option<&str>, hostname: &str) -> Result<Made, String> {
    let domain = domain
        .map(|d| laneway_common::domain::normalize(d).map_err(|e| format!("--domain: {e}")))
        .transpose()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = dir.join("laneway.toml");
    if config.exists() {
        return Err(format!(
            "{} exists; init never overwrites a configuration",
            config.display()
        ));
    }
    let at = |p: &Path, e: std::io::Error| format!("writing {}: {e}", p.display());
    let secret = dir.join("bounce.secret");
    write_new(&secret, format!("{}\n", random_hex(32)).as_bytes(), 0o600)
        .map_err(|e| at(&secret, e))?;
    let token = laneway_common::token::new_token();
    let hash = laneway_common::token::sha256_hex(&token);

    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Laneway configuration made by `laneway init`. Check it with\n\
         #   laneway check-config --config {cfg}\n\
         # run it with\n\
         #   laneway serve --config {cfg}\n\
         # The reference of every key follows at the end, commented out.\n",
        cfg = config.display()
    );
    let _ = writeln!(
        text,
        "[server]\nhostname = {hostname:?}\nspool_dir = {:?}\n",
        dir.join("spool").display().to_string()
    );
    let _ = writeln!(
        text,
        "[[listener]]\nname = \"smtp\"\nbind = \"127.0.0.1:2525\"\n\n\
         # HTTP submission and admin API; the token of this key was printed once by init.\n\
         [api]\nbind = \"127.0.0.1:8025\"\n\n\
         [[api.key]]\nname = \"admin\"\nsha256 = \"{hash}\"\nscopes = [\"send\", \"admin\"]\n\n\
         # Prometheus metrics, /healthz and /readyz.\n\
         [metrics]\nbind = \"127.0.0.1:9325\"\n\n\
         # The key of the signed bounce addresses (VERP).\n\
         [auth]\nbounce_secret_file = \"bounce.secret\"\n"
    );
    let mut dns = Vec::new();
    if let Some(d) = &domain {
        let keys = dir.join("dkim");
        std::fs::create_dir_all(&keys).map_err(|e| at(&keys, e))?;
        let key = keys.join(format!("{d}.{SELECTOR}.pem"));
        let (pem, txt) = laneway_auth::keygen(DkimAlgorithm::RsaSha256, d, SELECTOR)
            .map_err(|e| format!("making the DKIM key: {e}"))?;
        write_new(&key, pem.as_bytes(), 0o600).map_err(|e| at(&key, e))?;
        let bounce = format!("bounces.{d}");
        let _ = writeln!(
            text,
            "# Mail from {d}: bounces come back to {bounce} (SPF aligns for DMARC),\n\
             # the message is DKIM-signed with selector {SELECTOR}.\n\
             [[domain]]\nname = {d:?}\nbounce_domain = {bounce:?}\n\n\
             [[domain.dkim]]\nselector = \"{SELECTOR}\"\nkey = \"dkim/{d}.{SELECTOR}.pem\"\nalgorithm = \"rsa-sha256\"\n"
        );
        dns.push(format!("; DKIM key of {d}, selector {SELECTOR}"));
        dns.push(txt.trim_end().to_string());
        dns.push(format!("; returned mail for {d} comes back to this relay"));
        dns.push(format!("{bounce}. IN MX 10 {hostname}."));
        dns.push(format!(
            "; the addresses this relay sends from may use {bounce} as envelope sender"
        ));
        dns.push(format!("{bounce}. IN TXT \"v=spf1 a:{hostname} -all\""));
        dns.push("; DMARC: start with p=none and read the reports".to_string());
        dns.push(format!(
            "_dmarc.{d}. IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@{d}\""
        ));
        let records = dir.join("dns-records.txt");
        let mut body = dns.join("\n");
        body.push('\n');
        write_new(&records, body.as_bytes(), 0o644).map_err(|e| at(&records, e))?;
    }
    text.push_str(
        "\n# ===========================================================================\n\
         # Reference: every key with its default and meaning (etc/laneway.toml).\n\
         # ===========================================================================\n",
    );
    for line in REFERENCE.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            text.push_str(line);
        } else {
            text.push_str("# ");
            text.push_str(line);
        }
        text.push('\n');
    }
    write_new(&config, text.as_bytes(), 0o640).map_err(|e| at(&config, e))?;
    Ok(Made { config, token, dns })
}

/// `laneway init`: makes the files and says what to do next.
pub fn main(dir: &Path, domain: Option<&str>) -> ExitCode {
    let hostname = laneway_common::config::Server::default().hostname;
    match init(dir, domain, &hostname) {
        Ok(m) => {
            println!("wrote {}", m.config.display());
            println!(
                "API token (shown once; Laneway keeps only its SHA-256):\n  {}",
                m.token
            );
            if !m.dns.is_empty() {
                println!("\npublish these DNS records (also in dns-records.txt):");
                for r in &m.dns {
                    println!("  {r}");
                }
            }
            println!(
                "\nnext:\n  laneway check-config --config {c}\n  laneway serve --config {c}",
                c = m.config.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_configuration_passes_check_config() {
        let dir = tempfile::tempdir().unwrap();
        let made = init(
            &dir.path().join("lw"),
            Some("Example.COM"),
            "mx.example.com",
        )
        .unwrap();
        let loaded = laneway_common::Config::load(&made.config).unwrap();
        let c = &loaded.config;
        assert!(
            crate::config::deep_check(c).is_empty(),
            "{:?}",
            crate::config::deep_check(c)
        );
        assert_eq!(c.listeners[0].bind.to_string(), "127.0.0.1:2525");
        assert_eq!(c.api.as_ref().unwrap().bind.to_string(), "127.0.0.1:8025");
        assert!(c.server.spool_dir.ends_with("lw/spool"));
        assert_eq!(c.domains[0].name, "example.com");
        assert_eq!(
            c.domains[0].bounce_domain.as_deref(),
            Some("bounces.example.com")
        );
        // the token printed is the one the key accepts
        let key = &c.api.as_ref().unwrap().key[0];
        assert_eq!(key.sha256, laneway_common::token::sha256_hex(&made.token));
        assert!(
            made.dns
                .iter()
                .any(|r| r.starts_with("laneway._domainkey.example.com"))
        );
        assert!(
            made.dns
                .iter()
                .any(|r| r == "bounces.example.com. IN MX 10 mx.example.com.")
        );
        // the reference is there, commented out
        let text = std::fs::read_to_string(&made.config).unwrap();
        assert!(text.contains("# bind = \"0.0.0.0:25\""));
        // never overwritten
        assert!(init(&dir.path().join("lw"), None, "x").is_err());
    }

    #[test]
    fn without_a_domain_there_is_no_dkim() {
        let dir = tempfile::tempdir().unwrap();
        let made = init(dir.path(), None, "relay.test").unwrap();
        let c = laneway_common::Config::load(&made.config).unwrap().config;
        assert!(c.domains.is_empty());
        assert!(made.dns.is_empty());
        assert!(crate::config::deep_check(&c).is_empty());
    }
}
