//! Spool faults: corrupt and truncated files at start, a full disk, SIGXFSZ.

use std::collections::HashSet;

use laneway_tests::Daemon;
use laneway_tests::smtp::{Client, queued_id};

use super::*;

#[test]
fn corrupt_and_truncated_spool_files_are_quarantined_at_start() {
    let mut d = Daemon::start(SMALL);
    let ids: Vec<String> = (0..4)
        .map(|i| {
            let mut c = Client::hello(d.addr("mx"));
            queued_id(&c.send_mail(
                "a@example.com",
                &["b@example.net"],
                &format!("Subject: {i}\r\n\r\nbody {i}\r\n"),
            ))
        })
        .collect();
    assert!(d.stop().success());
    let path = |id: &str| {
        let lanes = d.spool().join("lanes").join("4");
        std::fs::read_dir(lanes)
            .unwrap()
            .flatten()
            .map(|s| s.path().join(id))
            .find(|p| p.exists())
            .unwrap()
    };
    // truncated in the middle, one byte flipped, emptied
    let p0 = path(&ids[0]);
    let len = std::fs::metadata(&p0).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p0).unwrap();
    f.set_len(len / 2).unwrap();
    let p1 = path(&ids[1]);
    let mut bytes = std::fs::read(&p1).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0x55;
    std::fs::write(&p1, bytes).unwrap();
    std::fs::write(path(&ids[2]), b"").unwrap();
    // and a stranger with a message-id name
    let stranger = p0.parent().unwrap().join("00000000000000ff");
    std::fs::write(&stranger, b"not a spool file at all").unwrap();

    d.restart();
    assert!(d.wait_log(|l| l.contains("spool recovered") && l.contains("quarantined=4")));
    assert_eq!(d.spooled_ids(4), vec![ids[3].clone()]);
    let quarantined: HashSet<String> = std::fs::read_dir(d.spool().join("quarantine"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for id in [&ids[0], &ids[1], &ids[2], &"00000000000000ff".to_string()] {
        assert!(
            quarantined.iter().any(|q| q.starts_with(id.as_str())),
            "{id} not in quarantine: {quarantined:?}"
        );
        assert!(
            d.wait_log(|l| l.contains("quarantine") && l.contains(id.as_str())),
            "{id} not reported"
        );
    }
    // and the daemon serves on
    let mut c = Client::hello(d.addr("mx"));
    queued_id(&c.send_mail(
        "a@example.com",
        &["b@example.net"],
        "Subject: after\r\n\r\nx\r\n",
    ));
}

#[test]
fn a_full_disk_refuses_cleanly_and_sigxfsz_is_ignored() {
    let fs = match Tmpfs::mount("4m") {
        Ok(fs) => fs,
        Err(why) => {
            println!("SKIPPED disk-full part: {why}");
            return;
        }
    };
    let mut d = Daemon::start(&format!(
        r#"
[server]
hostname = "laneway.test"
spool_dir = "{}"
[[listener]]
name = "mx"
bind = "127.0.0.1:0"
max_message_size = "4MiB"
[spool]
min_free_bytes = "512KiB"
"#,
        fs.0.display()
    ));
    let mut accepted = 0;
    // 1.5 MiB messages: two fit, the third runs out of space while being
    // written — a 4xx, never a 250, and no partial file anywhere
    for _ in 0..2 {
        let r = send_sized(&d, 1536 << 10);
        assert!(r.starts_with("250"), "{r}");
        accepted += 1;
    }
    let r = send_sized(&d, 1536 << 10);
    assert!(r.starts_with("452 4.3.1") || r.starts_with("451"), "{r}");
    assert!(temp_files(&fs.0).is_empty(), "partial file left behind");
    // fill up to the reserve; then MAIL FROM itself is refused
    loop {
        let r = send_sized(&d, 200 << 10);
        if r.starts_with("250") {
            accepted += 1;
            continue;
        }
        assert!(r.starts_with("452 4.3.1"), "{r}");
        break;
    }
    let mut c = Client::hello(d.addr("mx"));
    c.cmd("MAIL FROM:<a@example.com>", "452 4.3.1");
    assert!(temp_files(&fs.0).is_empty());
    // everything acknowledged is there, whole, after a restart
    d.kill9();
    d.restart();
    assert!(d.wait_log(|l| l.contains("spool recovered")));
    assert_eq!(d.spool_stats()["total"], accepted);
    assert_eq!(
        std::fs::read_dir(fs.0.join("quarantine")).unwrap().count(),
        0,
        "nothing acknowledged was damaged"
    );
    d.kill9();
    drop(fs);

    // a file size limit: SIGXFSZ must not kill the daemon; the write fails
    // and the client is told to try later
    let d = Daemon::start(SMALL);
    let out = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", d.pid()))
        .arg("--fsize=20000:20000")
        .output()
        .expect("prlimit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = send_sized(&d, 60 << 10);
    assert!(r.starts_with("451") || r.starts_with("452"), "{r}");
    let r = send_sized(&d, 2 << 10);
    queued_id(&r);
    assert!(temp_files(&d.spool()).is_empty());
    assert_eq!(d.spool_stats()["total"], 1);
}
