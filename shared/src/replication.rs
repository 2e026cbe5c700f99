//! Mirroring to the second region: wrappers around the active region's ports, the durable
//! outbox of changes still to ship, the shipper, and a full resynchronisation.
//!
//! What is mirrored: documents, results and tenant settings (blob store, except the keys in
//! [`LOCAL_PREFIXES`]), job records (as replicas, newest wins: [`JobStore::put_replica`]) and
//! tenants with their key hashes. Queues and worker heartbeats are not: after a failover the
//! queues are rebuilt from the mirrored job records (`surge failover` replays them).
//!
//! - **sync**: an upload (its document and its job record) is acknowledged only when both
//!   regions hold it; if the other region cannot take it, the upload fails (the local copy
//!   ships later) and the client retries with its `Idempotency-Key`. Later changes (job
//!   transitions, results) are written to both too; if the other region fails then, the change
//!   goes to the outbox instead of failing the worker.
//! - **async**: every change is written to the active region and a notice of it to the outbox
//!   (the `replication` queue of the active region, durable); the shipper copies the current
//!   state of each noticed key to the other region and deletes the notice. Copies are
//!   idempotent and never move a record back, so notices may be shipped twice or out of order.
//!
//! A notice is written after the change it announces: a crash between the two leaves a change
//! unannounced, which [`resync`] (run by `surge failback` and `surge replicate`) repairs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::ReplicationMode;
use crate::domain::{Job, JobId, JobStatus, TenantId};
use crate::ports::Backends;
use crate::ports::{
    BlobError, BlobMeta, BlobStore, CreateOutcome, JobPage, JobStore, Queue, QueueError, Receipt, StoreError,
    TenantDirectory, TenantError, Transition,
};

/// Blob keys that belong to one region and are never mirrored.
pub use crate::keys::LOCAL_PREFIXES;

/// Documents: in `sync` mode an upload fails unless both regions hold its document.
use crate::keys::DOCUMENTS;
use crate::ports::Fault;

fn mirrored_key(key: &str) -> bool {
    !LOCAL_PREFIXES.iter().any(|prefix| key.starts_with(prefix))
}

/// A change still to be copied to the other region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub change: Change,
    /// When the change was made in the active region.
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "key", rename_all = "snake_case")]
pub enum Change {
    Job(JobId),
    Blob(String),
    Tenants,
}

/// How the active region's writes reach the other one.
pub struct Mirror {
    mode: ReplicationMode,
    /// The other region's own ports; `None` when it was unreachable at start.
    peer: Option<Backends>,
}

impl Mirror {
    pub fn new(mode: ReplicationMode, peer: Option<Backends>) -> Mirror {
        Mirror { mode, peer }
    }

    /// Copies a change now (`sync`) or announces it in `outbox` (`async`, or `sync` when the
    /// copy fails and `must_copy` is false). `Err` only when `must_copy` and the copy failed.
    async fn ship(&self, local: &Backends, change: Change, must_copy: bool) -> Result<(), Fault> {
        if self.mode == ReplicationMode::Sync {
            let copied = match &self.peer {
                Some(peer) => copy(local, peer, &change).await,
                None => Err(Fault::new("the other region is unreachable")),
            };
            match copied {
                Ok(()) => return Ok(()),
                Err(err) => {
                    metrics::counter!(crate::series::REPLICATION_SYNC_FAILURES_TOTAL).increment(1);
                    tracing::warn!(?change, error = %err, "synchronous copy to the other region failed");
                    announce(&local.replication, change).await.map_err(Fault::from_error)?;
                    if must_copy {
                        return Err(err);
                    }
                    return Ok(());
                }
            }
        }
        announce(&local.replication, change).await.map_err(Fault::from_error)
    }
}

/// Puts a notice of `change` into the outbox.
pub async fn announce(outbox: &Arc<dyn Queue>, change: Change) -> Result<(), QueueError> {
    let notice = Notice { change, at: Utc::now() };
    let body = serde_json::to_vec(&notice).expect("notices serialise");
    outbox.send_batch(vec![Bytes::from(body)], Duration::ZERO).await
}

/// Copies the current state of `change` from `from` to `to`.
pub async fn copy(from: &Backends, to: &Backends, change: &Change) -> Result<(), Fault> {
    match change {
        Change::Job(id) => match from.jobs.get(*id).await.map_err(Fault::from_error)? {
            Some(job) => to.jobs.put_replica(job).await.map(drop).map_err(Fault::from_error),
            None => Ok(()),
        },
        Change::Blob(key) => match from.blobs.get(key).await.map_err(Fault::from_error)? {
            Some(bytes) => to.blobs.put(key, bytes).await.map(drop).map_err(Fault::from_error),
            None => to.blobs.delete(key).await.map_err(Fault::from_error),
        },
        Change::Tenants => copy_tenants(from, to).await.map(drop).map_err(Fault::from_error),
    }
}

/// Copies every tenant and key hash; returns how many keys the target did not have.
async fn copy_tenants(from: &Backends, to: &Backends) -> Result<u64, TenantError> {
    for tenant in from.tenants.list_tenants().await? {
        to.tenants.add_tenant(&tenant).await?;
    }
    let known: std::collections::HashSet<String> = to.tenants.list_keys().await?.into_iter().map(|(h, _)| h).collect();
    let mut added = 0;
    for (hash, tenant) in from.tenants.list_keys().await? {
        if !known.contains(&hash) {
            to.tenants.add_key(&tenant, &hash).await?;
            added += 1;
        }
    }
    Ok(added)
}

/// The active region's ports with writes mirrored through `mirror`.
pub fn mirrored(local: Backends, mirror: Arc<Mirror>) -> Backends {
    let raw = local.clone();
    Backends {
        jobs: Arc::new(MirroredJobs { local: raw.clone(), mirror: mirror.clone() }),
        blobs: Arc::new(MirroredBlobs { local: raw.clone(), mirror: mirror.clone() }),
        tenants: Arc::new(MirroredTenants { local: raw, mirror }),
        ..local
    }
}

struct MirroredJobs {
    local: Backends,
    mirror: Arc<Mirror>,
}

fn unavailable(err: Fault) -> StoreError {
    StoreError::Unavailable(Fault::caused_by("not yet in the other region (retry with the same Idempotency-Key)", err))
}

#[async_trait]
impl JobStore for MirroredJobs {
    async fn create(&self, job: Job) -> Result<CreateOutcome, StoreError> {
        let outcome = self.local.jobs.create(job).await?;
        let (CreateOutcome::Created(job) | CreateOutcome::Existing(job)) = &outcome;
        self.mirror.ship(&self.local, Change::Job(job.id), true).await.map_err(unavailable)?;
        Ok(outcome)
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.local.jobs.get(id).await
    }

    async fn update(&self, id: JobId, transition: Transition) -> Result<Job, StoreError> {
        let job = self.local.jobs.update(id, transition).await?;
        self.mirror.ship(&self.local, Change::Job(id), false).await.map_err(StoreError::Unavailable)?;
        Ok(job)
    }

    async fn list_by_tenant(
        &self,
        tenant: &TenantId,
        status: Option<JobStatus>,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<JobPage, StoreError> {
        self.local.jobs.list_by_tenant(tenant, status, after, limit).await
    }

    async fn list_unfinished(&self, after: Option<JobId>, limit: usize) -> Result<Vec<Job>, StoreError> {
        self.local.jobs.list_unfinished(after, limit).await
    }

    async fn put_replica(&self, job: Job) -> Result<bool, StoreError> {
        let id = job.id;
        let written = self.local.jobs.put_replica(job).await?;
        if written {
            self.mirror.ship(&self.local, Change::Job(id), false).await.map_err(StoreError::Unavailable)?;
        }
        Ok(written)
    }

    async fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        self.local.jobs.count_by_status().await
    }
}

struct MirroredBlobs {
    local: Backends,
    mirror: Arc<Mirror>,
}

impl MirroredBlobs {
    async fn after_write(&self, key: &str) -> Result<(), BlobError> {
        if !mirrored_key(key) {
            return Ok(());
        }
        let must_copy = key.starts_with(DOCUMENTS);
        self.mirror.ship(&self.local, Change::Blob(key.to_owned()), must_copy).await.map_err(BlobError::Unavailable)
    }
}

#[async_trait]
impl BlobStore for MirroredBlobs {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<BlobMeta, BlobError> {
        let meta = self.local.blobs.put(key, bytes).await?;
        self.after_write(key).await?;
        Ok(meta)
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<Option<BlobMeta>, BlobError> {
        let written = self.local.blobs.put_if_absent(key, bytes).await?;
        // Also when it was there already: the first writer may have died before mirroring.
        self.after_write(key).await?;
        Ok(written)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        self.local.blobs.get(key).await
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        self.local.blobs.head(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.local.blobs.delete(key).await?;
        if mirrored_key(key) {
            self.mirror.ship(&self.local, Change::Blob(key.to_owned()), false).await.map_err(BlobError::Unavailable)?;
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        self.local.blobs.list(prefix).await
    }
}

struct MirroredTenants {
    local: Backends,
    mirror: Arc<Mirror>,
}

#[async_trait]
impl TenantDirectory for MirroredTenants {
    async fn add_tenant(&self, tenant: &TenantId) -> Result<(), TenantError> {
        self.local.tenants.add_tenant(tenant).await?;
        self.mirror.ship(&self.local, Change::Tenants, true).await.map_err(TenantError::Unavailable)
    }

    async fn add_key(&self, tenant: &TenantId, key_hash: &str) -> Result<(), TenantError> {
        self.local.tenants.add_key(tenant, key_hash).await?;
        self.mirror.ship(&self.local, Change::Tenants, true).await.map_err(TenantError::Unavailable)
    }

    async fn find_tenant_by_key(&self, key_hash: &str) -> Result<Option<TenantId>, TenantError> {
        self.local.tenants.find_tenant_by_key(key_hash).await
    }

    async fn list_tenants(&self) -> Result<Vec<TenantId>, TenantError> {
        self.local.tenants.list_tenants().await
    }

    async fn list_keys(&self) -> Result<Vec<(String, TenantId)>, TenantError> {
        self.local.tenants.list_keys().await
    }
}

/// What one round of the shipper did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shipped {
    /// For each change shipped: seconds from the change to its arrival in the other region.
    pub lags_secs: Vec<f64>,
}

/// A notice received from the outbox: its receipt and when the change was made.
type Announced = (Receipt, DateTime<Utc>);

/// Ships up to a batch of notices from `local`'s outbox to `peer`; waits up to `wait` for one.
/// The batch's changes are copied concurrently, each distinct change once (a copy reads the
/// current state, so order does not matter). A notice whose copy fails stays in the outbox and
/// comes back after a while.
pub async fn ship_once(local: &Backends, peer: &Backends, wait: Duration) -> Result<Shipped, QueueError> {
    let received = local.replication.receive(10, Duration::from_secs(30), wait).await?;
    let mut shipped = Shipped::default();
    let mut done = Vec::new();
    // Each distinct change with the notices (receipt, time of the change) that name it.
    let mut by_change: Vec<(Change, Vec<Announced>)> = Vec::new();
    for message in received {
        let Ok(notice) = serde_json::from_slice::<Notice>(&message.body) else {
            tracing::warn!(message_id = %message.message_id, "unreadable replication notice dropped");
            done.push(message.receipt);
            continue;
        };
        match by_change.iter_mut().find(|(change, _)| *change == notice.change) {
            Some((_, notices)) => notices.push((message.receipt, notice.at)),
            None => by_change.push((notice.change, vec![(message.receipt, notice.at)])),
        }
    }
    let mut copies = tokio::task::JoinSet::new();
    for (change, notices) in by_change {
        let (local, peer) = (local.clone(), peer.clone());
        copies.spawn(async move {
            let copied = copy(&local, &peer, &change).await;
            (change, notices, copied)
        });
    }
    while let Some(joined) = copies.join_next().await {
        let Ok((change, notices, copied)) = joined else { continue };
        match copied {
            Ok(()) => {
                let now = Utc::now();
                for (receipt, at) in notices {
                    shipped.lags_secs.push((now - at).num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6);
                    done.push(receipt);
                }
            }
            Err(err) => tracing::warn!(change = ?change, error = %err, "replication copy failed; retried later"),
        }
    }
    if !done.is_empty() {
        local.replication.ack(&done).await?;
    }
    Ok(shipped)
}

/// What the outbox holds: changes made in the active region and not yet in the other one.
pub async fn unshipped(local: &Backends) -> Result<u64, QueueError> {
    let depth = local.replication.depth().await?;
    Ok(depth.total())
}

/// What [`resync`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Resynced {
    pub jobs_examined: u64,
    pub jobs_copied: u64,
    pub blobs_copied: u64,
    pub keys_copied: u64,
}

/// Makes `to` hold everything `from` holds: tenants and keys, every job record that is newer in
/// `from`, and every mirrored blob missing in `to` (or, for blobs other than documents, whose
/// content differs). Idempotent; `progress` is called after each tenant's jobs.
pub async fn resync(from: &Backends, to: &Backends, progress: &(dyn Fn(u64) + Sync)) -> Result<Resynced, String> {
    let mut done =
        Resynced { keys_copied: copy_tenants(from, to).await.map_err(|e| e.to_string())?, ..Resynced::default() };
    for tenant in from.tenants.list_tenants().await.map_err(|e| e.to_string())? {
        let mut after = None;
        loop {
            let page = from.jobs.list_by_tenant(&tenant, None, after, 500).await.map_err(|e| e.to_string())?;
            for job in &page.jobs {
                done.jobs_examined += 1;
                if to.jobs.put_replica(job.clone()).await.map_err(|e| e.to_string())? {
                    done.jobs_copied += 1;
                }
            }
            progress(done.jobs_examined);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    for key in from.blobs.list("").await.map_err(|e| e.to_string())? {
        if !mirrored_key(&key) {
            continue;
        }
        let present = to.blobs.head(&key).await.map_err(|e| e.to_string())?.is_some();
        if present && key.starts_with(DOCUMENTS) {
            continue; // documents never change
        }
        let Some(bytes) = from.blobs.get(&key).await.map_err(|e| e.to_string())? else { continue };
        if present && to.blobs.get(&key).await.map_err(|e| e.to_string())?.as_ref() == Some(&bytes) {
            continue;
        }
        to.blobs.put(&key, bytes).await.map_err(|e| e.to_string())?;
        done.blobs_copied += 1;
    }
    Ok(done)
}
