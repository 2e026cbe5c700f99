//! The HTTP layer's error answer: a status, a stable `code` and a human `message` as JSON.
//! Internal details go to the log, never to the client. [`json_errors`] gives the same shape to
//! the answers axum makes on its own (a body it cannot parse, a method a route lacks).

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
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

/// Gives every error answer the JSON `{code, message}` shape: answers of our handlers already
/// have it; the plain-text rejections axum makes itself (malformed JSON, a missing
/// `Content-Type`, a method the route lacks) get a code named after their status and their text
/// as the message. Headers such as `Allow` and `Retry-After` are kept.
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Rejection texts are short; anything longer is cut rather than buffered.
    let text = match http_body_util::Limited::new(body, 4096).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
    let body = ErrorBody { code: status_code_name(status), message };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json))
}

/// The error code for an answer that only has a status.
fn status_code_name(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    #[derive(serde::Deserialize)]
    struct Payload {
        #[allow(dead_code)]
        name: String,
    }

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {bytes:?}"))
    }

    #[tokio::test]
    async fn axums_own_rejections_come_back_as_json_errors() {
        let app = Router::new()
            .route("/thing", post(|_: Json<Payload>| async { "ok" }))
            .layer(axum::middleware::from_fn(json_errors));
        let send = |request: axum::http::request::Builder, body: &'static str| {
            app.clone().oneshot(request.body(Body::from(body)).unwrap())
        };

        let no_type = send(Request::builder().method("POST").uri("/thing"), "{}").await.unwrap();
        assert_eq!(no_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(body_of(no_type).await["code"], "unsupported_media_type");

        let json = Request::builder().method("POST").uri("/thing").header("content-type", "application/json");
        let malformed = send(json, "{").await.unwrap();
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
        let body = body_of(malformed).await;
        assert_eq!(body["code"], "bad_request");
        assert!(body["message"].as_str().unwrap().contains("JSON"), "{body}");

        let get = send(Request::builder().method("GET").uri("/thing"), "").await.unwrap();
        assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(get.headers().contains_key(header::ALLOW), "headers are kept");
        assert_eq!(body_of(get).await["code"], "method_not_allowed");

        let ours = Router::new()
            .route(
                "/",
                axum::routing::get(|| async { ApiError::new(StatusCode::CONFLICT, "result_not_ready", "not yet") }),
            )
            .layer(axum::middleware::from_fn(json_errors));
        let kept = ours.oneshot(Request::builder().uri("/").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(body_of(kept).await["code"], "result_not_ready", "our own errors are untouched");
    }
}
