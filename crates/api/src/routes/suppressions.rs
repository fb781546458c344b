//! The suppression list (scope `admin`): `GET /api/v1/suppressions`,
//! `POST` to add one, `DELETE ?address=&sender_domain=` to lift one.

use axum::Json;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AdminCtx;
use crate::error::{ApiError, parse_json};
use crate::validate;

/// Query of `GET /api/v1/suppressions`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    sender_domain: Option<String>,
    #[serde(flatten)]
    page: validate::Page,
}

/// `GET /api/v1/suppressions?sender_domain=…&limit=…&cursor=…`: a page of
/// the list, in (sender domain, address) order.
pub async fn list(
    AdminCtx(ctx): AdminCtx,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = validate::limit(q.page.limit.as_deref())?.unwrap_or(100);
    if let Some(d) = &q.sender_domain {
        validate::domain("sender_domain", d)?;
    }
    let sd = q.sender_domain.as_deref().map(str::to_ascii_lowercase);
    let (list, next) = ctx
        .api
        .admin
        .suppressions(sd.as_deref(), limit, q.page.cursor.as_deref())
        .await
        .map_err(|e| match e {
            laneway_common::admin::AdminError::Invalid(m) => {
                ApiError::field("invalid_cursor", "cursor", m)
            }
            other => other.into(),
        })?;
    Ok(Json(json!({"suppressions": list, "next_cursor": next})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    address: String,
    sender_domain: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    lanes: Option<String>,
}

/// `POST /api/v1/suppressions` with `{"address", "sender_domain", "reason", "lanes": "all"|"bulk"}`
pub async fn add(
    AdminCtx(ctx): AdminCtx,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let b: AddBody = parse_json(&body)?;
    validate::address("address", &b.address)?;
    validate::domain("sender_domain", &b.sender_domain)?;
    let reason = b.reason.unwrap_or_else(|| "manual".into());
    validate::no_injection("reason", &reason)?;
    let all = match b.lanes.as_deref() {
        None | Some("all") => true,
        Some("bulk") => false,
        Some(o) => {
            return Err(ApiError::field(
                "invalid_lanes",
                "lanes",
                format!("lanes is \"all\" or \"bulk\", got {o:?}"),
            ));
        }
    };
    let r = laneway_common::admin::SuppressRequest {
        address: b.address.clone(),
        sender_domain: b.sender_domain.to_ascii_lowercase(),
        reason,
        all_lanes: all,
    };
    let e = ctx.api.admin.suppress(&r).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(e).unwrap_or_default()),
    ))
}

/// Query of `DELETE /api/v1/suppressions`.
#[derive(Debug, Deserialize)]
pub struct RemoveQuery {
    address: Option<String>,
    sender_domain: Option<String>,
}

/// `DELETE /api/v1/suppressions?address=&sender_domain=`
pub async fn remove(
    AdminCtx(ctx): AdminCtx,
    Query(q): Query<RemoveQuery>,
) -> Result<Json<Value>, ApiError> {
    let address = q
        .address
        .ok_or_else(|| ApiError::field("missing_field", "address", "address is required"))?;
    let sd = q.sender_domain.ok_or_else(|| {
        ApiError::field(
            "missing_field",
            "sender_domain",
            "sender_domain is required",
        )
    })?;
    validate::address("address", &address)?;
    validate::domain("sender_domain", &sd)?;
    let sd_lower = sd.to_ascii_lowercase();
    let removed = ctx.api.admin.unsuppress(&address, &sd_lower).await?;
    if !removed {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{address} is not suppressed for {sd}"),
        ));
    }
    Ok(Json(
        json!({"address": address, "sender_domain": sd, "removed": true}),
    ))
}
