//! The public `/v1/status` with maintenance windows, and the gauges the operator side exports
//! (maintenance, queue depths).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::backend::Backends;
use shared::config::MaintenanceWindow;
use utoipa::ToSchema;

use super::AdminState;

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

/// `GET /v1/status`: public; says whether Surge is up and announces maintenance.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PublicStatus {
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
pub(super) async fn public_status(State(state): State<AdminState>) -> Json<PublicStatus> {
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
