//! The job store over S3: one JSON object per job, updated by compare-and-swap on its ETag, plus
//! small index objects for the lookups S3 cannot do by itself.
//!
//! Layout (all under `jobs/`):
//! - `by-id/{id}.json`: the record, the source of truth.
//! - `idempotency/{tenant}/{sha256(key)}`: the id of the job created with that key.
//! - `by-tenant/{tenant}/{u128::MAX - id, hex}`: empty; sorts a tenant's jobs newest first.
//! - `unfinished/{id}`: empty; present while the job is `queued` or `processing`.
//!
//! **Update** reads the record and its ETag, applies the transition and writes with `If-Match`;
//! on a lost race it reads again (bounded, with jittered backoff), so two workers never both win.
//!
//! **Create** writes the record (`If-None-Match: *`), then the idempotency marker (also
//! `If-None-Match`), then the index objects. The loser of a race on one key deletes its record
//! and returns the winner's job. A crash before the marker leaves a record nothing points at
//! (invisible and harmless); a crash after it leaves a job without index objects, which the
//! next create with the same key repairs.
//!
//! **Unfinished markers** must never be missing for an unfinished job; a stale one (a job that
//! finished) only costs a read. Whoever makes a job unfinished again (`requeue`) writes the
//! marker before and after its record write; whoever deletes a marker reads the record
//! afterwards and puts the marker back if the job turned unfinished meanwhile. Listing skips
//! stale markers and deletes them.
//!
//! Costs: `get`, `create` and `update` are a few requests each. `list_by_tenant` reads one
//! record per listed job; with a status filter it reads every record it passes, so a rare status
//! costs up to one read per job of the tenant. `count_by_status` reads every record: O(jobs),
//! fine for tests and small installations, not for a hot status page.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::objects::{Bucket, Condition, LIST_PAGE, ObjectError};
use crate::domain::{Job, JobId, JobStatus, TenantId};
use crate::ports::Fault;
use crate::ports::{CreateOutcome, JobPage, JobStore, StoreError, Transition};

/// Compare-and-swap attempts before `update` gives up on a hot record.
const MAX_UPDATE_ATTEMPTS: u32 = 20;
/// Records read at once when listing.
const READ_CONCURRENCY: usize = 16;

const RECORDS: &str = "jobs/by-id/";
const UNFINISHED: &str = "jobs/unfinished/";

fn record_key(id: JobId) -> String {
    format!("{RECORDS}{id}.json")
}

fn idempotency_key(tenant: &TenantId, key: &str) -> String {
    format!("jobs/idempotency/{tenant}/{}", hex::encode(Sha256::digest(key.as_bytes())))
}

fn tenant_prefix(tenant: &TenantId) -> String {
    format!("jobs/by-tenant/{tenant}/")
}

/// Inverted so that ascending key order is newest first (ids are UUIDv7).
fn tenant_entry(tenant: &TenantId, id: JobId) -> String {
    format!("{}{:032x}", tenant_prefix(tenant), u128::MAX - id.as_uuid().as_u128())
}

fn unfinished_key(id: JobId) -> String {
    format!("{UNFINISHED}{id}")
}

fn parse_id(s: &str) -> Option<JobId> {
    s.parse().ok()
}

fn id_of_record(key: &str) -> Option<JobId> {
    parse_id(key.strip_prefix(RECORDS)?.strip_suffix(".json")?)
}

fn id_of_unfinished(key: &str) -> Option<JobId> {
    parse_id(key.strip_prefix(UNFINISHED)?)
}

fn id_of_tenant_entry(prefix: &str, key: &str) -> Option<JobId> {
    let inverted = u128::from_str_radix(key.strip_prefix(prefix)?, 16).ok()?;
    parse_id(&Uuid::from_u128(u128::MAX - inverted).to_string())
}

fn encode(job: &Job) -> Result<Bytes, StoreError> {
    serde_json::to_vec(job)
        .map(Bytes::from)
        .map_err(|e| StoreError::Unavailable(Fault::caused_by("unencodable job record", e)))
}

fn decode(bytes: &[u8]) -> Result<Job, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Unavailable(Fault::caused_by("corrupt job record", e)))
}

impl From<ObjectError> for StoreError {
    fn from(err: ObjectError) -> StoreError {
        StoreError::Unavailable(Fault::from_error(err))
    }
}

/// Jobs that an index scan found.
#[derive(Default)]
struct Scan {
    /// Records that passed the filter, in index order.
    kept: Vec<Job>,
    /// Ids whose record failed the filter or is missing.
    skipped: Vec<JobId>,
}

/// A [`JobStore`] in an S3 bucket; cheap to clone.
#[derive(Clone)]
pub(crate) struct S3JobStore {
    bucket: Bucket,
}

impl S3JobStore {
    pub(crate) fn new(bucket: Bucket) -> S3JobStore {
        S3JobStore { bucket }
    }

    /// The record and its ETag.
    async fn read(&self, id: JobId) -> Result<Option<(Job, String)>, StoreError> {
        let Some(fetched) = self.bucket.get(&record_key(id)).await? else { return Ok(None) };
        Ok(Some((decode(&fetched.bytes)?, fetched.etag)))
    }

    /// Reads several records at once; `None` where a record is missing.
    async fn read_many(&self, ids: &[JobId]) -> Result<Vec<Option<Job>>, StoreError> {
        let mut reads = JoinSet::new();
        for (index, id) in ids.iter().copied().enumerate() {
            let store = self.clone();
            reads.spawn(async move { (index, store.read(id).await) });
        }
        let mut jobs = vec![None; ids.len()];
        while let Some(joined) = reads.join_next().await {
            let (index, read) =
                joined.map_err(|e| StoreError::Unavailable(Fault::caused_by("record read failed", e)))?;
            jobs[index] = read?.map(|(job, _)| job);
        }
        Ok(jobs)
    }

    /// Writes the record if `condition` holds; `false` when it did not.
    async fn write(&self, job: &Job, condition: Condition) -> Result<bool, StoreError> {
        Ok(self.bucket.put(&record_key(job.id), encode(job)?, &condition).await?.is_some())
    }

    async fn put_marker(&self, key: &str) -> Result<(), StoreError> {
        self.bucket.put(key, Bytes::new(), &Condition::Always).await?;
        Ok(())
    }

    /// Writes a new record. A record that is already there and equal to `job` is a retried
    /// create of the same job and fine.
    async fn insert(&self, job: &Job) -> Result<(), StoreError> {
        if self.write(job, Condition::IfAbsent).await? {
            return Ok(());
        }
        match self.read(job.id).await? {
            Some((existing, _)) if existing == *job => Ok(()),
            _ => Err(StoreError::Unavailable(Fault::new(format!("job {} already exists", job.id)))),
        }
    }

    /// Makes the job findable: its tenant listing entry and, while unfinished, its marker.
    /// Idempotent, so it also repairs a job whose create was cut short.
    async fn index(&self, job: &Job) -> Result<(), StoreError> {
        if !job.status.is_terminal() {
            self.put_marker(&unfinished_key(job.id)).await?;
        }
        self.put_marker(&tenant_entry(&job.tenant, job.id)).await
    }

    /// The job an idempotency marker points at, unless it is `own` (a retried create).
    async fn follow_marker(&self, marker: &str, own: JobId) -> Result<Option<Job>, StoreError> {
        let Some(fetched) = self.bucket.get(marker).await? else { return Ok(None) };
        let winner = std::str::from_utf8(&fetched.bytes)
            .ok()
            .and_then(parse_id)
            .ok_or_else(|| StoreError::Unavailable(Fault::new(format!("{marker} does not name a job"))))?;
        if winner == own {
            return Ok(None);
        }
        let (job, _) = self
            .read(winner)
            .await?
            .ok_or_else(|| StoreError::Unavailable(Fault::new(format!("{marker} names missing job {winner}"))))?;
        self.index(&job).await?;
        Ok(Some(job))
    }

    /// Claims the idempotency key for `job`; returns the earlier job when another create holds it.
    async fn claim_idempotency_key(&self, job: &Job, marker: &str) -> Result<Option<Job>, StoreError> {
        let id = Bytes::from(job.id.to_string());
        if self.bucket.put(marker, id, &Condition::IfAbsent).await?.is_some() {
            return Ok(None);
        }
        let Some(winner) = self.follow_marker(marker, job.id).await? else { return Ok(None) };
        // Best effort: a leftover record is invisible (nothing points at it).
        if let Err(err) = self.bucket.delete(&record_key(job.id)).await {
            tracing::warn!(job_id = %job.id, error = %err, "record of a duplicate create left behind");
        }
        Ok(Some(winner))
    }

    /// Deletes a job's unfinished marker, then puts it back if the job turned unfinished
    /// meanwhile (a `requeue` racing with the delete).
    async fn remove_unfinished_marker(&self, id: JobId) -> Result<(), StoreError> {
        let key = unfinished_key(id);
        self.bucket.delete(&key).await?;
        if let Some((job, _)) = self.read(id).await?
            && !job.status.is_terminal()
        {
            self.put_marker(&key).await?;
        }
        Ok(())
    }

    /// Keeps the unfinished marker in step with a committed transition. Failures only leave a
    /// stale marker or (for a requeue) the marker written before the record.
    async fn after_transition(&self, before: &Job, after: &Job) {
        let result = match (before.status.is_terminal(), after.status.is_terminal()) {
            (false, true) => self.remove_unfinished_marker(after.id).await,
            (true, false) => self.put_marker(&unfinished_key(after.id)).await,
            _ => Ok(()),
        };
        if let Err(err) = result {
            tracing::warn!(job_id = %after.id, error = %err, "unfinished marker not updated");
        }
    }

    /// Reads the records behind the index keys under `prefix` that sort after `start_after`,
    /// in key order, until `wanted` of them pass `keep`.
    async fn scan(
        &self,
        prefix: &str,
        mut start_after: Option<String>,
        id_of: impl Fn(&str) -> Option<JobId>,
        keep: impl Fn(&Job) -> bool,
        wanted: usize,
    ) -> Result<Scan, StoreError> {
        let mut scan = Scan::default();
        if wanted == 0 {
            return Ok(scan);
        }
        loop {
            let page = self.bucket.list_page(prefix, start_after.as_deref(), LIST_PAGE).await?;
            let mut keys = page.keys.iter();
            while scan.kept.len() < wanted {
                let chunk: Vec<&String> = keys.by_ref().take(READ_CONCURRENCY.min(wanted - scan.kept.len())).collect();
                if chunk.is_empty() {
                    break;
                }
                let batch: Vec<JobId> = chunk.iter().filter_map(|key| id_of(key)).collect();
                for (id, job) in batch.iter().copied().zip(self.read_many(&batch).await?) {
                    match job {
                        Some(job) if keep(&job) && scan.kept.len() < wanted => scan.kept.push(job),
                        _ => scan.skipped.push(id),
                    }
                }
            }
            if scan.kept.len() >= wanted || !page.more {
                return Ok(scan);
            }
            start_after = page.keys.last().cloned();
        }
    }

    /// Best effort: deletes markers whose job finished or vanished.
    async fn remove_stale_markers(&self, stale: &[JobId]) {
        for id in stale {
            if let Err(err) = self.remove_unfinished_marker(*id).await {
                tracing::debug!(job_id = %id, error = %err, "stale unfinished marker kept");
            }
        }
    }

    /// How long to wait before compare-and-swap attempt `attempt + 1`.
    fn backoff(attempt: u32) -> Duration {
        let base = rand::rng().random_range(5..=20);
        Duration::from_millis(base * u64::from(attempt.min(5) + 1))
    }
}

#[async_trait]
impl JobStore for S3JobStore {
    async fn create(&self, job: Job) -> Result<CreateOutcome, StoreError> {
        let marker = job.idempotency_key.as_deref().map(|key| idempotency_key(&job.tenant, key));
        if let Some(marker) = &marker
            && let Some(existing) = self.follow_marker(marker, job.id).await?
        {
            return Ok(CreateOutcome::Existing(existing));
        }
        self.insert(&job).await?;
        if let Some(marker) = &marker
            && let Some(existing) = self.claim_idempotency_key(&job, marker).await?
        {
            return Ok(CreateOutcome::Existing(existing));
        }
        self.index(&job).await?;
        Ok(CreateOutcome::Created(job))
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        Ok(self.read(id).await?.map(|(job, _)| job))
    }

    async fn update(&self, id: JobId, transition: Transition) -> Result<Job, StoreError> {
        // The write of the previous attempt, as (before, after).
        let mut attempted: Option<(Job, Job)> = None;
        for attempt in 0..MAX_UPDATE_ATTEMPTS {
            let (current, etag) = self.read(id).await?.ok_or(StoreError::NotFound(id))?;
            if let Some((before, after)) = attempted.take()
                && after == current
            {
                // Our write landed; the precondition failure was the SDK retrying it.
                self.after_transition(&before, &after).await;
                return Ok(after);
            }
            let next = transition(&current)?;
            if current.status.is_terminal() && !next.status.is_terminal() {
                self.put_marker(&unfinished_key(id)).await?;
            }
            if self.write(&next, Condition::IfMatch(etag)).await? {
                self.after_transition(&current, &next).await;
                return Ok(next);
            }
            tracing::debug!(job_id = %id, attempt, "job record changed under an update; retrying");
            attempted = Some((current, next));
            tokio::time::sleep(S3JobStore::backoff(attempt)).await;
        }
        Err(StoreError::Unavailable(Fault::new(format!("job {id} is updated too often to commit a change"))))
    }

    async fn put_replica(&self, job: Job) -> Result<bool, StoreError> {
        for attempt in 0..MAX_UPDATE_ATTEMPTS {
            let (condition, before) = match self.read(job.id).await? {
                Some((stored, _)) if stored.updated_at >= job.updated_at => return Ok(false),
                Some((stored, etag)) => (Condition::IfMatch(etag), Some(stored)),
                None => (Condition::IfAbsent, None),
            };
            if !job.status.is_terminal() {
                self.put_marker(&unfinished_key(job.id)).await?;
            }
            if self.write(&job, condition).await? {
                if let Some(key) = job.idempotency_key.as_deref() {
                    let id = Bytes::from(job.id.to_string());
                    self.bucket.put(&idempotency_key(&job.tenant, key), id, &Condition::Always).await?;
                }
                self.index(&job).await?;
                if let Some(before) = before {
                    self.after_transition(&before, &job).await;
                } else if job.status.is_terminal() {
                    self.remove_unfinished_marker(job.id).await?;
                }
                return Ok(true);
            }
            tokio::time::sleep(S3JobStore::backoff(attempt)).await;
        }
        Err(StoreError::Unavailable(Fault::new(format!("job {} is updated too often to copy", job.id))))
    }

    async fn list_by_tenant(
        &self,
        tenant: &TenantId,
        status: Option<JobStatus>,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<JobPage, StoreError> {
        let prefix = tenant_prefix(tenant);
        let start_after = after.map(|id| tenant_entry(tenant, id));
        let keep = |job: &Job| job.tenant == *tenant && status.is_none_or(|s| job.status == s);
        // One more than asked tells whether another page follows.
        let id_of = |key: &str| id_of_tenant_entry(&prefix, key);
        let mut jobs = self.scan(&prefix, start_after, id_of, keep, limit.saturating_add(1)).await?.kept;
        let next = if jobs.len() > limit {
            jobs.truncate(limit);
            jobs.last().map(|job| job.id)
        } else {
            None
        };
        Ok(JobPage { jobs, next })
    }

    async fn list_unfinished(&self, after: Option<JobId>, limit: usize) -> Result<Vec<Job>, StoreError> {
        let start_after = after.map(unfinished_key);
        let scan = self.scan(UNFINISHED, start_after, id_of_unfinished, |job| !job.status.is_terminal(), limit).await?;
        self.remove_stale_markers(&scan.skipped).await;
        Ok(scan.kept)
    }

    async fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        let ids: Vec<JobId> = self.bucket.list_all(RECORDS).await?.iter().filter_map(|k| id_of_record(k)).collect();
        let mut counts: Vec<(JobStatus, u64)> = JobStatus::ALL.iter().map(|status| (*status, 0)).collect();
        for batch in ids.chunks(READ_CONCURRENCY) {
            for job in self.read_many(batch).await?.into_iter().flatten() {
                if let Some((_, count)) = counts.iter_mut().find(|(status, _)| *status == job.status) {
                    *count += 1;
                }
            }
        }
        Ok(counts)
    }
}
