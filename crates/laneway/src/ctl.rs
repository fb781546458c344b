//! `laneway queue …` and `laneway api-key new`: the operator's commands.
//! `queue` talks to the running daemon like `postqueue`: over the control
//! socket in the spool directory (file permissions are the authority), or
//! over HTTP to `--url` with `--token`, with the one HTTP client of
//! `laneway_common::http`.

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
    Http {
        /// `host:port`.
        addr: String,
        /// The bearer token.
        token: Option<String>,
    },
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
        self.request_within(method, path, body, Duration::from_secs(60))
    }

    /// [`Target::request`] that gives up after `timeout`.
    pub fn request_within(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<(u16, Value), String> {
        use laneway_common::http::{Endpoint, Request, blocking, request};
        use std::net::ToSocketAddrs;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = match self {
            Target::Http { token: Some(t), .. } => Some(format!("Bearer {t}")),
            _ => None,
        };
        let mut headers = vec![("accept", "application/json")];
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let (ep, host) = match self {
            Target::Socket(p) => (Endpoint::Unix(p.clone()), "laneway".to_string()),
            Target::Http { addr, .. } => {
                let sa = addr
                    .to_socket_addrs()
                    .map_err(|e| format!("cannot resolve {addr}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{addr} has no address"))?;
                (Endpoint::Tcp(sa), addr.clone())
            }
        };
        let req = Request {
            method,
            path,
            headers: &headers,
            body: body.into_bytes(),
        };
        let r = blocking(request(&ep, &host, &req, 64 << 20, timeout)).map_err(|e| match self {
            Target::Socket(p) => format!(
                "cannot reach the daemon at {}: {e} (is laneway running with this --config?)",
                p.display()
            ),
            Target::Http { addr, .. } => format!("cannot reach {addr}: {e}"),
        })?;
        Ok((r.status, r.json()))
    }
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
    match fetch(target, method, path, body) {
        Some(v) => {
            show(&v, json, human);
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

/// One API call: the answer of a 2xx, else `None` once the error is printed.
fn fetch(target: &Target, method: &str, path: &str, body: Option<Value>) -> Option<Value> {
    match target.request(method, path, body.as_ref()) {
        Ok((s, v)) if (200..300).contains(&s) => Some(v),
        Ok((s, v)) => {
            let msg = v["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            eprintln!("error ({s}): {msg}");
            None
        }
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

fn show(v: &Value, json: bool, human: impl Fn(&Value)) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        human(v);
    }
}

/// The daemon `t` names (`--config`, `--url`, `--token`); `None` once
/// the error is printed.
pub fn target_of(t: &TargetArgs) -> Option<Target> {
    match Target::new(t.config.as_deref(), t.url.as_deref(), t.token.clone()) {
        Ok(x) => Some(x),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

/// `laneway domain check <domain>`: exit status 1 when a required check
/// is not ok (so that a provisioning script can wait for the DNS).
pub fn domain_check(t: TargetArgs, domain: &str) -> ExitCode {
    let Some(target) = target_of(&t) else {
        return ExitCode::FAILURE;
    };
    let path = format!("/api/v1/domains/{}/check", encode(domain));
    let Some(v) = fetch(&target, "GET", &path, None) else {
        return ExitCode::FAILURE;
    };
    show(&v, t.json, crate::print::print_domain_check);
    let failed = v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["status"] != "ok" && c["optional"] != true);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `laneway suppressions …`: one API call per verb.
pub fn suppressions(t: TargetArgs, command: SuppressionCommand) -> ExitCode {
    let Some(target) = target_of(&t) else {
        return ExitCode::FAILURE;
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

/// `laneway shaping show|clear`.
pub fn shaping(t: TargetArgs, command: crate::cli::ShapingCommand) -> ExitCode {
    let Some(target) = target_of(&t) else {
        return ExitCode::FAILURE;
    };
    match command {
        crate::cli::ShapingCommand::Show => run(
            &target,
            "GET",
            "/api/v1/shaping",
            None,
            t.json,
            crate::print::print_shaping,
        ),
        crate::cli::ShapingCommand::Clear { provider } => run(
            &target,
            "DELETE",
            &format!("/api/v1/shaping/{}", encode(&provider)),
            None,
            t.json,
            |v| {
                println!(
                    "cleared the shaping rule holding {}",
                    v["provider"].as_str().unwrap_or("?")
                )
            },
        ),
    }
}

/// `laneway queue …`: one API call per verb.
pub fn queue(t: TargetArgs, command: QueueCommand) -> ExitCode {
    let Some(target) = target_of(&t) else {
        return ExitCode::FAILURE;
    };
    let json = t.json;
    let done = |v: &serde_json::Value| println!("{}", serde_json::to_string(v).unwrap_or_default());
    match command {
        QueueCommand::Stats { cluster: false } => run(
            &target,
            "GET",
            "/api/v1/queue",
            None,
            json,
            crate::print::print_stats,
        ),
        QueueCommand::Stats { cluster: true } => run(
            &target,
            "GET",
            "/api/v1/cluster",
            None,
            json,
            crate::print::print_cluster,
        ),
        QueueCommand::Drain { to, key, no_wait } => drain(&target, to, key, no_wait, json),
        QueueCommand::Trace {
            target: what,
            limit,
        } => {
            let path = if what.parse::<laneway_common::MessageId>().is_ok() {
                format!("/api/v1/messages/{}/events?limit={limit}", encode(&what))
            } else {
                format!("/api/v1/events?recipient={}&limit={limit}", encode(&what))
            };
            run(&target, "GET", &path, None, json, crate::print::print_trace)
        }
        QueueCommand::DrainStatus => run(
            &target,
            "GET",
            "/api/v1/queue/drain",
            None,
            json,
            crate::print::print_drain,
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

/// `laneway queue drain`: starts the drain, then follows it until it ends.
fn drain(target: &Target, to: String, key: Option<String>, no_wait: bool, json: bool) -> ExitCode {
    let Some(key) = key.or_else(|| std::env::var("LANEWAY_DRAIN_KEY").ok()) else {
        eprintln!("error: --key (or $LANEWAY_DRAIN_KEY): an admin API key of the node at {to}");
        return ExitCode::FAILURE;
    };
    let body = serde_json::json!({"to": to, "key": key});
    let started = run(
        target,
        "POST",
        "/api/v1/queue/drain",
        Some(body),
        json,
        |_| {},
    );
    if no_wait || started != ExitCode::SUCCESS {
        return started;
    }
    loop {
        std::thread::sleep(Duration::from_millis(500));
        match target.request("GET", "/api/v1/queue/drain", None) {
            Ok((200, v)) => {
                if v["state"] != "running" {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    } else {
                        crate::print::print_drain(&v);
                    }
                    return if v["state"] == "done" {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    };
                }
                if !json {
                    eprintln!("moved {}  remaining {}", v["moved"], v["remaining"]);
                }
            }
            Ok((s, v)) => {
                eprintln!("error ({s}): {v}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}

/// Percent-encodes a path or query component.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
