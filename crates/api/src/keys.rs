//! API keys: `Authorization: Bearer <token>`, looked up by the SHA-256 of
//! the token (so the configuration holds no secrets), with scopes, allowed
//! sender domains, a default lane and a per-key rate limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode, header};
use laneway_common::Priority;
use laneway_common::config::units::Rate;
use laneway_common::config::{ApiKey, Scope};

use crate::error::ApiError;

/// A key as the API uses it.
#[derive(Debug, Clone)]
pub struct Key {
    /// Name for logs.
    pub name: String,
    /// May submit mail.
    pub send: bool,
    /// May administer the queue.
    pub admin: bool,
    /// Sender domains it may use; `None`: any.
    pub allowed_from_domains: Option<Vec<String>>,
    /// Lane when the request names none.
    pub default_priority: Option<Priority>,
    /// Submissions allowed per period.
    pub rate: Option<Rate>,
}

impl Key {
    /// The key behind the local control socket: everything allowed.
    pub fn local() -> Key {
        Key {
            name: "control-socket".into(),
            send: true,
            admin: true,
            allowed_from_domains: None,
            default_priority: None,
            rate: None,
        }
    }

    /// Whether this key may send as `address` (one rule for every door:
    /// [`laneway_common::domain::may_send_as`]).
    pub fn may_send_as(&self, address: &str) -> bool {
        laneway_common::domain::may_send_as(self.allowed_from_domains.as_deref(), address)
    }
}

pub use laneway_common::token::sha256_hex;

/// The configured keys, by token hash, with their rate-limit state.
#[derive(Debug, Default)]
pub struct Keys {
    by_hash: HashMap<String, Key>,
    next_ok: Mutex<HashMap<String, f64>>,
    epoch: Option<Instant>,
}

impl Keys {
    /// The keys of `[[api.key]]`.
    pub fn new(keys: &[ApiKey]) -> Keys {
        let by_hash = keys
            .iter()
            .map(|k| {
                (
                    k.sha256.to_ascii_lowercase(),
                    Key {
                        name: k.name.clone(),
                        send: k.scopes.contains(&Scope::Send),
                        admin: k.scopes.contains(&Scope::Admin),
                        allowed_from_domains: k.allowed_from_domains.clone(),
                        default_priority: k.default_priority,
                        rate: k.rate,
                    },
                )
            })
            .collect();
        Keys {
            by_hash,
            next_ok: Mutex::new(HashMap::new()),
            epoch: Some(Instant::now()),
        }
    }

    /// The key for a request's `Authorization` header, checked for `scope`.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Key, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "an Authorization: Bearer <token> header is required",
                )
            })?;
        let key = self.by_hash.get(&sha256_hex(token)).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown API token",
            )
        })?;
        let allowed = match scope {
            Scope::Send => key.send,
            Scope::Admin => key.admin,
        };
        if !allowed {
            let s = match scope {
                Scope::Send => "send",
                Scope::Admin => "admin",
            };
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("API key {:?} lacks the {s:?} scope", key.name),
            ));
        }
        Ok(key.clone())
    }

    /// Takes one submission from the key's rate; 429 when it is used up.
    pub fn rate_limit(&self, key: &Key) -> Result<(), ApiError> {
        let Some(rate) = key.rate else { return Ok(()) };
        let now = self.epoch.map(|e| e.elapsed().as_secs_f64()).unwrap_or(0.0);
        // GCRA: up to `count` at once, then one per interval
        let interval = 1.0 / rate.per_second();
        let burst = interval * rate.count as f64;
        let mut m = self.next_ok.lock().unwrap_or_else(|e| e.into_inner());
        let next = m.entry(key.name.clone()).or_insert(now);
        let tat = next.max(now);
        if tat - now > burst - interval + 1e-9 {
            let wait = (tat - now - (burst - interval)).ceil() as u64;
            return Err(ApiError {
                retry_after: Some(wait.max(1)),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("API key {:?} is over its rate of {rate}", key.name),
                )
            });
        }
        *next = tat + interval;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn keys() -> Keys {
        Keys::new(&[ApiKey {
            name: "app".into(),
            sha256: sha256_hex("tok"),
            scopes: vec![Scope::Send],
            allowed_from_domains: Some(vec!["example.com".into()]),
            default_priority: None,
            rate: Some("2/s".parse().unwrap()),
        }])
    }

    fn auth(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(t).unwrap());
        h
    }

    #[test]
    fn tokens_and_scopes() {
        let k = keys();
        assert!(k.authorize(&auth("Bearer tok"), Scope::Send).is_ok());
        assert_eq!(
            k.authorize(&auth("Bearer tok"), Scope::Admin)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            k.authorize(&auth("Bearer nope"), Scope::Send)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            k.authorize(&HeaderMap::new(), Scope::Send)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        let key = k.authorize(&auth("Bearer tok"), Scope::Send).unwrap();
        assert!(key.may_send_as("a@EXAMPLE.com"));
        assert!(!key.may_send_as("a@other.test"));
    }

    #[test]
    fn rate_limit_allows_a_burst_then_refuses() {
        let k = keys();
        let key = k.authorize(&auth("Bearer tok"), Scope::Send).unwrap();
        let ok = (0..10).filter(|_| k.rate_limit(&key).is_ok()).count();
        assert_eq!(ok, 2, "a burst of the rate's count");
        let e = k.rate_limit(&key).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.retry_after.is_some());
    }
}
