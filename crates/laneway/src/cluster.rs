//! The daemon's side of `[cluster]`: this node's status for the cluster
//! view, and joining (the shared stores of `laneway-cluster` in place of
//! the local ones).

use std::sync::Arc;

use anyhow::Context;
use laneway_cluster::{Cluster, Options, StatusFn};
use laneway_common::admin::{NodeStatus, rfc3339};
use laneway_common::{Config, Lifecycle};
use laneway_spool::queue::Queue;

/// This node's name: `[cluster] node_id`, else `[server] hostname`.
pub fn node_name(config: &Config) -> String {
    match &config.cluster {
        Some(c) => c.node(&config.server.hostname),
        None => config.server.hostname.clone(),
    }
}

/// What this node reports about itself.
pub fn status(queue: Arc<Queue>, lifecycle: Lifecycle, node: String) -> StatusFn {
    let started = rfc3339(laneway_common::envelope::now_ms());
    Arc::new(move || NodeStatus {
        node: node.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started: started.clone(),
        updated: rfc3339(laneway_common::envelope::now_ms()),
        state: if lifecycle.is_shutting_down() {
            "draining"
        } else {
            "ready"
        }
        .to_string(),
        queue: queue.summary(),
    })
}

/// Joins the cluster when `[cluster]` is set.
pub fn join(
    config: &Config,
    store: &laneway_auth::Store,
    queue: &Arc<Queue>,
    status: StatusFn,
) -> anyhow::Result<Option<Arc<Cluster>>> {
    let Some(c) = &config.cluster else {
        return Ok(None);
    };
    let ca = match &c.redis_ca {
        Some(p) => {
            Some(std::fs::read(p).with_context(|| format!("[cluster] redis_ca {}", p.display()))?)
        }
        None => None,
    };
    let cluster = Cluster::start(
        Options {
            url: c.redis.clone(),
            ca,
            prefix: c.prefix.clone(),
            node: node_name(config),
            lease: c.lease,
        },
        store.clone(),
        queue.clone(),
        status,
    )
    .map_err(anyhow::Error::msg)?;
    Ok(Some(cluster))
}

/// The patterns `[[destination]] hold = true` holds.
pub fn config_holds(config: &Config) -> Vec<String> {
    config
        .destinations
        .iter()
        .filter(|d| d.hold)
        .map(|d| d.domain.clone())
        .collect()
}
