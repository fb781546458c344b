//! Local tools that need no daemon: `laneway dkim keygen` and `laneway
//! api-key new`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// `laneway dkim keygen`: writes the private key (PEM, 0600) and prints the TXT record.
pub fn dkim_keygen(domain: &str, selector: &str, algorithm: &str, out: &Path) -> ExitCode {
    use laneway_common::config::DkimAlgorithm;
    use std::os::unix::fs::OpenOptionsExt;
    let alg = match algorithm {
        "rsa-sha256" => DkimAlgorithm::RsaSha256,
        "ed25519-sha256" => DkimAlgorithm::Ed25519Sha256,
        other => {
            eprintln!("error: --algorithm {other:?}: use rsa-sha256 or ed25519-sha256");
            return ExitCode::FAILURE;
        }
    };
    let (pem, txt) = match laneway_auth::keygen(alg, domain, selector) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .and_then(|mut f| f.write_all(pem.as_bytes()).and_then(|_| f.sync_all()));
    if let Err(e) = file {
        eprintln!(
            "error: writing {}: {e} (an existing key is never overwritten)",
            out.display()
        );
        return ExitCode::FAILURE;
    }
    eprintln!(
        "private key written to {} (mode 0600); publish this record:",
        out.display()
    );
    println!("{txt}");
    ExitCode::SUCCESS
}

/// `laneway api-key new --name N`: a fresh token and its configuration lines.
pub fn new_api_key(name: &str, scopes: &[String]) -> ExitCode {
    for s in scopes {
        if s != "send" && s != "admin" {
            eprintln!("error: unknown scope {s:?} (send, admin)");
            return ExitCode::FAILURE;
        }
    }
    let token = laneway_common::token::new_token();
    let hash = laneway_common::token::sha256_hex(&token);
    let scopes: Vec<String> = scopes.iter().map(|s| format!("{s:?}")).collect();
    println!("token: {token}");
    println!("(shown once; Laneway keeps only its SHA-256)\n");
    println!(
        "[[api.key]]\nname = {name:?}\nsha256 = \"{hash}\"\nscopes = [{}]",
        scopes.join(", ")
    );
    ExitCode::SUCCESS
}
