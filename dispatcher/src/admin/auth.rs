//! The admin token: checked as a digest, from the `Authorization` header or the dashboard's
//! cookie; state changes made with the cookie alone must come from the dashboard's own origin
//! (no cross-site request forgery).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

use super::{AdminState, COOKIE};

pub(super) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// How a request proved it holds the admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Credential {
    /// `Authorization: Bearer`: a script or the CLI; a browser never adds it on its own.
    Bearer,
    /// The dashboard's cookie, which a browser sends with any request to this server, including
    /// one a page of another site makes it send.
    Cookie,
}

/// Whether the request carries the admin token (header or cookie); compared as digests.
pub(super) fn authorised(state: &AdminState, headers: &HeaderMap) -> bool {
    credential(state, headers).is_some()
}

/// How the request carries the admin token, if it does: the header wins over the cookie.
pub(super) fn credential(state: &AdminState, headers: &HeaderMap) -> Option<Credential> {
    let expected = state.token_digest?;
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
    if bearer.is_some_and(|token| digest(&token) == expected) {
        return Some(Credential::Bearer);
    }
    cookie.filter(|token| digest(token) == expected).map(|_| Credential::Cookie)
}

/// Whether a browser says the request comes from a page of this very origin: `Sec-Fetch-Site:
/// same-origin`, or else an `Origin` whose host and port are the request's `Host`. A request
/// that says neither is not trusted.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin";
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(_, authority)| authority == host),
        _ => false,
    }
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
    let Some(credential) = credential(&state, request.headers()) else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong admin token").into_response();
    };
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if credential == Credential::Cookie && !safe && !same_origin(request.headers()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "operator actions with the dashboard cookie must come from the dashboard itself",
        )
        .into_response();
    }
    next.run(request).await
}
