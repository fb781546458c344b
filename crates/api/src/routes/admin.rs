//! Queue administration (scope `admin`), the HTTP form of `laneway queue`.

use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use laneway_common::admin::MessageFilter;
use laneway_common::{MessageId, Priority};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, parse_json};
use crate::validate;
use crate::{AdminCtx, Ctx};

fn id(s: &str) -> Result<MessageId, ApiError> {
    s.parse().map_err(|_| {
        ApiError::field(
            "invalid_id",
            "id",
            format!("{s:?} is not a queue id (16 hex digits)"),
        )
    })
}

/// `GET /api/v1/queue`
pub async fn summary(AdminCtx(ctx): AdminCtx) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(ctx.api.admin.summary()).unwrap_or_default(),
    ))
}

/// `GET /api/v1/shaping`: the shaping files' providers and domains with
/// their effective limits (`laneway shaping show`).
pub async fn shaping(AdminCtx(ctx): AdminCtx) -> Result<Json<Value>, ApiError> {
    let mut view = ctx.api.settings.load().shaping.clone();
    view.active = ctx.api.admin.shaping_active();
    Ok(Json(serde_json::to_value(&view).unwrap_or_default()))
}

/// `GET /api/v1/domains/{domain}/check`: is the sender domain's DNS right
/// for this relay (`laneway domain check`)?
pub async fn domain_check(
    AdminCtx(ctx): AdminCtx,
    Path(d): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let d = domain(&d)?;
    match ctx.api.admin.domain_check(&d).await? {
        Some(report) => Ok(Json(serde_json::to_value(&report).unwrap_or_default())),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_domain",
            format!("{d} is not a [[domain]] of the configuration"),
        )),
    }
}

/// `DELETE /api/v1/shaping/{provider}`: ends the automation rule holding
/// a provider (`laneway shaping clear`).
pub async fn shaping_clear(
    AdminCtx(ctx): AdminCtx,
    Path(provider): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !ctx.api.admin.shaping_clear(&provider)? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_active_rule",
            format!(
                "no shaping rule holds {provider:?} (laneway shaping show lists those that do)"
            ),
        ));
    }
    Ok(Json(json!({"provider": provider, "cleared": true})))
}

/// Query of `GET /api/v1/queue/messages` (all strings, checked here so that
/// a bad value gets a 400 naming it).
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    lane: Option<String>,
    domain: Option<String>,
    sender: Option<String>,
    state: Option<String>,
    #[serde(flatten)]
    page: validate::Page,
}

/// `GET /api/v1/queue/messages`
pub async fn list(
    AdminCtx(ctx): AdminCtx,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let lane = match &q.lane {
        Some(l) => Some(
            l.parse::<Priority>()
                .map_err(|e| ApiError::field("invalid_lane", "lane", e.to_string()))?,
        ),
        None => None,
    };
    if let Some(s) = &q.state
        && !["ready", "deferred", "active", "resolving"].contains(&s.as_str())
    {
        return Err(ApiError::field(
            "invalid_state",
            "state",
            "state is one of ready, deferred, active, resolving",
        ));
    }
    let limit = validate::limit(q.page.limit.as_deref())?;
    let cursor = match &q.page.cursor {
        Some(c) => Some(id(c).map_err(|_| {
            ApiError::field(
                "invalid_cursor",
                "cursor",
                "not a cursor from an earlier page",
            )
        })?),
        None => None,
    };
    let filter = MessageFilter {
        lane,
        domain: q.domain.clone(),
        sender: q.sender.clone(),
        state: q.state.clone(),
        limit,
        cursor,
    };
    let (messages, next) = ctx.api.admin.list(&filter);
    Ok(Json(json!({"messages": messages, "next_cursor": next})))
}

/// `GET /api/v1/messages/{id}`
pub async fn detail(
    AdminCtx(ctx): AdminCtx,
    Path(i): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let d = ctx.api.admin.detail(id(&i)?).await?;
    Ok(Json(serde_json::to_value(d).unwrap_or_default()))
}

/// Query of `DELETE /api/v1/messages/{id}`.
#[derive(Debug, Deserialize)]
pub struct DeleteQuery {
    bounce: Option<String>,
}

/// `DELETE /api/v1/messages/{id}[?bounce=true]`
pub async fn delete(
    AdminCtx(ctx): AdminCtx,
    Path(i): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    let bounce = match q.bounce.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(ApiError::field(
                "invalid_bounce",
                "bounce",
                format!("bounce is true or false, got {other:?}"),
            ));
        }
    };
    let id = id(&i)?;
    ctx.api.admin.delete(id, bounce).await?;
    Ok(Json(json!({"id": id, "deleted": true, "bounced": bounce})))
}

/// `POST /api/v1/messages/{id}/retry`
pub async fn retry(
    AdminCtx(ctx): AdminCtx,
    Path(i): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = id(&i)?;
    ctx.api.admin.retry(id)?;
    Ok(Json(json!({"id": id, "retry": "scheduled now"})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriorityBody {
    priority: Value,
}

/// `POST /api/v1/messages/{id}/priority` with `{"priority": N}`
pub async fn priority(
    AdminCtx(ctx): AdminCtx,
    Path(i): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = id(&i)?;
    let b: PriorityBody = parse_json(&body)?;
    let n = b
        .priority
        .as_i64()
        .filter(|_| b.priority.is_i64() || b.priority.is_u64())
        .ok_or_else(|| {
            ApiError::field(
                "invalid_priority",
                "priority",
                format!(
                    "priority must be an integer from 0 to 9, got {}",
                    b.priority
                ),
            )
        })?;
    let lane = Priority::new(n)
        .map_err(|e| ApiError::field("invalid_priority", "priority", e.to_string()))?;
    let d = ctx.api.admin.set_priority(id, lane).await?;
    Ok(Json(serde_json::to_value(d).unwrap_or_default()))
}

/// `POST /api/v1/queue/flush`
pub async fn flush(AdminCtx(ctx): AdminCtx) -> Result<Json<Value>, ApiError> {
    let n = ctx.api.admin.flush();
    Ok(Json(json!({"flushed": n})))
}

/// A destination: a domain, `.example.com` (its subdomains) or `*`.
fn domain(d: &str) -> Result<String, ApiError> {
    laneway_common::domain::DomainPattern::parse(d)
        .map(|p| p.to_string())
        .map_err(|e| ApiError::field("invalid_domain", "domain", e))
}

/// `POST /api/v1/destinations/{domain}/suspend`
pub async fn suspend(
    AdminCtx(ctx): AdminCtx,
    Path(d): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    hold(&ctx, &d, true)
}

/// `POST /api/v1/destinations/{domain}/resume`
pub async fn resume(
    AdminCtx(ctx): AdminCtx,
    Path(d): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    hold(&ctx, &d, false)
}

fn hold(ctx: &Ctx, d: &str, on: bool) -> Result<(StatusCode, Json<Value>), ApiError> {
    let d = domain(d)?;
    if on {
        ctx.api.admin.suspend(&d)?;
    } else {
        ctx.api.admin.resume(&d)?;
    }
    Ok((StatusCode::OK, Json(json!({"domain": d, "suspended": on}))))
}
