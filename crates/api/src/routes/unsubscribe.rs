//! One-click unsubscribe (RFC 8058): `POST /u/<token>`, no API key — the
//! signed token is the authority. The recipient it names goes on its sender
//! domain's list for bulk lanes only; transactional mail still arrives.
//!
//! `GET` never unsubscribes (link scanners and mail previews fetch links):
//! it answers a small page with a button that makes the `POST`, for a person
//! whose mail client opened the link in a browser.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Ctx;
use crate::error::ApiError;

/// Tokens are base32; anything longer than this is not one of ours.
const MAX_TOKEN: usize = 1024;

fn forged() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_token",
        "this unsubscribe link is not valid",
    )
}

fn plausible(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `POST /u/{token}`: 200 `{"status":"unsubscribed"}` (also when it already
/// was), 404 for a token that is not ours.
pub async fn post(State(ctx): State<Ctx>, Path(token): Path<String>) -> Result<Response, ApiError> {
    if !plausible(&token) {
        return Err(forged());
    }
    match ctx.api.admin.unsubscribe(&token).await? {
        true => Ok(Json(json!({"status": "unsubscribed"})).into_response()),
        false => Err(forged()),
    }
}

/// `GET /u/{token}`: a confirmation page whose button POSTs.
pub async fn page(Path(token): Path<String>) -> Result<Response, ApiError> {
    if !plausible(&token) {
        return Err(forged());
    }
    let html = format!(
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>\
         <form method=post action=\"{token}\">\
         <input type=hidden name=List-Unsubscribe value=One-Click>\
         <p>Stop receiving these messages?</p><button>Unsubscribe</button></form>\n"
    );
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}
