//! The scale-target port: whatever runs the worker processes of a lane, told how many to run.

use async_trait::async_trait;

use super::fault::Fault;
use crate::domain::Lane;
use crate::ports::WorkerBeat;

/// A pool of workers the dispatcher can resize: local processes, an ECS service, ...
///
/// Contract: `set_desired` is idempotent and returns once the request is accepted (workers may
/// take a while to start or stop); `observe` reports what the target currently runs. A target
/// that removes workers must let them drain (SIGTERM, then the worker's drain timeout), never
/// kill them mid-job; the dispatcher names idle workers to remove first where the target can
/// choose.
#[async_trait]
pub trait ScaleTarget: Send + Sync + 'static {
    /// A short name for logs and metrics, e.g. `local` or `ecs`.
    fn kind(&self) -> &'static str;
    async fn observe(&self, lane: Lane) -> Result<PoolSize, ScaleError>;
    /// Asks for `desired` workers in `lane`. When that is fewer than now, `idle` lists the lane's
    /// idle workers, most idle first, for targets that can choose which to remove.
    async fn set_desired(&self, lane: Lane, desired: usize, idle: &[WorkerBeat]) -> Result<(), ScaleError>;

    /// Called every decision while more workers run than `desired` (the scaling policy lowers
    /// the target below the busy workers; they keep working while jobs wait): removes idle
    /// ones from `idle` until `desired` are left, for targets that can choose which worker
    /// goes. Targets that cannot (an ECS service stops tasks itself) do nothing.
    async fn retire_idle(&self, _lane: Lane, _desired: usize, _idle: &[WorkerBeat]) -> Result<(), ScaleError> {
        Ok(())
    }

    /// Replaces every worker by a new one, keeping capacity (a rolling deployment), for targets
    /// that roll themselves; returns what was started, for people. The local pool rolls through
    /// its own `roll`, which the dispatcher drives.
    async fn redeploy(&self) -> Result<Vec<String>, ScaleError> {
        Err(ScaleError::Unsupported(format!("the {} scale target does not redeploy itself", self.kind())))
    }
}

/// What a scale target reports about a lane's pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolSize {
    /// The count last asked for.
    pub desired: usize,
    /// Workers running (started and not yet stopped).
    pub running: usize,
    /// Workers starting.
    pub pending: usize,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ScaleError {
    #[error("no pool is configured for lane {0}")]
    UnknownLane(Lane),
    #[error("scale target unavailable: {0}")]
    Unavailable(Fault),
    #[error("{0}")]
    Unsupported(String),
}

impl ScaleError {
    /// Whether the failure lies with the infrastructure, so the same call may succeed later
    /// (retry with backoff; never blame the document for it).
    pub fn is_transient(&self) -> bool {
        matches!(self, ScaleError::Unavailable(_))
    }
}
