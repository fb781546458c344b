//! Liveness, readiness (the same check SMTP admission uses: spool space
//! and not draining) and the Prometheus text.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Ctx;
use crate::error::ApiError;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "alive"}))
}

/// `GET /readyz`: ready to accept mail.
pub async fn readyz(State(ctx): State<Ctx>) -> Response {
    match ctx.api.ingest.admit() {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": e.to_string()})),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(ctx): State<Ctx>) -> Response {
    match &ctx.api.metrics {
        Some(render) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            render(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "metrics are not enabled",
        )
        .into_response(),
    }
}

/// Anything else.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /api/v1/openapi.json",
    )
}
