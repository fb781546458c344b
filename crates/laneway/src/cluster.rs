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

/// Shares the automation's rules through the cluster: the rules this node
/// starts or clears go to Redis, the other nodes' come back into it.
pub fn share_shaping(c: &laneway_cluster::Cluster, a: &Arc<laneway_outbound::Automation>) {
    struct Shared(Arc<laneway_cluster::ClusterShaping>);
    impl laneway_outbound::automation::SharedShaping for Shared {
        fn publish(&self, provider: &str, rule: Option<&laneway_outbound::automation::ActiveRule>) {
            self.0
                .publish(provider, rule.and_then(|r| serde_json::to_value(r).ok()));
        }
    }
    a.set_shared(Arc::new(Shared(c.shaping())));
    let a = a.clone();
    c.shaping().on_change(Box::new(move |provider, v| match v {
        None => a.apply_remote(provider, None),
        Some(v) => match serde_json::from_value(v) {
            Ok(rule) => a.apply_remote(provider, Some(rule)),
            Err(e) => {
                tracing::warn!(provider = %provider, error = %e, "cluster: a shaping rule of another node that does not decode")
            }
        },
    }));
}
