//! `laneway queue …` and `laneway api-key new`: the operator's commands.
//! `queue` talks to the running daemon like `postqueue`: over the control
//! socket in the spool directory (file permissions are the authority), or
//! over HTTP to `--url` with `--token`. A deliberately small HTTP/1.1
//! client: one request per connection, `Connection: close`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::serve::CONTROL_SOCKET;

/// Where the daemon's API is.
pub enum Target {
    /// The control socket at this path.
    Socket(std::path::PathBuf),
    /// `http://host:port` with a bearer token.
    Http { addr: String, token: Option<String> },
}

impl Target {
    /// The target for the command-line options.
    pub fn new(
        config: Option<&Path>,
        url: Option<&str>,
        token: Option<String>,
    ) -> Result<Target, String> {
        if let Some(u) = url {
            let addr = u
                .strip_prefix("http://")
                .ok_or_else(|| format!("--url {u:?}: only http:// URLs are supported (use the control socket locally)"))?
                .trim_end_matches('/')
                .to_string();
            return Ok(Target::Http {
                addr,
                token: token.or_else(|| std::env::var("LANEWAY_TOKEN").ok()),
            });
        }
        let loaded = crate::config::load(config).map_err(|e| e.to_string())?;
        Ok(Target::Socket(
            loaded.config.server.spool_dir.join(CONTROL_SOCKET),
        ))
    }

    /// Sends a request; returns the status and the JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: laneway\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        if let Target::Http { token: Some(t), .. } = self {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if !body.is_empty() {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        let raw = match self {
            Target::Socket(p) => {
                let mut s = std::os::unix::net::UnixStream::connect(p).map_err(|e| {
                    format!("cannot reach the daemon at {}: {e} (is laneway running with this --config?)", p.display())
                })?;
                s.set_read_timeout(Some(Duration::from_secs(60))).ok();
                exchange(&mut s, req.as_bytes())?
            }
            Target::Http { addr, .. } => {
                let mut s = std::net::TcpStream::connect(addr)
                    .map_err(|e| format!("cannot reach {addr}: {e}"))?;
                s.set_read_timeout(Some(Duration::from_secs(60))).ok();
                exchange(&mut s, req.as_bytes())?
            }
        };
        parse_response(&raw)
    }
}

fn exchange<S: Read + Write>(s: &mut S, req: &[u8]) -> Result<Vec<u8>, String> {
    s.write_all(req)
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok(out)
}

/// Parses an HTTP/1.1 response (Content-Length, chunked, or until close).
fn parse_response(raw: &[u8]) -> Result<(u16, Value), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed HTTP status line")?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
            let n = usize::from_str_radix(String::from_utf8_lossy(&rest[..i]).trim(), 16)
                .map_err(|_| "bad chunk")?;
            if n == 0 {
                break;
            }
            let start = i + 2;
            out.extend_from_slice(rest.get(start..start + n).ok_or("truncated chunk")?);
            rest = rest.get(start + n + 2..).unwrap_or(&[]);
        }
        body = out;
    }
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    Ok((status, v))
}

/// Runs a request and prints the result (JSON, or through `human`).
pub fn run(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<Value>,
    json: bool,
    human: impl Fn(&Value),
) -> ExitCode {
    match target.request(method, path, body.as_ref()) {
        Ok((s, v)) if (200..300).contains(&s) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                human(&v);
            }
            ExitCode::SUCCESS
        }
        Ok((s, v)) => {
            let msg = v["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            eprintln!("error ({s}): {msg}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Human form of `GET /api/v1/queue`.
pub fn print_stats(v: &Value) {
    println!(
        "{:>4}  {:>10}  {:>10}  {:>12}",
        "lane", "messages", "deferred", "oldest"
    );
    for l in v["lanes"].as_array().into_iter().flatten().rev() {
        let age = l["oldest_age_seconds"]
            .as_f64()
            .map(humantime)
            .unwrap_or_else(|| "-".into());
        println!(
            "{:>4}  {:>10}  {:>10}  {:>12}",
            l["lane"], l["count"], l["deferred"], age
        );
    }
    println!(
        "total {}  ready {}  deferred {}",
        v["total"], v["ready"], v["deferred"]
    );
    let dests = v["destinations"].as_array().cloned().unwrap_or_default();
    if !dests.is_empty() {
        println!(
            "\n{:<48} {:>8} {:>6} {:>10}  lanes",
            "destination", "ready", "conns", "health"
        );
        for d in dests {
            let lanes: Vec<String> = d["lanes"]
                .as_object()
                .map(|m| m.iter().rev().map(|(k, n)| format!("{k}:{n}")).collect())
                .unwrap_or_default();
            let health = if d["suspended"] == true {
                "suspended".to_string()
            } else {
                d["health"].as_str().unwrap_or("").to_string()
            };
            println!(
                "{:<48} {:>8} {:>6} {:>10}  {}",
                d["site"].as_str().unwrap_or(""),
                d["ready"],
                d["connections"],
                health,
                lanes.join(" ")
            );
        }
    }
}

fn humantime(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// Human form of a message list page.
pub fn print_list(v: &Value) {
    println!(
        "{:<16}  {:>4}  {:<9}  {:>3}  {:<20}  {:<30}  recipients",
        "id", "lane", "state", "try", "queued", "from"
    );
    for m in v["messages"].as_array().into_iter().flatten() {
        let rcpts: Vec<&str> = m["recipients"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str())
            .collect();
        println!(
            "{:<16}  {:>4}  {:<9}  {:>3}  {:<20}  {:<30}  {}",
            m["id"].as_str().unwrap_or(""),
            m["lane"],
            m["state"].as_str().unwrap_or(""),
            m["attempts"],
            m["queued_at"].as_str().unwrap_or(""),
            m["from"]
                .as_str()
                .map(|f| if f.is_empty() { "<>" } else { f })
                .unwrap_or(""),
            rcpts.join(", ")
        );
    }
    if let Some(c) = v["next_cursor"].as_str() {
        println!("(more: --cursor {c})");
    }
}

/// Human form of a message in detail.
pub fn print_detail(v: &Value) {
    for k in [
        "id",
        "lane",
        "state",
        "from",
        "queued_at",
        "attempts",
        "next_attempt",
        "size",
        "last_reply",
    ] {
        if !v[k].is_null() {
            println!(
                "{k:<13} {}",
                v[k].as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v[k].to_string())
            );
        }
    }
    println!("recipients:");
    for r in v["recipients"].as_array().into_iter().flatten() {
        println!(
            "  {:<40} {:<10} tries={} {}",
            r["address"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or(""),
            r["attempts"],
            r["last_reply"].as_str().unwrap_or("")
        );
    }
}

/// Human form of a suppression list page.
pub fn print_suppressions(v: &Value) {
    println!(
        "{:<40}  {:<24}  {:<5}  {:<20}  reason",
        "address", "sender domain", "lanes", "since"
    );
    for s in v["suppressions"].as_array().into_iter().flatten() {
        println!(
            "{:<40}  {:<24}  {:<5}  {:<20}  {}",
            s["address"].as_str().unwrap_or(""),
            s["sender_domain"].as_str().unwrap_or(""),
            s["lanes"].as_str().unwrap_or(""),
            s["since"].as_str().unwrap_or(""),
            s["reason"].as_str().unwrap_or("")
        );
    }
    if let Some(c) = v["next_cursor"].as_str() {
        println!("(more: --cursor {c})");
    }
}

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
    let token = format!("lw_{:032x}{:032x}", rand_u128(), rand_u128());
    let hash = laneway_api::keys::sha256_hex(&token);
    let scopes: Vec<String> = scopes.iter().map(|s| format!("{s:?}")).collect();
    println!("token: {token}");
    println!("(shown once; Laneway keeps only its SHA-256)\n");
    println!(
        "[[api.key]]\nname = {name:?}\nsha256 = \"{hash}\"\nscopes = [{}]",
        scopes.join(", ")
    );
    ExitCode::SUCCESS
}

fn rand_u128() -> u128 {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    u128::from_le_bytes(b)
}
