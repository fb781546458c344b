//! The OpenAPI 3 document, served at `GET /api/v1/openapi.json`. A test
//! checks that every path and method it lists is routed.

use axum::http::header;
use axum::response::IntoResponse;

/// The document.
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json`
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
