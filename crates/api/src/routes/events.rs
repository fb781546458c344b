//! "Where is my message?" (scope `admin`): the kept events of a message,
//! a recipient, a `Message-ID:` or a metadata value, and the whole
//! history a page at a time for a receiver catching up.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query};
use laneway_common::MessageId;
use laneway_common::admin::EventQuery;
use serde_json::Value;

use crate::AdminCtx;
use crate::error::ApiError;
use crate::validate;

/// Reads `after`, `limit` and at most one of `recipient`,
/// `message_id_header`, `meta.<key>`; anything else is a 400 naming it.
fn query(q: &HashMap<String, String>) -> Result<EventQuery, ApiError> {
    let mut out = EventQuery {
        limit: validate::limit(q.get("limit").map(String::as_str))?.unwrap_or(100),
        ..EventQuery::default()
    };
    if let Some(a) = q.get("after") {
        out.after = a.parse().map_err(|_| {
            ApiError::field(
                "invalid_cursor",
                "after",
                "not a cursor from an earlier page",
            )
        })?;
    }
    let mut filters = 0;
    for (k, v) in q {
        match k.as_str() {
            "after" | "limit" => {}
            "recipient" => {
                out.recipient = Some(v.clone());
                filters += 1;
            }
            "message_id_header" => {
                out.message_id_header = Some(v.clone());
                filters += 1;
            }
            m if m.starts_with("meta.") && m.len() > 5 => {
                out.meta = Some((m[5..].to_string(), v.clone()));
                filters += 1;
            }
            other => {
                return Err(ApiError::field(
                    "invalid_query",
                    other.to_string(),
                    format!(
                        "unknown parameter {other:?} (known: after, limit, recipient, message_id_header, meta.<key>)"
                    ),
                ));
            }
        }
    }
    if filters > 1 {
        return Err(ApiError::field(
            "invalid_query",
            "recipient",
            "one of recipient, message_id_header and meta.<key> at a time",
        ));
    }
    Ok(out)
}

async fn page(ctx: &crate::Ctx, q: EventQuery) -> Result<Json<Value>, ApiError> {
    let p = ctx.api.admin.events(q).await?;
    Ok(Json(serde_json::to_value(p).unwrap_or_default()))
}

/// `GET /api/v1/events?after=&limit=&recipient=|message_id_header=|meta.<key>=`
pub async fn list(
    AdminCtx(ctx): AdminCtx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    page(&ctx, query(&q)?).await
}

/// `GET /api/v1/messages/{id}/events`: the whole story of one message,
/// also after it left the queue.
pub async fn of_message(
    AdminCtx(ctx): AdminCtx,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let id: MessageId = id.parse().map_err(|_| {
        ApiError::field(
            "invalid_id",
            "id",
            format!("{id:?} is not a queue id (16 hex digits)"),
        )
    })?;
    let mut q = query(&q)?;
    q.message_id = Some(id);
    page(&ctx, q).await
}
