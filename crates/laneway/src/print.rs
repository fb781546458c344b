//! The human forms of the API's answers for `laneway queue` and
//! `laneway suppressions` (`--json` prints the answers as they are).

use serde_json::Value;

use crate::table::{Align, Table};

/// A JSON value as table text: strings without quotes, null as `-`.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Human form of `GET /api/v1/cluster`.
pub fn print_cluster(v: &Value) {
    print!("{}", cluster_text(v));
}

/// The text of [`print_cluster`]: messages per lane (9 down to 0) with a
/// column per node and the sum, then one row per node.
pub fn cluster_text(v: &Value) -> String {
    let nodes: Vec<&Value> = v["nodes"].as_array().into_iter().flatten().collect();
    let names: Vec<String> = nodes.iter().map(|n| cell(&n["node"])).collect();
    let mut cols: Vec<(&str, Align)> = vec![("lane", Align::Right)];
    cols.extend(names.iter().map(|n| (n.as_str(), Align::Right)));
    cols.push(("all", Align::Right));
    let mut t = Table::new(&cols);
    for lane in (0..=9u64).rev() {
        let counts: Vec<u64> = nodes
            .iter()
            .map(|n| {
                n["queue"]["lanes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|l| l["lane"].as_u64() == Some(lane))
                    .and_then(|l| l["count"].as_u64())
                    .unwrap_or(0)
            })
            .collect();
        let mut row = vec![lane.to_string()];
        row.extend(counts.iter().map(u64::to_string));
        row.push(counts.iter().sum::<u64>().to_string());
        t.row(row);
    }
    let mut out = t.render();
    let mut t = Table::new(&[
        ("node", Align::Left),
        ("state", Align::Left),
        ("messages", Align::Right),
        ("ready", Align::Right),
        ("deferred", Align::Right),
        ("held", Align::Left),
        ("updated", Align::Left),
    ]);
    for n in &nodes {
        let held: Vec<String> = n["queue"]["suspended_domains"]
            .as_array()
            .into_iter()
            .flatten()
            .map(cell)
            .collect();
        t.row(vec![
            cell(&n["node"]),
            cell(&n["state"]),
            cell(&n["queue"]["total"]),
            cell(&n["queue"]["ready"]),
            cell(&n["queue"]["deferred"]),
            if held.is_empty() {
                "-".into()
            } else {
                held.join(",")
            },
            cell(&n["updated"]),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render());
    if v["clustered"] == true && v["connected"] != true {
        out.push_str("(Redis is unreachable from this node: only this node is shown)\n");
    }
    out
}

/// Human form of `GET /api/v1/messages/{id}/events`: one row per event.
pub fn print_trace(v: &Value) {
    print!("{}", trace_text(v));
}

/// The text of [`print_trace`].
pub fn trace_text(v: &Value) -> String {
    let events: Vec<&Value> = v["events"].as_array().into_iter().flatten().collect();
    if events.is_empty() {
        return "no events kept for it (older than [events] history, or never seen)\n".into();
    }
    let mut t = Table::new(&[
        ("time", Align::Left),
        ("event", Align::Left),
        ("id", Align::Left),
        ("lane", Align::Right),
        ("recipient", Align::Left),
        ("status", Align::Left),
        ("detail", Align::Left),
    ]);
    for e in events {
        let detail = match (&e["next_hop"]["host"], &e["description"]) {
            (Value::String(h), Value::String(d)) => format!("{d} ({h})"),
            (_, Value::String(d)) => d.clone(),
            _ => cell(&e["action"]),
        };
        t.row(vec![
            cell(&e["timestamp"]),
            cell(&e["type"]),
            cell(&e["message_id"]),
            cell(&e["lane"]),
            cell(&e["recipient"]),
            cell(&e["status"]),
            detail,
        ]);
    }
    let mut out = t.render();
    if let Some(c) = v["next_cursor"].as_str() {
        out.push_str(&format!("(more: GET /api/v1/events?after={c})\n"));
    }
    out
}

/// Human form of `GET /api/v1/queue/drain`.
pub fn print_drain(v: &Value) {
    println!(
        "drain {} to {}: moved {} (already there {}), failed {}, remaining {}",
        cell(&v["state"]),
        cell(&v["to"]),
        cell(&v["moved"]),
        cell(&v["already_there"]),
        cell(&v["failed"]),
        cell(&v["remaining"])
    );
    if let Some(e) = v["error"].as_str() {
        println!("error: {e}");
    }
}

/// Human form of `GET /api/v1/queue`.
pub fn print_stats(v: &Value) {
    print!("{}", stats_text(v));
}

/// The text of [`print_stats`]: one row per lane, 9 down to 0 (empty
/// lanes included), the totals, then the busiest destinations.
pub fn stats_text(v: &Value) -> String {
    let mut t = Table::new(&[
        ("lane", Align::Right),
        ("messages", Align::Right),
        ("deferred", Align::Right),
        ("oldest", Align::Right),
    ]);
    let mut lanes: Vec<&Value> = v["lanes"].as_array().into_iter().flatten().collect();
    lanes.sort_by_key(|l| std::cmp::Reverse(l["lane"].as_u64()));
    for l in lanes {
        let age = l["oldest_age_seconds"]
            .as_f64()
            .map(humantime)
            .unwrap_or_else(|| "-".into());
        t.row(vec![
            cell(&l["lane"]),
            cell(&l["count"]),
            cell(&l["deferred"]),
            age,
        ]);
    }
    let mut out = t.render();
    out.push_str(&format!(
        "total {}  ready {}  deferred {}\n",
        cell(&v["total"]),
        cell(&v["ready"]),
        cell(&v["deferred"])
    ));
    let dests = v["destinations"].as_array().cloned().unwrap_or_default();
    if !dests.is_empty() {
        let mut t = Table::new(&[
            ("destination", Align::Left),
            ("ready", Align::Right),
            ("deferred", Align::Right),
            ("conns", Align::Right),
            ("health", Align::Left),
            ("lanes", Align::Left),
        ]);
        for d in dests {
            let lanes: Vec<String> = d["lanes"]
                .as_object()
                .map(|m| m.iter().rev().map(|(k, n)| format!("{k}:{n}")).collect())
                .unwrap_or_default();
            let health = if d["suspended"] == true {
                "suspended".to_string()
            } else {
                cell(&d["health"])
            };
            t.row(vec![
                cell(&d["site"]),
                cell(&d["ready"]),
                cell(&d["deferred"]),
                cell(&d["connections"]),
                health,
                lanes.join(" "),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    if let Some(held) = v["suspended_domains"].as_array().filter(|a| !a.is_empty()) {
        let held: Vec<String> = held.iter().map(cell).collect();
        out.push_str(&format!("\nsuspended: {}\n", held.join(" ")));
    }
    out
}

pub fn humantime(secs: f64) -> String {
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
    print!("{}", list_text(v));
}

/// The text of [`print_list`].
pub fn list_text(v: &Value) -> String {
    let mut t = Table::new(&[
        ("id", Align::Left),
        ("lane", Align::Right),
        ("state", Align::Left),
        ("tries", Align::Right),
        ("queued", Align::Left),
        ("from", Align::Left),
        ("recipients", Align::Left),
    ]);
    for m in v["messages"].as_array().into_iter().flatten() {
        let rcpts: Vec<&str> = m["recipients"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str())
            .collect();
        let from = match m["from"].as_str() {
            Some("") => "<>".to_string(),
            _ => cell(&m["from"]),
        };
        t.row(vec![
            cell(&m["id"]),
            cell(&m["lane"]),
            cell(&m["state"]),
            cell(&m["attempts"]),
            cell(&m["queued_at"]),
            from,
            rcpts.join(", "),
        ]);
    }
    let mut out = t.render();
    if let Some(c) = v["next_cursor"].as_str() {
        out.push_str(&format!("(more: --cursor {c})\n"));
    }
    out
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
            println!("{k:<13} {}", cell(&v[k]));
        }
    }
    let mut t = Table::new(&[
        ("recipient", Align::Left),
        ("status", Align::Left),
        ("tries", Align::Right),
        ("last", Align::Left),
    ]);
    for r in v["recipients"].as_array().into_iter().flatten() {
        t.row(vec![
            cell(&r["address"]),
            cell(&r["status"]),
            cell(&r["attempts"]),
            r["last_reply"].as_str().unwrap_or("").to_string(),
        ]);
    }
    print!("{}", t.render());
}

/// Human form of a suppression list page.
pub fn print_suppressions(v: &Value) {
    let mut t = Table::new(&[
        ("address", Align::Left),
        ("sender_domain", Align::Left),
        ("lanes", Align::Left),
        ("since", Align::Left),
        ("reason", Align::Left),
    ]);
    for s in v["suppressions"].as_array().into_iter().flatten() {
        t.row(vec![
            cell(&s["address"]),
            cell(&s["sender_domain"]),
            cell(&s["lanes"]),
            cell(&s["since"]),
            cell(&s["reason"]),
        ]);
    }
    print!("{}", t.render());
    if let Some(c) = v["next_cursor"].as_str() {
        println!("(more: --cursor {c})");
    }
}

/// `laneway shaping show`: one line per provider, then per domain.
pub fn print_shaping(v: &Value) {
    let mut t = Table::new(&[
        ("provider", Align::Left),
        ("mx_suffix", Align::Left),
        ("conns", Align::Right),
        ("reserved", Align::Right),
        ("rate", Align::Left),
        ("per_conn", Align::Right),
        ("tls", Align::Left),
        ("idle", Align::Left),
    ]);
    for (kind, key) in [("", "providers"), ("domain ", "domains")] {
        for r in v[key].as_array().into_iter().flatten() {
            let suffixes: Vec<&str> = r["mx_suffix"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            t.row(vec![
                format!("{kind}{}", cell(&r["name"])),
                if suffixes.is_empty() {
                    "-".into()
                } else {
                    suffixes.join(",")
                },
                cell(&r["max_connections"]),
                format!(
                    "{} (>= {})",
                    cell(&r["reserved_connections"]),
                    cell(&r["reserved_min_lane"])
                ),
                r["rate"].as_str().unwrap_or("-").to_string(),
                cell(&r["messages_per_connection"]),
                cell(&r["tls"]),
                cell(&r["idle_timeout"]),
            ]);
        }
    }
    print!("{}", t.render());
    for (key, kind) in [("providers", ""), ("domains", "domain ")] {
        for r in v[key].as_array().into_iter().flatten() {
            for rule in r["automation"].as_array().into_iter().flatten() {
                println!("rule of {kind}{}: {}", cell(&r["name"]), cell(rule));
            }
            for pool in r["pools"].as_array().into_iter().flatten() {
                println!("pool limits of {kind}{}: {}", cell(&r["name"]), cell(pool));
            }
        }
    }
    let active = v["active"].as_array().cloned().unwrap_or_default();
    if active.is_empty() {
        println!("active rules: none");
        return;
    }
    let mut t = Table::new(&[
        ("active", Align::Left),
        ("rule", Align::Right),
        ("action", Align::Left),
        ("lanes", Align::Left),
        ("phase", Align::Left),
        ("left", Align::Right),
        ("reply", Align::Left),
    ]);
    for a in &active {
        t.row(vec![
            cell(&a["provider"]),
            cell(&a["rule"]),
            cell(&a["action"]),
            cell(&a["lanes"]),
            cell(&a["phase"]),
            format!("{}s", cell(&a["remaining_seconds"])),
            cell(&a["reply"]),
        ]);
    }
    print!("{}", t.render());
}

/// `laneway domain check`: one line per check, then what to publish.
pub fn print_domain_check(v: &Value) {
    let mut t = Table::new(&[
        ("check", Align::Left),
        ("status", Align::Left),
        ("name", Align::Left),
        ("detail", Align::Left),
    ]);
    let checks = v["checks"].as_array().cloned().unwrap_or_default();
    for c in &checks {
        let status = match (c["status"].as_str(), c["optional"].as_bool()) {
            (Some("missing"), Some(true)) => "missing (optional)".to_string(),
            (s, _) => s.unwrap_or("?").to_string(),
        };
        t.row(vec![
            cell(&c["check"]),
            status,
            cell(&c["name"]),
            cell(&c["detail"]),
        ]);
    }
    print!("{}", t.render());
    println!(
        "{}: {} ok, {} wrong, {} missing",
        cell(&v["domain"]),
        cell(&v["ok"]),
        cell(&v["wrong"]),
        cell(&v["missing"])
    );
    let fixes: Vec<&str> = checks
        .iter()
        .filter_map(|c| c["expected"].as_str())
        .collect();
    if !fixes.is_empty() {
        println!("records that would be right:");
        for f in fixes {
            println!("  {f}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The column each label of a header line starts and ends at.
    fn spans(header: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in header
            .char_indices()
            .chain(std::iter::once((header.len(), ' ')))
        {
            match (c == ' ', start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    out.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn queue_stats_line_up_under_their_labels() {
        let lanes: Vec<Value> = (0..10)
            .map(|l| {
                serde_json::json!({
                    "lane": l,
                    "count": if l == 0 { 123456 } else if l == 9 { 3 } else { 0 },
                    "deferred": if l == 0 { 1200 } else { 0 },
                    "oldest_age_seconds": if l == 0 { serde_json::json!(4000.0) } else { Value::Null },
                })
            })
            .collect();
        let v = serde_json::json!({
            "total": 123459, "ready": 122259, "deferred": 1200, "lanes": lanes,
            "destinations": [
                {"site": "mx gmail-smtp-in.l.google.com:25", "ready": 122000, "deferred": 1200, "connections": 20, "health": "ok", "lanes": {"0": 122000}, "suspended": false},
                {"site": "route 127.0.0.1:2526", "ready": 3, "deferred": 0, "connections": 1, "health": "throttled", "lanes": {"9": 3}, "suspended": false}
            ],
            "suspended_domains": []
        });
        let text = stats_text(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["lane", "messages", "deferred", "oldest"]
        );
        let cols = spans(lines[0]);
        // ten lane rows, 9 first, empty lanes included; numbers end under
        // the end of their label (right-aligned)
        for (row, lane) in lines[1..11].iter().zip((0..10).rev()) {
            let cells: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(cells[0], lane.to_string(), "{text}");
            for (cell, (_, end)) in cells.iter().zip(&cols) {
                let at = row[..*end].trim_end();
                assert!(
                    at.ends_with(cell),
                    "{cell:?} not under its label in {row:?}\n{text}"
                );
                assert_eq!(row[..*end].len(), *end);
            }
        }
        // the destination table: text left-aligned, numbers right
        let dh = lines
            .iter()
            .position(|l| l.starts_with("destination"))
            .unwrap();
        let cols = spans(lines[dh]);
        for row in &lines[dh + 1..dh + 3] {
            assert_eq!(&row[cols[0].0..cols[0].0 + 2], &row[..2]);
            let ready = row[..cols[1].1].split_whitespace().last().unwrap();
            assert!(
                ready.parse::<u64>().is_ok(),
                "ready under its label: {row:?}"
            );
            let health = row[cols[4].0..].split_whitespace().next().unwrap();
            assert!(
                ["ok", "throttled"].contains(&health),
                "health under its label: {row:?}"
            );
        }
    }
}
