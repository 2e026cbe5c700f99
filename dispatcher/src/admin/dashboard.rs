//! The dashboard page (`/dashboard`, which turns `?token=` into a cookie) and its SVG charts.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::board::{Chart, render};
use crate::error::{ApiError, ErrorBody};

use super::AdminState;
use super::COOKIE;
use super::auth::{authorised, digest};

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    token: Option<String>,
}

/// The live dashboard
///
/// An HTML page polling `/admin/overview`. `?token=` with the admin token sets it as an
/// HttpOnly cookie and redirects to the bare URL.
#[utoipa::path(
    get,
    path = "/dashboard",
    operation_id = "dashboard",
    tag = "operators",
    params(("token" = Option<String>, Query, description = "The admin token, once; it becomes a cookie.")),
    responses(
        (status = 200, description = "The dashboard page.", content_type = "text/html", body = String),
        (status = 303, description = "Token accepted: cookie set, redirect to `/dashboard`."),
        (status = 401, description = "No or a wrong admin token.", content_type = "text/html", body = String),
    ),
)]
pub(super) async fn dashboard(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    if let (Some(token), Some(expected)) = (query.token, state.token_digest) {
        if digest(&token) != expected {
            return (StatusCode::UNAUTHORIZED, Html(LOCKED)).into_response();
        }
        let mut response = Redirect::to("/dashboard").into_response();
        let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    }
    if !authorised(&state, &headers) {
        return (StatusCode::UNAUTHORIZED, Html(LOCKED)).into_response();
    }
    let mut response = Html(DASHBOARD).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) const DASHBOARD: &str = include_str!("dashboard.html");
pub(super) const LOCKED: &str = "<!doctype html><title>Surge</title><p>The dashboard needs the admin token: open the \
                      <code>/dashboard?token=…</code> link that <code>surge up</code> printed.</p>";

/// A chart of the last ten minutes, as SVG
#[utoipa::path(
    get,
    path = "/admin/charts/{name}",
    operation_id = "admin_chart",
    tag = "operators",
    security(("admin" = [])),
    params(("name" = String, Path, description = "`backlog.svg`, `workers.svg`, `throughput.svg` or `latency.svg`.")),
    responses(
        (status = 200, description = "The chart.", content_type = "image/svg+xml", body = String),
        (status = 401, description = "`unauthorized`: no or a wrong admin token.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chart.", body = ErrorBody),
    ),
)]
pub(super) async fn chart(State(state): State<AdminState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let chart: Chart = name
        .strip_suffix(".svg")
        .unwrap_or(&name)
        .parse()
        .map_err(|()| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such chart"))?;
    let samples = state.board.lock().unwrap_or_else(|p| p.into_inner()).samples();
    let mut response = render(chart, &samples).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
