//! The Prometheus recorder (installed once per process) and the render
//! function behind `GET /metrics`, which refreshes the queue gauges from
//! the scheduler first so they are exact at scrape time.

use std::sync::Arc;
use std::time::Duration;

use laneway_common::metrics::{self as m, LANES};
use laneway_spool::queue::Queue;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the recorder; returns its handle.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(m::DELIVERY_LATENCY.into()),
            m::LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Full(m::SPOOL_WRITE.into()), m::WRITE_BUCKETS)?
        .install_recorder()?;
    m::describe();
    let up = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            up.run_upkeep();
        }
    });
    Ok(handle)
}

/// Every series the dashboard and the alert rules read, at zero, so that
/// a healthy node never shows "No data" — also with webhooks, the cluster,
/// DKIM or TLS unused (etc/grafana/laneway.json,
/// etc/prometheus/laneway.rules.yml).
pub fn zero(config: &laneway_common::Config) {
    use laneway_common::bounce::BounceClass;
    let mut doors: Vec<String> = config.listeners.iter().map(|l| l.name.clone()).collect();
    doors.extend(["api".to_string(), "local".to_string()]);
    for lane in LANES {
        for door in &doors {
            metrics::counter!(m::RECEIVED, "listener" => door.clone(), "lane" => lane).increment(0);
        }
        for name in [m::DELIVERED, m::DEFERRED, m::EXPIRED] {
            metrics::counter!(name, "lane" => lane).increment(0);
        }
        for class in BounceClass::ALL {
            metrics::counter!(m::BOUNCED, "lane" => lane, "class" => class.as_str()).increment(0);
        }
    }
    for result in ["signed", "error"] {
        metrics::counter!(m::DKIM, "result" => result).increment(0);
    }
    for p in laneway_outbound::TlsPolicy::ALL {
        metrics::counter!(m::TLS_POLICY, "policy" => p.as_str()).increment(0);
    }
    for direction in ["in", "out"] {
        metrics::counter!(m::CONNECTIONS, "direction" => direction).increment(0);
        metrics::gauge!(m::CONNECTIONS_ACTIVE, "direction" => direction).increment(0.0);
        metrics::counter!(m::TLS, "direction" => direction).increment(0);
    }
    if config.webhooks.is_empty() {
        metrics::gauge!(m::WEBHOOK_BACKLOG, "webhook" => "none").set(0.0);
        metrics::gauge!(m::WEBHOOK_OLDEST, "webhook" => "none").set(0.0);
    }
    if config.cluster.is_none() {
        metrics::gauge!(m::CLUSTER_CONNECTED).set(0.0);
        metrics::gauge!(m::CLUSTER_NODES).set(1.0);
    }
    metrics::gauge!(m::SPOOL_MIN_FREE).set(config.spool.min_free_bytes as f64);
}

/// `laneway_destination_ready` for the ten busiest sites; the sites that
/// were exported before and are not among them now go to 0 (so the series
/// count stays bounded by the sites that were ever among the ten).
fn busiest(destinations: &[laneway_common::admin::DestinationSummary]) {
    static SHOWN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    let top: Vec<(&str, u64)> = destinations
        .iter()
        .take(10)
        .map(|d| (d.site.as_str(), d.ready))
        .collect();
    for site in shown.iter().filter(|s| !top.iter().any(|(t, _)| t == s)) {
        metrics::gauge!(m::DESTINATION_READY, "site" => site.clone()).set(0.0);
    }
    if shown.is_empty() && top.is_empty() {
        // nothing queued yet: one zero series, so the panel is not empty
        metrics::gauge!(m::DESTINATION_READY, "site" => "none").set(0.0);
        return;
    }
    for (site, ready) in &top {
        metrics::gauge!(m::DESTINATION_READY, "site" => site.to_string()).set(*ready as f64);
        if !shown.iter().any(|s| s == site) {
            shown.push(site.to_string());
        }
    }
}

/// The `/metrics` body: queue gauges refreshed, then everything rendered.
pub fn render(handle: &PrometheusHandle, queue: &Arc<Queue>) -> String {
    let s = queue.summary();
    for l in &s.lanes {
        let lane = LANES[l.lane as usize];
        metrics::gauge!(m::QUEUE_MESSAGES, "lane" => lane).set(l.count as f64);
        metrics::gauge!(m::QUEUE_DEFERRED, "lane" => lane).set(l.deferred as f64);
        metrics::gauge!(m::QUEUE_OLDEST_AGE, "lane" => lane)
            .set(l.oldest_age_seconds.unwrap_or(0.0));
    }
    busiest(&s.destinations);
    if let Ok(free) = queue.store().free_bytes() {
        metrics::gauge!(m::SPOOL_FREE).set(free as f64);
    }
    for (state, n) in queue.health_counts() {
        metrics::gauge!(m::DESTINATIONS, "health" => state).set(n as f64);
    }
    handle.render()
}
