//! The worker registry port: heartbeats of live workers, and drain requests to them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::fault::Fault;
use crate::domain::{JobId, Lane};

/// What a worker says about itself on every heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerBeat {
    /// Chosen by the worker at start; never reused.
    pub worker_id: Uuid,
    /// Lanes served, highest priority first.
    pub lanes: Vec<Lane>,
    /// Operating-system process id, so a local pool can match beats to its processes.
    pub pid: u32,
    pub host: String,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Jobs held right now, with what it takes to hand them back if the worker dies.
    pub in_flight: Vec<InFlightJob>,
    /// Set once the worker stopped receiving.
    pub draining: bool,
    /// Jobs finished since the previous beat: what the scaler learns the cost of work from.
    /// A sample: a beat the dispatcher did not read in time is replaced by the next.
    pub completed: Vec<CompletedJob>,
    /// Jobs finished since the worker started: the dispatcher counts throughput from the
    /// differences, which no missed beat can lose.
    #[serde(default)]
    pub completed_total: u64,
    /// Of those, the jobs that failed (the document's fault); the others succeeded.
    #[serde(default)]
    pub failed_total: u64,
}

/// A job a worker holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlightJob {
    pub job_id: JobId,
    pub lane: Lane,
    /// The lane queue's receipt for the delivery, to make it visible again at once.
    pub receipt: String,
    /// The lease token the job was claimed with, to release the claim.
    pub lease_token: Uuid,
}

/// A finished job's cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletedJob {
    pub lane: Lane,
    pub seconds: f64,
    pub size: u64,
    pub pages: u32,
}

/// What the registry asks of a worker in answer to its beat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerOrders {
    /// Stop receiving, finish or hand back in-flight jobs, then exit.
    pub drain: bool,
}

/// Where workers report, and where the dispatcher finds them.
///
/// Contract (checked for every backend by `worker_registry_contract` in `shared/src/contract.rs`): `beat` stores the latest
/// beat of a worker, replacing the previous one, and returns its orders; `list` returns the
/// latest beat of every worker not removed; `request_drain` makes every later `beat` of that
/// worker answer `drain: true`; `remove` forgets a worker and its drain request (idempotent).
#[async_trait]
pub trait WorkerRegistry: Send + Sync + 'static {
    async fn beat(&self, beat: &WorkerBeat) -> Result<WorkerOrders, RegistryError>;
    async fn list(&self) -> Result<Vec<WorkerBeat>, RegistryError>;
    async fn request_drain(&self, worker_id: Uuid) -> Result<(), RegistryError>;
    async fn remove(&self, worker_id: Uuid) -> Result<(), RegistryError>;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("worker registry unavailable: {0}")]
    Unavailable(Fault),
}

impl RegistryError {
    /// Whether the failure lies with the infrastructure, so the same call may succeed later
    /// (retry with backoff; never blame the document for it).
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Unavailable(_))
    }
}
