//! `[cluster]`: more than one node, sharing destination limits,
//! suppressions, bounce tokens, holds and a view of each other through
//! Redis (DESIGN §4a). Absent: one node, no Redis.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::units;

/// `[cluster]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS.
    /// Redis ≥ 6.2 or Valkey ≥ 7; with an ACL user it needs the key and
    /// channel patterns of `prefix` (`~lw:* &lw:*`).
    pub redis: String,
    /// This node's name in logs, events, `Received:` and the cluster view.
    /// Default: `[server] hostname`.
    #[serde(default)]
    pub node_id: Option<String>,
    /// How long a destination connection slot stays taken without renewal:
    /// a crashed node's slots come back after this. Default `"30s"`.
    #[serde(default = "default_lease", deserialize_with = "units::duration")]
    pub lease: Duration,
    /// PEM trust anchors for `rediss://` (they replace the system roots).
    #[serde(default)]
    pub redis_ca: Option<PathBuf>,
    /// Prefix of every key and stream Laneway uses. Default `"lw:"`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_lease() -> Duration {
    Duration::from_secs(30)
}

fn default_prefix() -> String {
    "lw:".into()
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            redis: String::new(),
            node_id: None,
            lease: default_lease(),
            redis_ca: None,
            prefix: default_prefix(),
        }
    }
}

impl Cluster {
    /// The node name in force.
    pub fn node(&self, hostname: &str) -> String {
        self.node_id.clone().unwrap_or_else(|| hostname.to_string())
    }
}
