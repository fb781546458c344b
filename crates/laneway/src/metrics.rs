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
    for (state, n) in queue.health_counts() {
        metrics::gauge!(m::DESTINATIONS, "health" => state).set(n as f64);
    }
    handle.render()
}
