//! The operator side of the HTTP server: the live dashboard (`/dashboard`), its data
//! (`/admin/overview`, server-drawn SVG charts under `/admin/charts/`), the replay button
//! (`POST /admin/jobs/{id}/replay`), and the public `/v1/status` with maintenance windows.
//!
//! Everything but `/v1/status` needs the admin token: `Authorization: Bearer <token>`, or the
//! `surge_admin` cookie that `/dashboard?token=<token>` sets (HttpOnly, SameSite=Strict) before
//! redirecting to the bare URL, so the token does not stay in the address bar or history.

mod auth;
mod dashboard;
mod overview;
mod roll;
mod status;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::{self};
use shared::backend::Backends;
use shared::config::Config;
use shared::ports::ScaleTarget;
use shared::region::Topology;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::board::SharedBoard;
use crate::pool::LocalPool;
use crate::recovery::Status;

use overview::{DeadLetter, Fresh};
pub use roll::{RollState, RollStatus};
pub(crate) use status::{export_maintenance, export_queue_depths};

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
        let token_digest = config.api.admin_token.as_deref().map(auth::digest);
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

/// The operator routes (merged into the API's router by `serve`). Like the API's, they are
/// registered only through `routes!`, so `/openapi.json` describes them.
pub(crate) fn router(state: AdminState) -> Router {
    let (open, _) = open_routes().split_for_parts();
    let (guarded, _) = guarded_routes().split_for_parts();
    let guarded = guarded.route_layer(middleware::from_fn_with_state(state.clone(), auth::require_token));
    open.merge(guarded).with_state(state)
}

/// Routes without the admin token: the dashboard checks it itself (query or cookie), the
/// status is public.
fn open_routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(dashboard::dashboard)).routes(routes!(status::public_status))
}

fn guarded_routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(overview::overview))
        .routes(routes!(dashboard::chart))
        .routes(routes!(overview::replay))
        .routes(routes!(roll::start_roll, roll::roll_status))
}

/// The operator routes' part of the OpenAPI document.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    let mut document = open_routes().into_openapi();
    document.merge(guarded_routes().into_openapi());
    document
}
