//! The HTTP layer's error answer: a status, a stable `code` and a human `message` as JSON.
//! Internal details go to the log, never to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::intake::IntakeError;

/// An error as the client sees it: a status, a stable `code` and a human `message`. Internal
/// details go to the log, never to the client.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// Stable and machine-readable, e.g. `payload_too_large`, `not_found`, `result_not_ready`.
    #[schema(example = "payload_too_large")]
    code: &'static str,
    /// For people; its wording may change.
    #[schema(example = "documents may be at most 26214400 bytes")]
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    pub(crate) fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such document")
    }

    pub(crate) fn unavailable(err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "backend unavailable");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is temporarily unavailable; retry later")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = Json(ErrorBody { code: self.code, message: self.message });
        let mut response = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The body may be partly unread: this connection cannot carry another request.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<IntakeError> for ApiError {
    fn from(err: IntakeError) -> ApiError {
        match err {
            IntakeError::KeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different document",
            ),
            other => ApiError::unavailable(other),
        }
    }
}
