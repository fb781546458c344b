//! An in-memory door for running sessions without a spool: used by the
//! session tests and the `cargo fuzz` target (`fuzz/`), which feeds
//! arbitrary bytes to a session and checks what comes back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use laneway_common::config::Config;
use laneway_common::id::IdGenerator;
use laneway_common::ingest::BoxFuture;
use laneway_common::{Accepted, Ingest, IngestError, Lifecycle, RecipientVerdict, Submission};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::session::Session;
use crate::session::state::Conn;
use crate::{Settings, Shared};

/// Keeps submissions in memory. Recipients starting with `suppressed@` are
/// refused; [`MemoryIngest::set_full`] makes it answer as a full spool.
#[derive(Default)]
pub struct MemoryIngest {
    got: Mutex<Vec<Submission>>,
    full: AtomicBool,
    ids: IdGenerator,
}

impl MemoryIngest {
    /// What was submitted so far.
    pub fn submissions(&self) -> Vec<Submission> {
        self.got.lock().expect("not poisoned").clone()
    }

    /// Makes admission fail as if the spool were full.
    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::Relaxed);
    }
}

impl Ingest for MemoryIngest {
    fn admit(&self) -> Result<(), IngestError> {
        if self.full.load(Ordering::Relaxed) {
            Err(IngestError::SpoolFull)
        } else {
            Ok(())
        }
    }

    fn check_recipient<'a>(
        &'a self,
        _sender: &'a str,
        rcpt: &'a str,
    ) -> BoxFuture<'a, RecipientVerdict> {
        laneway_common::ingest::test_verdict(rcpt)
    }

    fn submit(&self, s: Submission) -> BoxFuture<'_, Result<Accepted, IngestError>> {
        Box::pin(async move {
            let lane = s.lane.fallback;
            self.got.lock().expect("not poisoned").push(s);
            Ok(Accepted {
                id: self.ids.next_id(),
                lane,
                dropped: vec![],
            })
        })
    }
}

/// A session on `listener` of `config` for a client at `peer`, with its
/// ingest; the greeting is already queued.
pub fn session(config: &Config, listener: &str, peer: SocketAddr) -> (Session, Arc<MemoryIngest>) {
    let settings = Settings::new(config).expect("valid settings");
    let ingest = Arc::new(MemoryIngest::default());
    let shared = Shared::new(settings, ingest.clone(), Lifecycle::new());
    let l = config
        .listeners
        .iter()
        .find(|l| l.name == listener)
        .expect("listener in config")
        .clone();
    let conn = Conn::new(listener, peer, "127.0.0.1:25".parse().expect("addr"));
    let mut s = Session::new(shared, l, conn);
    s.greet();
    (s, ingest)
}

/// The configuration of the session tests and the fuzz target: a plain
/// listener and a gateway that normalises bare LF and trusts priority
/// headers, both taking `max_errors` errors, then `extra` listeners.
pub fn test_config(max_errors: u32, extra: &str) -> String {
    format!(
        r#"
[server]
hostname = "mx.test"
[[listener]]
name = "plain"
bind = "127.0.0.1:0"
max_message_size = "64KiB"
max_recipients = 100
max_errors = {max_errors}
[[listener]]
name = "gateway"
bind = "127.0.0.1:1"
trust_priority = true
bare_lf = "normalize"
max_message_size = "64KiB"
max_errors = {max_errors}
{extra}
[relay]
local_domains = ["local.test"]
"#
    )
}

/// Fuzz entry: the first byte picks the listener, the client (trusted or
/// not) and the size of the writes; the rest is sent to a session, and the
/// session's replies and submissions are checked:
///
/// - every reply line is `ddd ` or `ddd-` followed by text and CRLF;
/// - each `250 … queued as` reply matches exactly one submission;
/// - no submitted message holds a bare CR, a bare LF or a NUL.
///
/// Panics when a check fails (that is the finding).
pub fn fuzz_session(data: &[u8]) {
    let Some((&head, input)) = data.split_first() else {
        return;
    };
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        Config::from_toml(&test_config(1000, ""), std::path::Path::new("."))
            .expect("fuzz config")
            .config
    });
    let listener = if head & 1 == 0 { "plain" } else { "gateway" };
    let peer = if head & 2 == 0 {
        "127.0.0.1:4000"
    } else {
        "192.0.2.1:4000"
    };
    let chunk = usize::from(head >> 2).max(1) * 4;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (out, subs) = rt.block_on(async {
        let (mut session, ingest) = session(config, listener, peer.parse().expect("addr"));
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(async move {
            session.run(&mut server).await;
        });
        let (mut rd, mut wr) = tokio::io::split(&mut client);
        let reader = async {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
            out
        };
        let writer = async {
            for piece in input.chunks(chunk) {
                if wr.write_all(piece).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        };
        let (out, ()) = tokio::join!(reader, writer);
        let _ = task.await;
        (out, ingest.submissions())
    });
    check_replies(&out, subs.len());
    for s in &subs {
        check_content(&s.message);
    }
}

fn check_replies(out: &[u8], submissions: usize) {
    let mut queued = 0;
    for line in out.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "reply line without CRLF: {line:?}");
        assert!(
            line.len() >= 6
                && line[..3].iter().all(u8::is_ascii_digit)
                && (line[3] == b' ' || line[3] == b'-'),
            "malformed reply line: {:?}",
            String::from_utf8_lossy(line)
        );
        if line.starts_with(b"250 2.0.0 Ok: queued as ") {
            queued += 1;
        }
    }
    assert_eq!(queued, submissions, "acknowledgements vs. stored messages");
}

fn check_content(m: &[u8]) {
    for (i, &b) in m.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(m.get(i + 1), Some(&b'\n'), "bare CR stored at {i}"),
            b'\n' => assert!(i > 0 && m[i - 1] == b'\r', "bare LF stored at {i}"),
            0 => panic!("NUL stored at {i}"),
            _ => {}
        }
    }
}

/// Ends of data that are not `CRLF.CRLF` — bare LF, bare CR, doubled CR,
/// a NUL before the dot (the SMTP smuggling family, CVE-2023-51766 and
/// kin): each must be read as content, never as the end of a message. The
/// one list the content, session and end-to-end tests share.
pub const SMUGGLING_ENDS: [&[u8]; 11] = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r.\r",
    b"\n.\r",
    b"\r.\n",
    b"\r\n.\n",
    b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n",
    b"\r\n\x00.\r\n",
];

/// The transaction an attacker hides behind a false end of data.
pub const SMUGGLED_TRANSACTION: &[u8] =
    b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: SMUGGLED\r\n\r\nsmuggled\r\n";

#[cfg(test)]
mod tests {
    #[test]
    fn the_fuzz_entry_checks_a_normal_session() {
        super::fuzz_session(
            b"\x00EHLO a\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
        );
        super::fuzz_session(b"\x07BDAT 3 LAST\r\nabc\r\n\x00\xff\r\n.\r\n");
    }

    #[test]
    #[should_panic(expected = "bare LF")]
    fn the_content_check_can_fail() {
        super::check_content(b"a\nb");
    }
}
