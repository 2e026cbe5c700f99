//! `/admin/overview`: everything the dashboard shows in one answer (status, latest sample,
//! busiest tenants, dead letters, maintenance), briefly cached; and the replay button.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::backend::Backends;
use shared::domain::{JobId, JobStatus, TenantId};
use utoipa::ToSchema;

use crate::board::Sample;
use crate::error::{ApiError, ErrorBody};
use crate::recovery::{self, Status};

use super::status::{MaintenanceNotice, announced};
use super::{AdminState, DEAD_LETTERS_SHOWN, STATUS_FRESH_FOR};

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
pub(super) async fn overview(State(state): State<AdminState>) -> Result<Json<Overview>, ApiError> {
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
pub(super) struct Fresh<T>(tokio::sync::Mutex<Option<(Instant, T)>>);

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

pub(super) async fn cached_status(state: &AdminState) -> Result<Status, String> {
    let has_secondary = state.config.secondary_region().is_some();
    state.status.get_or_fetch(|| async { Ok(recovery::status(&state.topology, has_secondary).await) }).await
}

pub(super) async fn cached_dead_letters(state: &AdminState) -> Result<Vec<DeadLetter>, String> {
    state.dead.get_or_fetch(|| dead_letters(&state.backends)).await
}

pub(super) async fn dead_letters(backends: &Backends) -> Result<Vec<DeadLetter>, String> {
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
pub(super) async fn replay(
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
