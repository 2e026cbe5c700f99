//! `surge workers roll`'s endpoint: replaces the local pool's workers batch by batch, or asks
//! a scale target that rolls itself (ECS) for a new deployment.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::ports::ScaleTarget;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::pool::{RollPhase, RollProgress};

use super::{AdminState, Workers};

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
            (progress.total, progress.replaced, progress.batch, progress.phase.to_string());
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct RollRequest {
    /// Workers replaced at a time (at least 1).
    batch: usize,
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
pub(super) async fn start_roll(
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
            phase: RollPhase::Starting.to_string(),
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
pub(super) async fn redeploy(
    roll: &std::sync::Mutex<RollStatus>,
    target: &dyn ScaleTarget,
) -> (StatusCode, Json<RollStatus>) {
    let result = target.redeploy().await;
    let mut status = roll.lock().unwrap_or_else(|p| p.into_inner());
    status.finished_at = Some(Utc::now());
    match result {
        Ok(started) => {
            status.state = RollState::Done;
            status.phase = RollPhase::Redeploying { target: target.kind(), started }.to_string();
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
pub(super) async fn roll_status(State(state): State<AdminState>) -> Json<RollStatus> {
    Json(state.roll.lock().unwrap_or_else(|p| p.into_inner()).clone())
}
