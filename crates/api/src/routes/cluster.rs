//! More than one node (scope `admin`): the cluster view, and handing a
//! node's queue to another (`laneway queue drain --to URL`).

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use laneway_common::admin::{DrainRequest, ImportedMessage};
use serde_json::{Value, json};

use crate::AdminCtx;
use crate::error::{ApiError, parse_json};

/// `GET /api/v1/cluster`: every node alive, with its lanes.
pub async fn view(AdminCtx(ctx): AdminCtx) -> Json<Value> {
    Json(serde_json::to_value(ctx.api.admin.cluster().await).unwrap_or_default())
}

/// `POST /api/v1/queue/import`: spools a message another node hands over
/// (id, lane, envelope, recipient states, message bytes) before answering.
/// 201 when spooled, 200 when it was here already.
pub async fn import(
    AdminCtx(ctx): AdminCtx,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let m: ImportedMessage = parse_json(&body)?;
    if m.lane > 9 {
        return Err(ApiError::field(
            "invalid_lane",
            "lane",
            format!("lane {} is not 0–9", m.lane),
        ));
    }
    if m.envelope.recipients.is_empty() {
        return Err(ApiError::field(
            "invalid_envelope",
            "envelope.recipients",
            "a message needs at least one recipient",
        ));
    }
    let id = m.id;
    let queued = ctx.api.admin.import(m).await?;
    let status = if queued {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({"id": id, "queued": queued}))))
}

/// `POST /api/v1/queue/drain` with `{"to", "key"}`: starts handing every
/// queued message to the node at `to`; 202 with the drain's status.
pub async fn drain(
    AdminCtx(ctx): AdminCtx,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let r: DrainRequest = parse_json(&body)?;
    if !(r.to.starts_with("http://") || r.to.starts_with("https://")) {
        return Err(ApiError::field(
            "invalid_url",
            "to",
            format!("{:?} is not an http:// or https:// URL", r.to),
        ));
    }
    if r.key.trim().is_empty() {
        return Err(ApiError::field(
            "invalid_key",
            "key",
            "an API key of the other node (scope admin) is needed",
        ));
    }
    let s = ctx.api.admin.drain(r)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::to_value(s).unwrap_or_default()),
    ))
}

/// `GET /api/v1/queue/drain`: how the last drain went.
pub async fn drain_status(AdminCtx(ctx): AdminCtx) -> Json<Value> {
    Json(serde_json::to_value(ctx.api.admin.drain_status()).unwrap_or_default())
}
