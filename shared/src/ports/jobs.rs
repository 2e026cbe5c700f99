//! The job store port: durable job records with conditional transitions.

use async_trait::async_trait;

use super::fault::Fault;
use crate::domain::{Job, JobId, JobStatus, TenantId, TransitionError};

/// A function that computes a job's next state from its current one, or refuses.
///
/// Backends call it inside their conditional write and may call it more than once when a write
/// races with another, so it must be pure.
pub type Transition = Box<dyn Fn(&Job) -> Result<Job, TransitionError> + Send + Sync>;

/// Durable storage for job records.
///
/// Contract (checked for every backend by `job_store_contract` in `shared/src/contract.rs`):
/// - `create` is idempotent per `(tenant, idempotency_key)`: a second create with the same key
///   returns the existing job untouched. Without a key, ids must be unique.
/// - `update` applies a [`Transition`] atomically: no other update can slip in between reading
///   the record and writing the result, across processes and machines. Two workers racing to
///   claim a job cannot both win. A refused transition leaves the record untouched and returns
///   [`StoreError::Transition`].
/// - `list_by_tenant` returns only that tenant's jobs, newest first, `limit` at a time; the
///   cursor is the last id of the previous page.
/// - `list_unfinished` returns jobs that are `queued` or `processing`, oldest first, without
///   scanning finished jobs.
/// - `put_replica` stores a record copied from another region as it is (no transition), unless
///   the stored record is at least as new (`updated_at`): copies may arrive late, twice or out
///   of order and never move a record back. The indexes (tenant listing, unfinished jobs,
///   idempotency keys) follow, as after `create` and `update`.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    async fn create(&self, job: Job) -> Result<CreateOutcome, StoreError>;
    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError>;
    async fn update(&self, id: JobId, transition: Transition) -> Result<Job, StoreError>;
    async fn list_by_tenant(
        &self,
        tenant: &TenantId,
        status: Option<JobStatus>,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<JobPage, StoreError>;
    async fn list_unfinished(&self, after: Option<JobId>, limit: usize) -> Result<Vec<Job>, StoreError>;
    /// Writes a record mirrored from another region; `false` when the stored one was as new.
    async fn put_replica(&self, job: Job) -> Result<bool, StoreError>;
    /// Number of jobs per status, for status pages and metrics.
    async fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>, StoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created(Job),
    /// A job with the same tenant and idempotency key already existed.
    Existing(Job),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<JobId>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The status machine refused the change; never retry it as is.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The backend could not be reached or failed; retry later.
    #[error("job store unavailable: {0}")]
    Unavailable(Fault),
}

impl StoreError {
    /// Whether the failure lies with the infrastructure, so the same call may succeed later
    /// (retry with backoff; never blame the document for it).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
