//! CPU time of a process and everything it started, read from `/proc`, so
//! that a daemon made of many processes (Postfix's master and its smtpd,
//! cleanup, qmgr and smtp children) is charged the same way as one made of
//! threads (Laneway).
//!
//! The total is the user+system time of the process and of every live
//! descendant, plus the time of the children each of them has already
//! reaped (`cutime`/`cstime`: a Postfix smtpd that served its 100 clients
//! and exited is counted in its master's). Sampled before and after a load,
//! the difference is what the load cost.

use std::collections::HashMap;
use std::time::Duration;

/// One process's fields from `/proc/PID/stat`: (parent, own + reaped
/// children's CPU time in clock ticks).
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: the fields
    // that follow start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f
        .get(11..=14)?
        .iter()
        .map(|v| v.parse::<u64>().unwrap_or(0))
        .sum();
    Some((ppid, ticks))
}

/// Clock ticks per second of `/proc` times (`USER_HZ`), asked once.
fn ticks_per_second() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// CPU time used so far by `root` and its descendants (see the module
/// documentation); `None` when `root` is not running.
pub fn tree_cpu(root: u32) -> Option<Duration> {
    let mut procs: HashMap<u32, (u32, u64)> = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(s) = stat(pid) {
            procs.insert(pid, s);
        }
    }
    procs.get(&root)?;
    let in_tree = |mut pid: u32| {
        while pid > 1 {
            if pid == root {
                return true;
            }
            pid = procs.get(&pid).map_or(0, |p| p.0);
        }
        false
    };
    let ticks: u64 = procs
        .iter()
        .filter(|(pid, _)| in_tree(**pid))
        .map(|(_, p)| p.1)
        .sum();
    Some(Duration::from_micros(
        ticks * 1_000_000 / ticks_per_second(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_exits_is_still_counted_in_its_parent() {
        let me = std::process::id();
        let before = tree_cpu(me).expect("this process is running");
        // A child that burns CPU and is reaped: its time moves to our cstime.
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let after = tree_cpu(me).expect("still running");
        assert!(
            after > before,
            "the reaped child's CPU time is counted: {before:?} then {after:?}"
        );
        assert!(tree_cpu(u32::MAX).is_none(), "no such process");
    }
}
