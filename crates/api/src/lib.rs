//! Laneway's HTTP API (axum): submission where applications choose the
//! lane (`priority` field or `X-Priority-Queue`), queue administration
//! like `postqueue`/`postsuper`, health checks and the Prometheus
//! endpoint. One router serves TCP with bearer tokens; the same routes
//! serve the local control socket, where file permissions are the
//! authority.

pub mod error;
pub mod keys;
mod routes;
pub mod validate;

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use laneway_common::admin::Admin;
use laneway_common::config::Scope;
use laneway_common::{Ingest, Priority};

use crate::error::ApiError;
use crate::keys::{Key, Keys};

pub use routes::openapi::OPENAPI;

/// Settings of the API (swapped on reload).
#[derive(Debug)]
pub struct ApiSettings {
    /// The keys.
    pub keys: Keys,
    /// Largest message in bytes.
    pub max_message_size: u64,
    /// Most recipients per submission.
    pub max_recipients: usize,
    /// `[queue] default_priority`.
    pub default_priority: Priority,
    /// Our host name (Message-ID).
    pub hostname: String,
    /// The shaping files' providers and domains, as `GET /api/v1/shaping` shows them.
    pub shaping: laneway_common::admin::ShapingView,
}

/// Renders the Prometheus text (refreshing gauges first).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// What the handlers share.
pub struct Api {
    /// Where submissions go.
    pub ingest: Arc<dyn Ingest>,
    /// The queue.
    pub admin: Arc<dyn Admin>,
    /// Current settings.
    pub settings: ArcSwap<ApiSettings>,
    /// The metrics endpoint, if enabled.
    pub metrics: Option<MetricsRender>,
}

/// A router's view: the API and whether requests come over the control socket.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub api: Arc<Api>,
    pub local: bool,
}

impl Ctx {
    /// The key of a request, checked for `scope`.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Key, ApiError> {
        if self.local {
            return Ok(Key::local());
        }
        self.api.settings.load().keys.authorize(headers, scope)
    }
}

/// A request made with the `admin` scope: the extractor checks the key
/// before the handler runs (`401`/`403` as JSON otherwise).
pub(crate) struct AdminCtx(pub Ctx);

impl axum::extract::FromRequestParts<Ctx> for AdminCtx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ctx: &Ctx,
    ) -> Result<AdminCtx, ApiError> {
        ctx.authorize(&parts.headers, Scope::Admin)?;
        Ok(AdminCtx(ctx.clone()))
    }
}

async fn count_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let res = next.run(req).await;
    metrics::counter!(laneway_common::metrics::API_REQUESTS, "route" => route, "status" => res.status().as_str().to_string())
        .increment(1);
    res
}

fn routes(ctx: Ctx) -> Router {
    Router::new()
        .route("/api/v1/messages", post(routes::submit::send))
        .route("/api/v1/messages/raw", post(routes::submit::raw))
        .route("/api/v1/queue", get(routes::admin::summary))
        .route("/api/v1/queue/messages", get(routes::admin::list))
        .route("/api/v1/queue/flush", post(routes::admin::flush))
        .route("/api/v1/queue/import", post(routes::cluster::import))
        .route(
            "/api/v1/queue/drain",
            post(routes::cluster::drain).get(routes::cluster::drain_status),
        )
        .route("/api/v1/cluster", get(routes::cluster::view))
        .route("/api/v1/events", get(routes::events::list))
        .route(
            "/api/v1/messages/{id}/events",
            get(routes::events::of_message),
        )
        .route(
            "/api/v1/messages/{id}",
            get(routes::admin::detail).delete(routes::admin::delete),
        )
        .route("/api/v1/messages/{id}/retry", post(routes::admin::retry))
        .route(
            "/api/v1/messages/{id}/priority",
            post(routes::admin::priority),
        )
        .route(
            "/api/v1/destinations/{domain}/suspend",
            post(routes::admin::suspend),
        )
        .route(
            "/api/v1/destinations/{domain}/resume",
            post(routes::admin::resume),
        )
        .route(
            "/api/v1/suppressions",
            get(routes::suppressions::list)
                .post(routes::suppressions::add)
                .delete(routes::suppressions::remove),
        )
        .route(
            "/u/{token}",
            post(routes::unsubscribe::post).get(routes::unsubscribe::page),
        )
        .route("/api/v1/shaping", get(routes::admin::shaping))
        .route(
            "/api/v1/domains/{domain}/check",
            get(routes::admin::domain_check),
        )
        .route(
            "/api/v1/shaping/{provider}",
            axum::routing::delete(routes::admin::shaping_clear),
        )
        .route("/api/v1/openapi.json", get(routes::openapi::document))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .fallback(routes::health::not_found)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(middleware::from_fn(count_requests))
        .with_state(ctx)
}

/// The API over TCP (bearer tokens).
pub fn router(api: Arc<Api>) -> Router {
    routes(Ctx { api, local: false })
}

/// The API over the local control socket (no token: the socket's file
/// permissions decide who may use it).
pub fn control_router(api: Arc<Api>) -> Router {
    routes(Ctx { api, local: true })
}

/// The `[metrics]` listener: `/metrics`, `/healthz`, `/readyz`.
pub fn metrics_router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/metrics", get(routes::health::metrics))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .fallback(routes::health::not_found)
        .with_state(Ctx { api, local: false })
}

#[cfg(test)]
mod tests;
