//! The admin token: checked as a digest, from the `Authorization` header or the dashboard's
//! cookie.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

use super::{AdminState, COOKIE};

pub(super) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether the request carries the admin token (header or cookie); compared as digests.
pub(super) fn authorised(state: &AdminState, headers: &HeaderMap) -> bool {
    let Some(expected) = state.token_digest else { return false };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(&format!("{COOKIE}=")).map(str::to_owned))
        .next();
    [bearer, cookie].into_iter().flatten().any(|token| digest(&token) == expected)
}

pub(super) async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if state.token_digest.is_none() {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "no admin token is configured (api.admin_token)",
        )
        .into_response();
    }
    if !authorised(&state, request.headers()) {
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong admin token").into_response();
    }
    next.run(request).await
}
