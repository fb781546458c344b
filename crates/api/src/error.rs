//! API errors: always a JSON body `{"error": {"code", "message", "field"}}`
//! with the right status, never a bare status or axum's default 422.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use laneway_common::IngestError;
use laneway_common::admin::AdminError;
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, e.g. `invalid_priority`.
    pub code: &'static str,
    /// A sentence for humans.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
    /// Seconds to wait before trying again (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// A 400 about one field.
    pub fn field(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, code, message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "field": self.field}});
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (code, field) = match &e {
            IngestError::InvalidPriority { source_name, .. } => {
                ("invalid_priority", Some(source_name.clone()))
            }
            IngestError::SpoolFull => ("insufficient_storage", None),
            IngestError::Draining => ("shutting_down", None),
            IngestError::Io(_) => ("spool_error", None),
            IngestError::Loop(_) => ("mail_loop", Some("content".to_string())),
            IngestError::BadContent(_) => ("invalid_content", Some("content".to_string())),
            IngestError::SenderNotAllowed(_) => ("sender_not_allowed", Some("from".to_string())),
            IngestError::NoRecipients => ("no_valid_recipients", None),
        };
        ApiError {
            field,
            ..ApiError::new(status, code, e.to_string())
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = match e {
            AdminError::NotFound(_) => "not_found",
            AdminError::Busy(_) => "busy",
            AdminError::Invalid(_) => "invalid_request",
            AdminError::Io(_) => "spool_error",
            AdminError::Conflict(_) => "conflict",
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// Parses a JSON body, naming the field at fault on error.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != ".").then_some(path);
        ApiError {
            field,
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", inner.to_string())
        }
    })
}
