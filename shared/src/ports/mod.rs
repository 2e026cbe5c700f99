//! The ports: narrow, backend-neutral traits for the queue, the blob store, the job store and
//! the tenant directory. Each trait documents its contract; the contract suites in `shared/src/contract.rs` (test-only) check it against
//! every backend.
//!
//! No backend type appears in these signatures: callers hold `Arc<dyn Trait>` and never know
//! whether SQLite or a cloud service sits behind it.

mod backends;
mod blob;
mod fault;
mod jobs;
mod queue;
mod scale;
mod tenants;
mod workers;

pub use backends::{Backends, queue_names};
pub use blob::{BlobError, BlobMeta, BlobStore, validate_blob_key};
pub use fault::Fault;
pub use jobs::{CreateOutcome, JobPage, JobStore, StoreError, Transition};
pub use queue::{Queue, QueueDepth, QueueError, Receipt, ReceivedMessage};
pub use scale::{PoolSize, ScaleError, ScaleTarget};
pub use tenants::{ApiKey, TenantDirectory, TenantError};
pub use workers::{CompletedJob, InFlightJob, RegistryError, WorkerBeat, WorkerOrders, WorkerRegistry};
