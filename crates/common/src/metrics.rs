//! Every metric Laneway exports, declared once with its help text
//! (Prometheus names `laneway_*`, the lane as a label). Label values come
//! from small fixed sets — lanes, listener names, results — never from
//! recipients or messages, so the series count stays bounded.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Messages in the queue, per lane (gauge, refreshed at scrape time).
pub const QUEUE_MESSAGES: &str = "laneway_queue_messages";
/// Age of the oldest message per lane, seconds (gauge).
pub const QUEUE_OLDEST_AGE: &str = "laneway_queue_oldest_age_seconds";
/// Messages waiting for a retry, per lane (gauge).
pub const QUEUE_DEFERRED: &str = "laneway_queue_deferred_messages";
/// Messages accepted, per front door (`listener`) and lane.
pub const RECEIVED: &str = "laneway_messages_received_total";
/// Recipients delivered, per lane.
pub const DELIVERED: &str = "laneway_recipients_delivered_total";
/// Recipient delivery attempts deferred, per lane.
pub const DEFERRED: &str = "laneway_recipients_deferred_total";
/// Recipients failed permanently (bounced), per lane and bounce class.
pub const BOUNCED: &str = "laneway_recipients_bounced_total";
/// Recipients given up on after `max_age`, per lane.
pub const EXPIRED: &str = "laneway_recipients_expired_total";
/// Acceptance to remote 250, per lane (histogram, seconds).
pub const DELIVERY_LATENCY: &str = "laneway_delivery_latency_seconds";
/// SMTP connections opened, `direction` = in | out.
pub const CONNECTIONS: &str = "laneway_smtp_connections_total";
/// SMTP connections open now, `direction` = in | out.
pub const CONNECTIONS_ACTIVE: &str = "laneway_smtp_connections_active";
/// TLS sessions negotiated, `direction` = in | out.
pub const TLS: &str = "laneway_tls_sessions_total";
/// Outbound connections by the TLS `policy` they were made under
/// (`requiretls`, `verify`, `required`, `opportunistic`, `none`).
pub const TLS_POLICY: &str = "laneway_outbound_tls_policy_total";
/// Time to write a message durably to the spool (histogram, seconds).
pub const SPOOL_WRITE: &str = "laneway_spool_write_seconds";
/// HTTP API requests, per `route` (the route template) and `status`.
pub const API_REQUESTS: &str = "laneway_api_requests_total";
/// Destination sites by health (`ok`, `throttled`, `down`) (gauge).
pub const DESTINATIONS: &str = "laneway_destinations";
/// DSNs generated, per lane and `action`.
pub const DSNS: &str = "laneway_dsns_total";
/// Suppressed recipients in the store (gauge).
pub const SUPPRESSIONS: &str = "laneway_suppressions";
/// DKIM signing, by `result` (signed, error).
pub const DKIM: &str = "laneway_dkim_signatures_total";
/// 1 while Redis answers (`[cluster]`), else 0.
pub const CLUSTER_CONNECTED: &str = "laneway_cluster_connected";
/// Nodes seen alive in the cluster view (this one included).
pub const CLUSTER_NODES: &str = "laneway_cluster_nodes";
/// Events stored in the event log, by `type`.
pub const EVENTS: &str = "laneway_events_total";
/// Events dropped because the event log was full.
pub const EVENTS_DROPPED: &str = "laneway_events_dropped_total";
/// Events per webhook, by `webhook` and `result` (sent, failed, dropped).
pub const WEBHOOK_EVENTS: &str = "laneway_webhook_events_total";
/// Events a webhook has not got yet, by `webhook` (`none` at 0 when no
/// webhook is configured).
pub const WEBHOOK_BACKLOG: &str = "laneway_webhook_backlog";
/// Age of the oldest event a webhook has not got, seconds, by `webhook`.
pub const WEBHOOK_OLDEST: &str = "laneway_webhook_oldest_seconds";
/// Shaping rules holding a provider now, by `provider` and `action`.
pub const SHAPING_ACTIVE: &str = "laneway_shaping_rules_active";
/// Replies that matched a shaping rule, by `provider` and `action`.
pub const SHAPING_MATCHES: &str = "laneway_shaping_matches_total";
/// Ready work of the ten busiest destination sites, by `site` (gauge,
/// refreshed at scrape time; a site that leaves the ten is set to 0;
/// `site="none"` at 0 until a scrape saw work queued).
pub const DESTINATION_READY: &str = "laneway_destination_ready";
/// TLS failures, by `direction` (in, out) and `reason` (outbound: the
/// RFC 8460 result type; inbound: `handshake`, `timeout`).
pub const TLS_FAILURES: &str = "laneway_tls_failures_total";
/// Free bytes on the spool's file system (gauge, refreshed at scrape time).
pub const SPOOL_FREE: &str = "laneway_spool_free_bytes";
/// `[spool] min_free_bytes`: below it new mail is refused (gauge).
pub const SPOOL_MIN_FREE: &str = "laneway_spool_min_free_bytes";

/// The `reason` values of [`TLS_FAILURES`] by direction, for the series
/// exported (zero) from the start.
pub const TLS_FAILURE_REASONS: [(&str, &str); 7] = [
    ("in", "handshake"),
    ("in", "timeout"),
    ("out", "starttls-not-supported"),
    ("out", "certificate-host-mismatch"),
    ("out", "certificate-expired"),
    ("out", "certificate-not-trusted"),
    ("out", "validation-failure"),
];

/// Lane label values.
pub const LANES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// The label value of a lane.
pub fn lane(p: crate::Priority) -> &'static str {
    LANES[p.index()]
}

/// Histogram buckets for latencies in seconds (5 ms … 1 h).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Histogram buckets for spool writes in seconds (0.1 ms … 5 s).
pub const WRITE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// Registers the help text of every metric with the installed recorder.
pub fn describe() {
    describe_gauge!(
        QUEUE_MESSAGES,
        Unit::Count,
        "Messages in the queue, per lane."
    );
    describe_gauge!(
        QUEUE_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest queued message, per lane."
    );
    describe_gauge!(
        QUEUE_DEFERRED,
        Unit::Count,
        "Messages waiting for a retry, per lane."
    );
    describe_counter!(
        RECEIVED,
        Unit::Count,
        "Messages accepted, per front door and lane."
    );
    describe_counter!(
        DELIVERED,
        Unit::Count,
        "Recipients delivered to the next hop, per lane."
    );
    describe_counter!(
        DEFERRED,
        Unit::Count,
        "Recipient delivery attempts deferred, per lane."
    );
    describe_counter!(
        BOUNCED,
        Unit::Count,
        "Recipients failed permanently, per lane and bounce class."
    );
    describe_counter!(
        EXPIRED,
        Unit::Count,
        "Recipients given up on after max_age, per lane."
    );
    describe_histogram!(
        DELIVERY_LATENCY,
        Unit::Seconds,
        "Time from acceptance to the next hop's 250, per lane."
    );
    describe_counter!(
        CONNECTIONS,
        Unit::Count,
        "SMTP connections opened, by direction."
    );
    describe_gauge!(
        CONNECTIONS_ACTIVE,
        Unit::Count,
        "SMTP connections open now, by direction."
    );
    describe_counter!(TLS, Unit::Count, "TLS sessions negotiated, by direction.");
    describe_histogram!(
        SPOOL_WRITE,
        Unit::Seconds,
        "Time to write a message durably to the spool."
    );
    describe_counter!(
        API_REQUESTS,
        Unit::Count,
        "HTTP API requests, by route and status."
    );
    describe_gauge!(DESTINATIONS, Unit::Count, "Destination sites by health.");
    describe_counter!(
        DSNS,
        Unit::Count,
        "Delivery status notifications generated, by lane and action."
    );
    describe_gauge!(
        SUPPRESSIONS,
        Unit::Count,
        "Suppressed recipients in the store."
    );
    describe_counter!(
        TLS_POLICY,
        Unit::Count,
        "Outbound connections by the TLS policy they were made under."
    );
    describe_counter!(
        DKIM,
        Unit::Count,
        "Messages DKIM-signed at ingest, by result."
    );
    describe_gauge!(
        CLUSTER_CONNECTED,
        Unit::Count,
        "1 while this node reaches the cluster's Redis, else 0."
    );
    describe_counter!(
        EVENTS,
        Unit::Count,
        "Events stored in the event log, by type."
    );
    describe_counter!(
        EVENTS_DROPPED,
        Unit::Count,
        "Events dropped because the event log reached [events] max_size."
    );
    describe_counter!(
        WEBHOOK_EVENTS,
        Unit::Count,
        "Events per webhook, by result: sent (2xx), failed (a try that did not get a 2xx), dropped (older than max_age, or trimmed)."
    );
    describe_gauge!(
        WEBHOOK_BACKLOG,
        Unit::Count,
        "Events a webhook has not got yet."
    );
    describe_gauge!(
        WEBHOOK_OLDEST,
        Unit::Seconds,
        "Age of the oldest event a webhook has not got, seconds (0 when none waits)."
    );
    describe_counter!(
        TLS_FAILURES,
        Unit::Count,
        "TLS failures: outbound by RFC 8460 result type (the delivery is deferred or, if opportunistic, retried in plaintext), inbound handshakes that failed or timed out."
    );
    describe_gauge!(
        DESTINATION_READY,
        Unit::Count,
        "Ready work of the ten busiest destination sites (0 for a site that was among them before; site=none at 0 until a scrape saw work queued)."
    );
    describe_gauge!(
        SPOOL_FREE,
        Unit::Bytes,
        "Free bytes on the spool's file system."
    );
    describe_gauge!(
        SPOOL_MIN_FREE,
        Unit::Bytes,
        "[spool] min_free_bytes: below it new mail is refused with 452 4.3.1."
    );
    for (direction, reason) in TLS_FAILURE_REASONS {
        metrics::counter!(TLS_FAILURES, "direction" => direction, "reason" => reason).increment(0);
    }
    describe_gauge!(
        SHAPING_ACTIVE,
        Unit::Count,
        "Shaping rules holding a provider now (suspending, throttling or bouncing its bulk lanes), by provider and action."
    );
    describe_counter!(
        SHAPING_MATCHES,
        Unit::Count,
        "Remote replies that matched a shaping rule's regex, by provider and action (a rule with a threshold starts once enough match)."
    );
    describe_gauge!(
        CLUSTER_NODES,
        Unit::Count,
        "Nodes alive in the cluster view, this one included."
    );
}

#[cfg(test)]
mod tests {
    /// Every metric constant has a description (promtool insists on HELP text).
    #[test]
    fn every_metric_is_described() {
        let src = include_str!("metrics.rs");
        let body = &src[src.find("pub fn describe()").expect("describe")..];
        for line in src
            .lines()
            .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \"laneway_"))
        {
            let name = line["pub const ".len()..].split(':').next().unwrap();
            assert!(
                body.contains(&format!("({name},"))
                    || body.contains(&format!("(\n        {name},")),
                "{name} has no description"
            );
        }
    }
}
