//! The operator side of the HTTP server: the live dashboard (`/dashboard`), its data
//! (`/admin/overview`, server-drawn SVG charts under `/admin/charts/`), the replay button
//! (`POST /admin/jobs/{id}/replay`), and the public `/v1/status` with maintenance windows.
//!
//! Everything but `/v1/status` needs the admin token: `Authorization: Bearer <token>`, or the
//! `surge_admin` cookie that `/dashboard?token=<token>` sets (HttpOnly, SameSite=Strict) before
//! redirecting to the bare URL, so the token does not stay in the address bar or history.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::backend::Backends;
use shared::config::{Config, MaintenanceWindow};
use shared::domain::{JobId, JobStatus, TenantId};
use shared::region::Topology;

use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::board::{Chart, Sample, SharedBoard, render};
use crate::error::{ApiError, ErrorBody};
use crate::pool::{LocalPool, RollProgress};
use crate::recovery::{self, Status};
use shared::ports::ScaleTarget;

const COOKIE: &str = "surge_admin";
/// The status reads every queue's depth and counts jobs; the dashboard polls every two seconds,
/// so the answer is kept this long.
const STATUS_FRESH_FOR: Duration = Duration::from_secs(5);
/// Dead-letter jobs listed on the dashboard.
const DEAD_LETTERS_SHOWN: usize = 20;

/// What the admin handlers share.
#[derive(Clone)]
pub(crate) struct AdminState {
    config: Config,
    /// The regions the server has open: the dashboard's status reads them without opening
    /// them again.
    topology: Topology,
    backends: Backends,
    board: SharedBoard,
    token_digest: Option<[u8; 32]>,
    status: Arc<Fresh<Status>>,
    /// The dead letters (one listing per tenant); a replay forgets them.
    dead: Arc<Fresh<Vec<DeadLetter>>>,
    /// What runs the workers, for rolling them.
    workers: Workers,
    roll: Arc<std::sync::Mutex<RollStatus>>,
}

/// What runs the workers of this deployment.
#[derive(Clone)]
pub(crate) enum Workers {
    /// `surge up`'s own processes: rolled batch by batch here.
    Local(Arc<LocalPool>),
    /// A scale target that rolls itself (ECS: a new deployment).
    Target(Arc<dyn ScaleTarget>),
    /// Nothing this process controls.
    Elsewhere,
}

impl AdminState {
    pub(crate) fn new(
        config: Config,
        topology: Topology,
        backends: Backends,
        board: SharedBoard,
        workers: Workers,
    ) -> AdminState {
        let token_digest = config.api.admin_token.as_deref().map(digest);
        AdminState {
            config,
            topology,
            backends,
            board,
            token_digest,
            status: Arc::default(),
            dead: Arc::default(),
            workers,
            roll: Arc::default(),
        }
    }
}

/// Where a `surge workers roll` is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RollState {
    /// No roll yet.
    #[default]
    Idle,
    Running,
    Done,
    Failed,
}

/// Where the latest `surge workers roll` is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RollStatus {
    pub state: RollState,
    pub total: usize,
    pub replaced: usize,
    pub batch: usize,
    pub phase: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

impl RollStatus {
    fn update(&mut self, progress: &RollProgress) {
        (self.total, self.replaced, self.batch, self.phase) =
            (progress.total, progress.replaced, progress.batch, progress.phase.clone());
    }
}

#[derive(Debug, Deserialize, ToSchema)]
struct RollRequest {
    /// Workers replaced at a time (at least 1).
    batch: usize,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The operator routes (merged into the API's router by `serve`). Like the API's, they are
/// registered only through `routes!`, so `/openapi.json` describes them.
pub(crate) fn router(state: AdminState) -> Router {
    let (open, _) = open_routes().split_for_parts();
    let (guarded, _) = guarded_routes().split_for_parts();
    let guarded = guarded.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    open.merge(guarded).with_state(state)
}

/// Routes without the admin token: the dashboard checks it itself (query or cookie), the
/// status is public.
fn open_routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(dashboard)).routes(routes!(public_status))
}

fn guarded_routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(overview))
        .routes(routes!(chart))
        .routes(routes!(replay))
        .routes(routes!(start_roll, roll_status))
}

/// The operator routes' part of the OpenAPI document.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    let mut document = open_routes().into_openapi();
    document.merge(guarded_routes().into_openapi());
    document
}

/// Whether the request carries the admin token (header or cookie); compared as digests.
fn authorised(state: &AdminState, headers: &HeaderMap) -> bool {
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

async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
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

#[derive(Deserialize)]
struct TokenQuery {
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
async fn dashboard(State(state): State<AdminState>, headers: HeaderMap, Query(query): Query<TokenQuery>) -> Response {
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

const DASHBOARD: &str = include_str!("dashboard.html");
const LOCKED: &str = "<!doctype html><title>Surge</title><p>The dashboard needs the admin token: open the \
                      <code>/dashboard?token=…</code> link that <code>surge up</code> printed.</p>";

/// Everything the dashboard shows, in one answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Overview {
    pub generated_at: DateTime<Utc>,
    /// Regions, epoch, replication, queue depths and jobs by status (as `surge status --json`).
    #[schema(value_type = Option<Object>)]
    pub status: Option<Status>,
    pub status_error: Option<String>,
    /// The latest autoscaler sample (per lane: backlog, workers, completions), and the jobs
    /// completed over the last minute.
    #[schema(value_type = Option<Object>)]
    pub latest: Option<Sample>,
    pub completed_last_minute: u64,
    /// `[tenant, jobs waiting]`, most first.
    #[schema(value_type = Vec<Object>)]
    pub busiest_tenants: Vec<(TenantId, u64)>,
    pub dead_letters: Vec<DeadLetter>,
    pub maintenance: Vec<MaintenanceNotice>,
}

/// A job in the dead-letter state, with why it is there.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct DeadLetter {
    pub id: JobId,
    #[schema(value_type = String)]
    pub tenant: TenantId,
    pub attempts: u32,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A maintenance window as announced.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct MaintenanceNotice {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub message: String,
    pub active: bool,
}

/// Current and upcoming windows (ended ones are not announced).
pub(crate) fn announced(windows: &[MaintenanceWindow], now: DateTime<Utc>) -> Vec<MaintenanceNotice> {
    let mut notices: Vec<MaintenanceNotice> = windows
        .iter()
        .filter(|w| w.ends_at > now)
        .map(|w| MaintenanceNotice {
            starts_at: w.starts_at,
            ends_at: w.ends_at,
            message: w.message.clone(),
            active: w.is_active(now),
        })
        .collect();
    notices.sort_by_key(|n| n.starts_at);
    notices
}

/// Everything the dashboard shows
#[utoipa::path(
    get,
    path = "/admin/overview",
    operation_id = "admin_overview",
    tag = "operators",
    security(("admin" = [])),
    responses(
        (status = 200, description = "The overview.", body = Overview),
        (status = 401, description = "`unauthorized`: no or a wrong admin token.", body = ErrorBody),
        (status = 403, description = "`admin_disabled`: no admin token is configured.", body = ErrorBody),
        (status = 503, description = "`unavailable`: storage is temporarily unavailable.", body = ErrorBody),
    ),
)]
async fn overview(State(state): State<AdminState>) -> Result<Json<Overview>, ApiError> {
    let (status, status_error) = match cached_status(&state).await {
        Ok(status) => (Some(status), None),
        Err(err) => (None, Some(err)),
    };
    let (samples, busiest_tenants) = {
        let board = state.board.lock().unwrap_or_else(|p| p.into_inner());
        (board.samples(), board.busiest())
    };
    let completed_last_minute =
        samples.iter().rev().take(60).map(|s| s.lanes.values().map(|l| l.completed).sum::<u64>()).sum();
    Ok(Json(Overview {
        generated_at: Utc::now(),
        status,
        status_error,
        latest: samples.last().cloned(),
        completed_last_minute,
        busiest_tenants,
        dead_letters: cached_dead_letters(&state).await.map_err(ApiError::unavailable)?,
        maintenance: announced(&state.config.maintenance, Utc::now()),
    }))
}

/// A value fetched again only once it is older than [`STATUS_FRESH_FOR`]: an open dashboard polls
/// every two seconds, and a status or a dead-letter listing reads storage per tenant.
struct Fresh<T>(tokio::sync::Mutex<Option<(Instant, T)>>);

impl<T> Default for Fresh<T> {
    fn default() -> Fresh<T> {
        Fresh(tokio::sync::Mutex::new(None))
    }
}

impl<T: Clone> Fresh<T> {
    async fn get_or_fetch<F: Future<Output = Result<T, String>>>(
        &self,
        fetch: impl FnOnce() -> F,
    ) -> Result<T, String> {
        let mut cache = self.0.lock().await;
        if let Some((at, value)) = cache.as_ref()
            && at.elapsed() < STATUS_FRESH_FOR
        {
            return Ok(value.clone());
        }
        let value = fetch().await?;
        *cache = Some((Instant::now(), value.clone()));
        Ok(value)
    }

    async fn forget(&self) {
        *self.0.lock().await = None;
    }
}

async fn cached_status(state: &AdminState) -> Result<Status, String> {
    let has_secondary = state.config.secondary_region().is_some();
    state.status.get_or_fetch(|| async { Ok(recovery::status_of(&state.topology, has_secondary).await) }).await
}

async fn cached_dead_letters(state: &AdminState) -> Result<Vec<DeadLetter>, String> {
    state.dead.get_or_fetch(|| dead_letters(&state.backends)).await
}

async fn dead_letters(backends: &Backends) -> Result<Vec<DeadLetter>, String> {
    let mut found = Vec::new();
    for tenant in backends.tenants.list_tenants().await.map_err(|e| e.to_string())? {
        let page = backends
            .jobs
            .list_by_tenant(&tenant, Some(JobStatus::Dead), None, DEAD_LETTERS_SHOWN)
            .await
            .map_err(|e| e.to_string())?;
        found.extend(page.jobs.into_iter().map(|job| DeadLetter {
            id: job.id,
            tenant: job.tenant,
            attempts: job.attempts,
            reason: job.last_error.as_ref().map(|e| e.code.as_str().to_owned()),
            message: job.last_error.map(|e| e.message),
            finished_at: job.finished_at,
        }));
    }
    found.sort_by_key(|d| std::cmp::Reverse(d.finished_at));
    found.truncate(DEAD_LETTERS_SHOWN);
    Ok(found)
}

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
async fn chart(State(state): State<AdminState>, Path(name): Path<String>) -> Result<Response, ApiError> {
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

/// Replay one job (the dashboard's button)
///
/// A dead or failed job gets fresh attempts and goes back to the queue; a succeeded one is
/// left alone.
#[utoipa::path(
    post,
    path = "/admin/jobs/{id}/replay",
    operation_id = "admin_replay_job",
    tag = "operators",
    security(("admin" = [])),
    params(("id" = JobId, Path, description = "The job.")),
    responses(
        (status = 200, description = "What the replay did.", body = recovery::replay::ReplayReport),
        (status = 401, description = "`unauthorized`: no or a wrong admin token.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job.", body = ErrorBody),
        (status = 503, description = "`unavailable`: storage is temporarily unavailable.", body = ErrorBody),
    ),
)]
async fn replay(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<recovery::replay::ReplayReport>, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such job");
    let id: JobId = id.parse().map_err(|_| not_found())?;
    let replayed = recovery::replay::replay_job(&state.backends, id).await;
    state.dead.forget().await;
    match replayed {
        Ok(Some(report)) => {
            tracing::info!(job_id = %id, replayed = report.replayed, "replayed from the dashboard");
            Ok(Json(report))
        }
        Ok(None) => Err(not_found()),
        Err(err) => Err(ApiError::unavailable(err)),
    }
}

/// Start rolling the workers (`surge workers roll`)
#[utoipa::path(
    post,
    path = "/admin/workers/roll",
    operation_id = "admin_start_roll",
    tag = "operators",
    security(("admin" = [])),
    request_body = RollRequest,
    responses(
        (status = 202, description = "The roll started; follow it with `GET`.", body = RollStatus),
        (status = 401, description = "`unauthorized`: no or a wrong admin token.", body = ErrorBody),
        (status = 409, description = "`roll_running`: a roll is already running.", body = ErrorBody),
        (status = 422, description = "`invalid_batch`: batch must be at least 1.", body = ErrorBody),
        (status = 501, description = "`no_workers_here`: this deployment does not run its workers.", body = ErrorBody),
    ),
)]
async fn start_roll(
    State(state): State<AdminState>,
    Json(request): Json<RollRequest>,
) -> Result<(StatusCode, Json<RollStatus>), ApiError> {
    if request.batch == 0 {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch", "batch must be at least 1"));
    }
    let snapshot = {
        let mut roll = state.roll.lock().unwrap_or_else(|p| p.into_inner());
        if roll.state == RollState::Running {
            return Err(ApiError::new(StatusCode::CONFLICT, "roll_running", "a roll is already running"));
        }
        *roll = RollStatus {
            state: RollState::Running,
            batch: request.batch,
            phase: "starting".into(),
            started_at: Some(Utc::now()),
            ..RollStatus::default()
        };
        roll.clone()
    };
    let pool = match state.workers.clone() {
        Workers::Local(pool) => pool,
        Workers::Target(target) => return Ok(redeploy(&state.roll, target.as_ref()).await),
        Workers::Elsewhere => {
            let mut roll = state.roll.lock().unwrap_or_else(|p| p.into_inner());
            *roll = RollStatus::default();
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "no_workers_here",
                "this deployment does not run its workers (no local pool, no scale target)",
            ));
        }
    };
    let (roll, registry) = (Arc::clone(&state.roll), Arc::clone(&state.backends.workers));
    tokio::spawn(async move {
        let report = |progress: RollProgress| roll.lock().unwrap_or_else(|p| p.into_inner()).update(&progress);
        let result = pool.roll(request.batch, registry.as_ref(), &report).await;
        let mut status = roll.lock().unwrap_or_else(|p| p.into_inner());
        status.finished_at = Some(Utc::now());
        match result {
            Ok(progress) => {
                status.update(&progress);
                status.state = RollState::Done;
                tracing::info!(replaced = progress.replaced, "worker roll done");
            }
            Err(err) => {
                tracing::error!(error = %err, "worker roll failed");
                status.state = RollState::Failed;
                status.error = Some(err.to_string());
            }
        }
    });
    Ok((StatusCode::ACCEPTED, Json(snapshot)))
}

/// Rolls a scale target that rolls itself (ECS): it starts new tasks, waits for them to be
/// healthy and drains the old ones on its own; the roll is done once the deployment started.
async fn redeploy(roll: &std::sync::Mutex<RollStatus>, target: &dyn ScaleTarget) -> (StatusCode, Json<RollStatus>) {
    let result = target.redeploy().await;
    let mut status = roll.lock().unwrap_or_else(|p| p.into_inner());
    status.finished_at = Some(Utc::now());
    match result {
        Ok(started) => {
            status.state = RollState::Done;
            status.phase = format!("{} redeploying: {}", target.kind(), started.join("; "));
        }
        Err(err) => {
            status.state = RollState::Failed;
            status.error = Some(err.to_string());
        }
    }
    (StatusCode::ACCEPTED, Json(status.clone()))
}

/// Where the latest roll is
#[utoipa::path(
    get,
    path = "/admin/workers/roll",
    operation_id = "admin_roll_status",
    tag = "operators",
    security(("admin" = [])),
    responses(
        (status = 200, description = "The latest roll (`state` is `idle` before the first).", body = RollStatus),
        (status = 401, description = "`unauthorized`: no or a wrong admin token.", body = ErrorBody),
    ),
)]
async fn roll_status(State(state): State<AdminState>) -> Json<RollStatus> {
    Json(state.roll.lock().unwrap_or_else(|p| p.into_inner()).clone())
}

/// `GET /v1/status`: public; says whether Surge is up and announces maintenance.
#[derive(Debug, Serialize, ToSchema)]
struct PublicStatus {
    /// `operational`, or `maintenance` while a window is on.
    status: &'static str,
    maintenance: Vec<MaintenanceNotice>,
}

/// Service status and maintenance windows
///
/// Public (no key): whether Surge is in a maintenance window, and the current and upcoming
/// windows.
#[utoipa::path(
    get,
    path = "/v1/status",
    operation_id = "service_status",
    tag = "operations",
    responses((status = 200, description = "The status.", body = PublicStatus)),
)]
async fn public_status(State(state): State<AdminState>) -> Json<PublicStatus> {
    let maintenance = announced(&state.config.maintenance, Utc::now());
    let status = if maintenance.iter().any(|m| m.active) { "maintenance" } else { "operational" };
    Json(PublicStatus { status, maintenance })
}

/// Keeps `surge_maintenance_active` at 1 during a window and 0 outside, for alert rules
/// (`... unless on() surge_maintenance_active == 1`).
pub(crate) async fn export_maintenance(windows: Vec<MaintenanceWindow>, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let active = windows.iter().any(|w| w.is_active(Utc::now()));
        metrics::gauge!(shared::series::MAINTENANCE_ACTIVE).set(if active { 1.0 } else { 0.0 });
    }
}

/// Exports every queue's depth every five seconds: `surge_queue_messages{queue,state}` (state
/// `visible`, `in_flight`, `delayed`) and `surge_dead_letter_jobs`, the messages in the
/// dead-letter queue.
pub(crate) async fn export_queue_depths(backends: Backends, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for queue in backends.queues() {
            let Ok(depth) = queue.depth().await else { continue };
            let name = queue.name().to_owned();
            for (state, n) in [("visible", depth.visible), ("in_flight", depth.in_flight), ("delayed", depth.delayed)] {
                metrics::gauge!(shared::series::QUEUE_MESSAGES, "queue" => name.clone(), "state" => state)
                    .set(n as f64);
            }
            if Arc::ptr_eq(queue, &backends.dead_letter) {
                metrics::gauge!(shared::series::DEAD_LETTER_JOBS).set(depth.total() as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use chrono::TimeZone;
    use tower::ServiceExt;

    use super::*;

    fn window(start_hour: u32, end_hour: u32) -> MaintenanceWindow {
        MaintenanceWindow {
            starts_at: Utc.with_ymd_and_hms(2026, 11, 26, start_hour, 0, 0).unwrap(),
            ends_at: Utc.with_ymd_and_hms(2026, 11, 26, end_hour, 0, 0).unwrap(),
            message: format!("work {start_hour}-{end_hour}"),
        }
    }

    #[test]
    fn current_and_upcoming_windows_are_announced_in_order() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 10, 30, 0).unwrap();
        let notices = announced(&[window(12, 13), window(8, 9), window(10, 11)], now);
        let messages: Vec<_> = notices.iter().map(|n| (n.message.as_str(), n.active)).collect();
        assert_eq!(messages, vec![("work 10-11", true), ("work 12-13", false)]);
    }

    async fn state() -> (AdminState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        config.api.admin_token = Some("an-admin-token-of-length".into());
        let topology = shared::region::Topology::open(&config).await.unwrap();
        let backends = topology.backends();
        (AdminState::new(config, topology, backends, SharedBoard::default(), Workers::Elsewhere), dir)
    }

    async fn get(app: &Router, uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn the_admin_routes_need_the_token_and_the_dashboard_link_sets_a_cookie() {
        let (state, _dir) = state().await;
        let app = router(state);
        assert_eq!(get(&app, "/admin/overview", &[]).await.status(), StatusCode::UNAUTHORIZED);
        let wrong = [("authorization", "Bearer not-the-token")];
        assert_eq!(get(&app, "/admin/overview", &wrong).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(get(&app, "/dashboard", &[]).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(get(&app, "/dashboard?token=wrong", &[]).await.status(), StatusCode::UNAUTHORIZED);

        let link = get(&app, "/dashboard?token=an-admin-token-of-length", &[]).await;
        assert_eq!(link.status(), StatusCode::SEE_OTHER);
        let cookie = link.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        let pair = cookie.split(';').next().unwrap().to_owned();
        let page = get(&app, "/dashboard", &[("cookie", &pair)]).await;
        assert_eq!(page.status(), StatusCode::OK);
        let overview = get(&app, "/admin/overview", &[("cookie", &pair)]).await;
        assert_eq!(overview.status(), StatusCode::OK);
        let bearer = [("authorization", "Bearer an-admin-token-of-length")];
        let svg = get(&app, "/admin/charts/backlog.svg", &bearer).await;
        assert_eq!(svg.status(), StatusCode::OK);
        assert_eq!(svg.headers()[header::CONTENT_TYPE], "image/svg+xml");
        assert_eq!(get(&app, "/admin/charts/nope.svg", &bearer).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(get(&app, "/v1/status", &[]).await.status(), StatusCode::OK, "public");
    }

    #[tokio::test]
    async fn the_replay_button_puts_a_dead_job_back_in_the_queue() {
        let (state, _dir) = state().await;
        let backends = state.backends.clone();
        let job = shared::contract::new_job("acme", None);
        backends.tenants.add_tenant(&job.tenant).await.unwrap();
        backends.jobs.create(job.clone()).await.unwrap();
        let error =
            shared::domain::JobError { code: shared::domain::ErrorCode::WorkerLost, message: "worker died".into() };
        let bury = move |j: &shared::domain::Job| j.bury_abandoned(error.clone(), Utc::now());
        backends.jobs.update(job.id, Box::new(bury)).await.unwrap();
        let app = router(state);
        let bearer = ("authorization", "Bearer an-admin-token-of-length");

        let overview = get(&app, "/admin/overview", &[bearer]).await;
        let body = http_body_util::BodyExt::collect(overview.into_body()).await.unwrap().to_bytes();
        let overview: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(overview["dead_letters"][0]["id"], job.id.to_string(), "{overview}");
        assert_eq!(overview["dead_letters"][0]["reason"], "worker_lost");

        let request = Request::builder()
            .method("POST")
            .uri(format!("/admin/jobs/{}/replay", job.id))
            .header(bearer.0, bearer.1)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(backends.jobs.get(job.id).await.unwrap().unwrap().status, JobStatus::Queued);
        let sent = backends.incoming.receive(10, Duration::from_secs(5), Duration::ZERO).await.unwrap();
        assert_eq!(sent.len(), 1, "the job's message is back in the incoming queue");
        let overview = get(&app, "/admin/overview", &[bearer]).await;
        let body = http_body_util::BodyExt::collect(overview.into_body()).await.unwrap().to_bytes();
        let overview: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(overview["dead_letters"], serde_json::json!([]), "no longer listed: {overview}");

        let missing = format!("/admin/jobs/{}/replay", JobId::new());
        let request = Request::builder().method("POST").uri(missing).header(bearer.0, bearer.1).body(Body::empty());
        assert_eq!(app.oneshot(request.unwrap()).await.unwrap().status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn without_a_configured_token_the_admin_routes_are_off() {
        let (mut state, _dir) = state().await;
        state.token_digest = None;
        let app = router(state);
        let bearer = [("authorization", "Bearer anything-at-all-here")];
        assert_eq!(get(&app, "/admin/overview", &bearer).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(get(&app, "/dashboard?token=anything-at-all-here", &[]).await.status(), StatusCode::UNAUTHORIZED);
    }
}
