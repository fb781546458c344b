//! The link to Redis: one multiplexed, self-reconnecting connection for
//! commands and scripts, every call bounded by a short timeout, and a
//! breaker that stops asking for a moment after a failure — so that a Redis
//! that is away costs the delivery path one fast error, never a stall.
//! Whether Redis answers is logged once per change and exported as
//! `laneway_cluster_connected`.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Longest a call to Redis may take.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failure, calls fail at once for this long (the heartbeat keeps
/// probing).
const BREAKER: Duration = Duration::from_secs(1);

/// Redis cannot be used right now.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Redis is unreachable: {0}")]
pub struct Down(pub String);

/// The shared connection.
pub(crate) struct Link {
    pub(crate) client: redis::Client,
    manager: ConnectionManager,
    up: AtomicBool,
    broken_at: Mutex<Option<Instant>>,
    pub(crate) prefix: String,
}

impl Link {
    /// A link to `url` (not connected yet: that happens on first use, so a
    /// node starts whether or not Redis is there).
    pub(crate) fn new(url: &str, ca: Option<&[u8]>, prefix: &str) -> Result<Link, String> {
        use redis::IntoConnectionInfo;
        // small request/response scripts: no Nagle delay
        let info = url
            .into_connection_info()
            .map_err(|e| format!("[cluster] redis: {e}"))?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = match ca {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| format!("[cluster] redis: {e}"))?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), cfg)
            .map_err(|e| format!("[cluster] redis: {e}"))?;
        Ok(Link {
            client,
            manager,
            up: AtomicBool::new(false),
            broken_at: Mutex::new(None),
            prefix: prefix.to_string(),
        })
    }

    /// A key under the prefix.
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// Whether the last call reached Redis.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn mark(&self, up: bool, why: &str) {
        let was = self.up.swap(up, Ordering::Relaxed);
        *self.broken_at.lock().unwrap_or_else(|e| e.into_inner()) = (!up).then(Instant::now);
        if was != up {
            metrics::gauge!(laneway_common::metrics::CLUSTER_CONNECTED).set(if up {
                1.0
            } else {
                0.0
            });
            if up {
                tracing::info!(
                    "cluster: Redis reachable; shared limits, suppressions, tokens and holds in use"
                );
            } else {
                tracing::warn!(error = %why, "cluster: Redis unreachable; going on with local shares of the limits and local copies (nothing is lost or bounced)");
            }
        }
    }

    /// Runs `f` on the connection, within [`CALL_TIMEOUT`]; while the
    /// breaker is open it fails at once unless `probe`.
    pub(crate) async fn call<T, F, Fut>(&self, probe: bool, f: F) -> Result<T, Down>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !probe
            && let Some(at) = *self.broken_at.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < BREAKER
        {
            return Err(Down("waiting before trying again".into()));
        }
        match tokio::time::timeout(CALL_TIMEOUT * 2, f(self.manager.clone())).await {
            Ok(Ok(v)) => {
                if !self.is_up() {
                    self.mark(true, "");
                }
                Ok(v)
            }
            Ok(Err(e))
                if !(e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()) =>
            {
                // Redis answered: the link is fine, the command was not
                Err(Down(e.to_string()))
            }
            Ok(Err(e)) => {
                self.mark(false, &e.to_string());
                Err(Down(e.to_string()))
            }
            Err(_) => {
                self.mark(false, "timed out");
                Err(Down("timed out".into()))
            }
        }
    }
}
