//! The daemon's life: crash safety under `kill -9`, graceful SIGTERM,
//! SIGHUP reload, systemd notification, the spool lock, a full disk and
//! `check-config`.

use std::collections::HashSet;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};

use laneway_tests::smtp::{Client, queued_id};
use laneway_tests::{Daemon, eventually, laneway_bin};
use rustix::process::Signal;

const ONE: &str = r#"
[[listener]]
name = "mx"
bind = "127.0.0.1:0"
[relay]
trusted_networks = ["127.0.0.1/32"]
local_domains = ["local.test"]
"#;

/// Sends messages over `conns` connections until the connection breaks,
/// recording every id that got its 250.
fn blast(
    addr: std::net::SocketAddr,
    conns: usize,
    acked: Arc<Mutex<Vec<String>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..conns)
        .map(|n| {
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                if c.try_reply().is_err() {
                    return;
                }
                c.send(b"EHLO blaster\r\n");
                if c.try_reply().is_err() {
                    return;
                }
                for i in 0.. {
                    let body = format!(
                        "MAIL FROM:<a@example.com>\r\nRCPT TO:<r{n}-{i}@example.net>\r\nDATA\r\n"
                    );
                    c.send(body.as_bytes());
                    let ok = (0..3).all(|_| {
                        c.try_reply()
                            .is_ok_and(|r| r.starts_with('2') || r.starts_with('3'))
                    });
                    if !ok {
                        return;
                    }
                    let content = format!(
                        "Subject: {n}-{i}\r\n\r\n{}.\r\n",
                        format!("{}\r\n", "x".repeat(78)).repeat(50)
                    );
                    c.send(content.as_bytes());
                    match c.try_reply() {
                        Ok(r) if r.starts_with("250") => acked.lock().unwrap().push(queued_id(&r)),
                        _ => return,
                    }
                }
            })
        })
        .collect()
}

#[test]
fn kill_9_never_loses_an_acknowledged_message() {
    let mut d = Daemon::start(ONE);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let conns = 8;
    for round in 0..3 {
        let before = acked.lock().unwrap().len();
        let threads = blast(d.addr("mx"), conns, acked.clone());
        eventually("some messages acknowledged", || {
            acked.lock().unwrap().len() >= before + 40
        });
        d.kill9();
        for t in threads {
            t.join().unwrap();
        }
        d.restart();
        let on_disk: HashSet<String> = d.spooled_ids(4).into_iter().collect();
        let acked_now: Vec<String> = acked.lock().unwrap().clone();
        let missing: Vec<&String> = acked_now
            .iter()
            .filter(|id| !on_disk.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged but lost: {missing:?}"
        );
        // beyond those acknowledged, at most the one in flight per connection
        let extra = on_disk.len() - acked_now.len();
        assert!(
            extra <= conns * (round + 1),
            "round {round}: {extra} unacknowledged extras"
        );
        let tmp: Vec<_> = std::fs::read_dir(d.spool().join("tmp")).unwrap().collect();
        assert!(tmp.is_empty(), "temp files left behind: {tmp:?}");
        // the daemon serves at once and reads the spool in the background
        let want = format!("messages={}", on_disk.len());
        assert!(d.wait_log(|l| l.contains("spool recovered") && l.contains(&want)));
    }
}

#[test]
fn sigterm_lets_data_in_progress_finish_and_refuses_newcomers() {
    let mut d = Daemon::start(ONE);
    let addr = d.addr("mx");
    let mut busy = Client::hello(addr);
    busy.cmd("MAIL FROM:<a@example.com>", "250");
    busy.cmd("RCPT TO:<b@example.net>", "250");
    busy.cmd("DATA", "354");
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n");
    let mut idle = Client::hello(addr);
    d.signal(Signal::TERM);
    assert!(d.wait_log(|l| l.contains("shutting down")));
    // the idle session is told to go away
    let r = idle.reply();
    assert!(r.starts_with("421 4.3.2"), "{r}");
    // a newcomer is refused
    let mut late = Client::connect(addr);
    late.greeting("421 4.3.2");
    // the transaction in DATA completes and is spooled
    busy.send(b"second half\r\n.\r\n");
    let id = queued_id(&busy.reply());
    let status = d.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(d.wait_log(|l| l.contains("drained")));
    d.restart();
    assert_eq!(d.spooled_ids(4), vec![id]);
}

#[test]
fn sighup_reloads_relay_policy_without_dropping_connections() {
    let d = Daemon::start(ONE);
    let mut s = Client::connect_from(d.addr("mx"), Some("127.0.0.2"));
    s.greeting("220");
    s.cmd("EHLO stranger", "250");
    s.cmd("MAIL FROM:<a@example.com>", "250");
    s.cmd("RCPT TO:<x@newly.test>", "550 5.7.1");
    // a broken file is refused and the running configuration kept
    d.write_config("[server]\nspool_dir = \"{dir}/spool\"\nbogus = 1\n");
    d.signal(Signal::HUP);
    assert!(d.wait_log(|l| l.contains("reload failed")));
    s.cmd("RCPT TO:<x@local.test>", "250");
    d.write_config(&format!(
        "[server]\nhostname = \"laneway.test\"\nspool_dir = \"{{dir}}/spool\"\n{}",
        ONE.replace("[\"local.test\"]", "[\"local.test\", \"newly.test\"]")
    ));
    d.signal(Signal::HUP);
    assert!(d.wait_log(|l| l.contains("configuration reloaded")));
    s.cmd("RCPT TO:<x@newly.test>", "250");
    s.cmd("DATA", "354");
    s.send(b"Subject: x\r\n\r\nx\r\n.\r\n");
    queued_id(&s.reply());
}

#[test]
fn systemd_is_told_ready_after_the_listeners_are_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(laneway_tests::DEADLINE))
        .unwrap();
    let d = Daemon::start_with_env(ONE, &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    // by then the listener is bound and answering
    let mut c = Client::connect(d.addr("mx"));
    c.greeting("220");
    let logs = d.logs();
    let listening = logs
        .iter()
        .position(|l| l.contains("listening name=mx addr=127.0.0.1:"))
        .unwrap();
    let ready = logs.iter().position(|l| l.contains(" ready")).unwrap();
    assert!(listening < ready);
    assert!(
        !logs[..listening].iter().any(|l| l.contains("ready")),
        "a line before the bind says ready"
    );
}

#[test]
fn the_spool_lock_refuses_a_second_daemon() {
    let d = Daemon::start(ONE);
    let out = std::process::Command::new(laneway_bin())
        .args(["serve", "--config"])
        .arg(d.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another laneway"), "{err}");
}

#[test]
fn a_nearly_full_spool_refuses_at_mail_from() {
    let d = Daemon::start(&format!("{ONE}\n[spool]\nmin_free_bytes = \"1000TB\"\n"));
    let mut c = Client::hello(d.addr("mx"));
    c.cmd("MAIL FROM:<a@example.com>", "452 4.3.1");
    assert_eq!(d.spool_stats()["total"], 0);
}

#[test]
fn check_config_reports_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[server]\nhostnme = \"x\"\n[[listener]]\nbind = \"127.0.0.1:25\"\nmax_recipients = 5\n[[listener]]\nname = \"tls\"\nbind = \"127.0.0.1:26\"\ntls = \"starttls\"\n[queue]\ndefault_priority = 11\n",
    )
    .unwrap();
    let out = std::process::Command::new(laneway_bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "hostnme",
        "max_recipients = 5",
        "needs a [tls]",
        "[queue]",
        "4 problem(s)",
    ] {
        assert!(err.contains(needle), "{needle} missing in:\n{err}");
    }
    let ok = std::process::Command::new(laneway_bin())
        .args(["check-config"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn spool_stats_works_with_the_daemon_stopped() {
    let mut d = Daemon::start(ONE);
    let mut c = Client::hello(d.addr("mx"));
    queued_id(&c.send_mail(
        "a@example.com",
        &["b@example.net"],
        "Subject: x\r\n\r\nx\r\n",
    ));
    d.stop();
    let stats = d.spool_stats();
    assert_eq!(stats["total"], 1);
    assert_eq!(stats["lanes"]["4"], 1);
}
