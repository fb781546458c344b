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

use crate::cli::{QueueCommand, SuppressionCommand, TargetArgs};
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

/// `laneway suppressions …`: one API call per verb.
pub fn suppressions(t: TargetArgs, command: SuppressionCommand) -> ExitCode {
    let target = match Target::new(t.config.as_deref(), t.url.as_deref(), t.token) {
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
            run(
                &target,
                "GET",
                &format!("/api/v1/suppressions?{}", q.join("&")),
                None,
                t.json,
                crate::print::print_suppressions,
            )
        }
        SuppressionCommand::Add {
            address,
            sender_domain,
            reason,
            bulk_only,
        } => run(
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
        } => run(
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

/// `laneway queue …`: one API call per verb.
pub fn queue(t: TargetArgs, command: QueueCommand) -> ExitCode {
    let target = match Target::new(t.config.as_deref(), t.url.as_deref(), t.token) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = t.json;
    let done = |v: &serde_json::Value| println!("{}", serde_json::to_string(v).unwrap_or_default());
    match command {
        QueueCommand::Stats => run(
            &target,
            "GET",
            "/api/v1/queue",
            None,
            json,
            crate::print::print_stats,
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
            run(
                &target,
                "GET",
                &format!("/api/v1/queue/messages?{}", q.join("&")),
                None,
                json,
                crate::print::print_list,
            )
        }
        QueueCommand::Show { id } => run(
            &target,
            "GET",
            &format!("/api/v1/messages/{}", encode(&id)),
            None,
            json,
            crate::print::print_detail,
        ),
        QueueCommand::Delete { id, bounce } => run(
            &target,
            "DELETE",
            &format!("/api/v1/messages/{}?bounce={bounce}", encode(&id)),
            None,
            json,
            done,
        ),
        QueueCommand::Retry { id } => run(
            &target,
            "POST",
            &format!("/api/v1/messages/{}/retry", encode(&id)),
            None,
            json,
            done,
        ),
        QueueCommand::SetPriority { id, priority } => run(
            &target,
            "POST",
            &format!("/api/v1/messages/{}/priority", encode(&id)),
            Some(serde_json::json!({"priority": priority})),
            json,
            crate::print::print_detail,
        ),
        QueueCommand::Flush => run(&target, "POST", "/api/v1/queue/flush", None, json, done),
        QueueCommand::Suspend { domain } => run(
            &target,
            "POST",
            &format!("/api/v1/destinations/{}/suspend", encode(&domain)),
            None,
            json,
            done,
        ),
        QueueCommand::Resume { domain } => run(
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
