//! The benchmark suite builds and a tiny run of every scenario works.
//! (Benchmarks are not timed tests: the figures are only checked to exist.)

use std::process::Command;

use laneway_tests::{bench_bin, laneway_bin};

fn scenario(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bench_bin())
        .args(args)
        .arg("--laneway")
        .arg(laneway_bin())
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn has_figure(out: &str, scenario: &str, figure: &str) {
    let line = out
        .lines()
        .find(|l| {
            l.contains(&format!("scenario={scenario} ")) && l.contains(&format!("figure={figure} "))
        })
        .unwrap_or_else(|| panic!("no {scenario}/{figure} in:\n{out}"));
    let v: f64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("value="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(v.is_finite() && v > 0.0, "{line}");
}

#[test]
fn every_scenario_runs_small() {
    let out = scenario(&[
        "throughput",
        "--messages",
        "200",
        "--sessions",
        "4",
        "--ceiling",
    ]);
    has_figure(&out, "throughput", "end_to_end_msgs_per_s");
    has_figure(&out, "throughput", "ceiling_msgs_per_s");
    let out = scenario(&["acceptance", "--messages", "200", "--sessions", "4"]);
    has_figure(&out, "acceptance", "accepted_msgs_per_s");
    let out = scenario(&[
        "urgent",
        "--backlog",
        "100",
        "--urgent",
        "2",
        "--interval-ms",
        "100",
    ]);
    has_figure(&out, "urgent", "lane9_latency_p99_ms");
    let out = scenario(&["queue-scale", "--messages", "200", "--sessions", "4"]);
    has_figure(&out, "queue-scale", "restart_to_ready_s");
    has_figure(&out, "queue-scale", "rss_after_restart_mib");
    let out = scenario(&["api", "--messages", "100", "--clients", "4"]);
    has_figure(&out, "api", "submissions_per_s");
}
