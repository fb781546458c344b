//! Outbound delivery end to end: a real DNS server and SMTP sinks on
//! loopback, the real daemon in between. Helpers here; the tests by
//! subject in the modules.

mod automation;
mod dane;
mod dns;
mod lanes;
mod mta_sts;
mod pools;
mod requiretls;
mod routing;
mod shaping;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use laneway_bench::sink::{Event, Sink, SinkConfig};
use laneway_tests::dns::TestDns;
use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::{Daemon, eventually};

/// A relay with a trusted gateway listener, fast retries and an event log,
/// delivering to `port` on whatever the DNS server says.
pub(crate) fn relay(dns: &TestDns, port: u16, extra: &str) -> String {
    relay_ob(dns, port, "", extra)
}

/// [`relay`] with extra `[outbound]` lines.
pub(crate) fn relay_ob(dns: &TestDns, port: u16, outbound: &str, extra: &str) -> String {
    format!(
        r#"
[[listener]]
name = "in"
bind = "127.0.0.1:0"
trust_priority = true
[relay]
trusted_networks = ["127.0.0.1/32"]
[queue]
retry_base = "200ms"
retry_max = "1s"
[outbound]
port = {port}
idle_timeout = "300ms"
connect_timeout = "2s"
{outbound}
[log]
events = "{{dir}}/events.jsonl"
{}
{extra}
"#,
        dns.config()
    )
}

pub(crate) fn sink(cfg: SinkConfig) -> Sink {
    Sink::spawn(cfg)
}

/// A sink on `ip` and the same port as `other` (so one `[outbound] port` serves both).
pub(crate) fn sink_beside(other: &Sink, ip: &str, mut cfg: SinkConfig) -> Sink {
    cfg.bind = Some(SocketAddr::new(ip.parse().unwrap(), other.addr.port()));
    sink(cfg)
}

pub(crate) fn reply(
    f: impl Fn(&Event<'_>) -> Option<String> + Send + Sync + 'static,
) -> Option<laneway_bench::sink::ReplyFn> {
    Some(Arc::new(f))
}

/// A shaping file in a directory of its own (kept while this lives), and
/// the `[shaping]` table that loads it.
pub(crate) struct ShapingFile {
    _dir: tempfile::TempDir,
    pub(crate) path: std::path::PathBuf,
    pub(crate) config: String,
}

/// A shaping file holding `text`.
pub(crate) fn shaping_file(text: &str) -> ShapingFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shaping.toml");
    std::fs::write(&path, text).unwrap();
    let config = format!("[shaping]\nfiles = [\"{}\"]\n", path.display());
    ShapingFile {
        _dir: dir,
        path,
        config,
    }
}

/// Submits one message through the trusted listener; returns its queue id.
pub(crate) fn submit(d: &Daemon, from: &str, to: &[&str], lane: u8, body: &str) -> String {
    let mut c = Client::hello(d.addr("in"));
    let content = format!(
        "From: {from}\r\nSubject: lane {lane}\r\nX-Priority-Queue: {lane}\r\nX-Bench-Lane: {lane}\r\n\r\n{body}"
    );
    let r = c.send_mail(from, to, &content);
    queued_id(&r)
}

/// The events of delivery attempts (receptions left out) in
/// `[log] events`, in order.
pub(crate) fn events(d: &Daemon) -> Vec<serde_json::Value> {
    std::fs::read_to_string(d.dir().join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("event JSON"))
        .filter(|e| e["type"] != "reception")
        .collect()
}

pub(crate) fn wait_events(
    d: &Daemon,
    what: &str,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    eventually(what, || pred(&events(d)));
    events(d)
}

pub(crate) fn text(m: &laneway_bench::sink::Message) -> String {
    String::from_utf8_lossy(&m.data).into_owned()
}
