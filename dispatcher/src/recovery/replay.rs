//! Replay: puts selected jobs back into the incoming queue, idempotently. Used by `surge replay`
//! (operators, the dead-letter queue) and by failover and failback (every unfinished job).
//!
//! A job whose result exists is never run again: a succeeded job is skipped, and a job whose
//! result blob is stored but whose record was not updated yet adopts that result. Everything
//! else selected becomes `queued` without a lease (so a worker of a demoted region holding the
//! old lease cannot commit) and gets one message; a duplicate message is harmless because a
//! worker claims through the job record.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::backend::Backends;
use shared::domain::{Job, JobId, JobMessage, JobStatus, TenantId};
use shared::ports::StoreError;

/// Which jobs to replay.
#[derive(Debug, Clone)]
pub struct Selection {
    pub tenant: Option<TenantId>,
    /// Only jobs created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Statuses to replay; `succeeded` is never replayed.
    pub statuses: Vec<JobStatus>,
    /// Also replay `processing` jobs whose lease has not expired (failover: their workers are
    /// gone with the old region).
    pub take_live_leases: bool,
}

impl Selection {
    /// Every unfinished job, leases or not: what a failover replays.
    pub fn unfinished() -> Selection {
        Selection {
            tenant: None,
            since: None,
            statuses: vec![JobStatus::Queued, JobStatus::Processing],
            take_live_leases: true,
        }
    }

    fn wants(&self, job: &Job) -> bool {
        self.statuses.contains(&job.status)
            && self.tenant.as_ref().is_none_or(|tenant| *tenant == job.tenant)
            && self.since.is_none_or(|since| job.created_at >= since)
    }
}

/// What a replay did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplayReport {
    pub dry_run: bool,
    pub examined: u64,
    /// Put back into the queue.
    pub replayed: u64,
    /// Already had a result: marked succeeded, not run again.
    pub adopted_results: u64,
    /// Selected but left alone: succeeded already, or a live lease without `take_live_leases`.
    pub skipped: u64,
    /// Dead-letter messages consumed (`--dlq`).
    pub dead_letters: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Backend(String),
}

/// Replays the jobs `selection` picks in `backends`' region; `progress` gets the jobs examined.
pub async fn replay_jobs(
    backends: &Backends,
    selection: &Selection,
    dry_run: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ReplayReport, ReplayError> {
    let mut report = ReplayReport { dry_run, ..ReplayReport::default() };
    let only_unfinished = selection.statuses.iter().all(|s| !s.is_terminal());
    let mut pending = Vec::new();
    if only_unfinished {
        let mut after = None;
        loop {
            let page = backends.jobs.list_unfinished(after, 500).await?;
            after = page.last().map(|job| job.id);
            for job in page.into_iter().filter(|job| selection.wants(job)) {
                pending.push(job);
            }
            if after.is_none() {
                break;
            }
        }
    } else {
        let tenants = match &selection.tenant {
            Some(tenant) => vec![tenant.clone()],
            None => backends.tenants.list_tenants().await.map_err(|e| ReplayError::Backend(e.to_string()))?,
        };
        for tenant in tenants {
            for status in &selection.statuses {
                let mut after = None;
                loop {
                    let page = backends.jobs.list_by_tenant(&tenant, Some(*status), after, 500).await?;
                    pending.extend(page.jobs.into_iter().filter(|job| selection.wants(job)));
                    match page.next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
            }
        }
    }
    let mut messages = Vec::new();
    for job in pending {
        report.examined += 1;
        if let Some(message) = replay_one(backends, &job, selection.take_live_leases, dry_run, &mut report).await? {
            messages.push(message);
        }
        if messages.len() == 10 {
            send(backends, std::mem::take(&mut messages)).await?;
        }
        if report.examined.is_multiple_of(50) {
            progress(report.examined);
        }
    }
    send(backends, messages).await?;
    progress(report.examined);
    Ok(report)
}

/// Redrives the dead-letter queue: every job in it is replayed (attempts reset) and its
/// dead-letter message consumed. In a dry run the messages come back after a short while.
pub async fn redrive_dead_letters(
    backends: &Backends,
    selection: &Selection,
    dry_run: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ReplayReport, ReplayError> {
    let mut report = ReplayReport { dry_run, ..ReplayReport::default() };
    let queue_error = |e: shared::ports::QueueError| ReplayError::Backend(e.to_string());
    loop {
        let received =
            backends.dead_letter.receive(10, Duration::from_secs(30), Duration::ZERO).await.map_err(queue_error)?;
        if received.is_empty() {
            break;
        }
        let (mut consumed, mut messages) = (Vec::new(), Vec::new());
        for message in received {
            let job = match JobMessage::decode(&message.body) {
                Ok(parsed) => backends.jobs.get(parsed.job_id).await?,
                Err(_) => None,
            };
            let Some(job) = job else {
                tracing::warn!(message_id = %message.message_id, "dead letter names no job; left in the queue");
                continue;
            };
            report.examined += 1;
            if selection.tenant.as_ref().is_some_and(|t| *t != job.tenant)
                || selection.since.is_some_and(|since| job.created_at < since)
            {
                report.skipped += 1;
                continue;
            }
            report.dead_letters += 1;
            if let Some(message) = replay_one(backends, &job, true, dry_run, &mut report).await? {
                messages.push(message);
            }
            consumed.push(message.receipt);
        }
        send(backends, messages).await?;
        if !dry_run && !consumed.is_empty() {
            backends.dead_letter.ack(&consumed).await.map_err(queue_error)?;
        }
        progress(report.examined);
        if dry_run && report.examined > 0 && consumed.is_empty() {
            break;
        }
    }
    Ok(report)
}

/// Replays the job `id` (the dashboard's replay button): a dead or failed job gets fresh
/// attempts and goes back to the queue; a succeeded one is left alone. `None` when there is no
/// such job.
pub async fn replay_job(backends: &Backends, id: JobId) -> Result<Option<ReplayReport>, ReplayError> {
    let Some(job) = backends.jobs.get(id).await? else { return Ok(None) };
    let mut report = ReplayReport { examined: 1, ..ReplayReport::default() };
    if let Some(message) = replay_one(backends, &job, false, false, &mut report).await? {
        send(backends, vec![message]).await?;
    }
    Ok(Some(report))
}

/// Replays one job; returns the message to send for it.
async fn replay_one(
    backends: &Backends,
    job: &Job,
    take_live_leases: bool,
    dry_run: bool,
    report: &mut ReplayReport,
) -> Result<Option<Bytes>, ReplayError> {
    if job.status == JobStatus::Succeeded {
        report.skipped += 1;
        return Ok(None);
    }
    let live_lease =
        job.status == JobStatus::Processing && job.lease.as_ref().is_some_and(|l| l.expires_at > Utc::now());
    if live_lease && !take_live_leases {
        report.skipped += 1;
        return Ok(None);
    }
    let result_key = job.result_blob_key();
    let has_result = backends.blobs.head(&result_key).await.map_err(|e| ReplayError::Backend(e.to_string()))?.is_some();
    if has_result && !job.status.is_terminal() {
        report.adopted_results += 1;
        if !dry_run {
            // Written again so that a mirrored `backends` carries the result to the other region
            // too: the worker that stored it may have died before announcing it.
            if let Some(bytes) =
                backends.blobs.get(&result_key).await.map_err(|e| ReplayError::Backend(e.to_string()))?
            {
                backends.blobs.put(&result_key, bytes).await.map_err(|e| ReplayError::Backend(e.to_string()))?;
            }
            let key = result_key.clone();
            backends.jobs.update(job.id, Box::new(move |j: &Job| j.adopt_result(key.clone(), Utc::now()))).await?;
        }
        return Ok(None);
    }
    report.replayed += 1;
    if dry_run {
        return Ok(None);
    }
    let updated = if job.status.is_terminal() {
        backends.jobs.update(job.id, Box::new(|j: &Job| j.requeue(Utc::now()))).await
    } else {
        backends.jobs.update(job.id, Box::new(|j: &Job| j.recover(Utc::now()))).await
    };
    let replayed = match updated {
        Ok(job) => job,
        // It finished (or was replayed) since it was listed: nothing to do.
        Err(StoreError::Transition(_)) => {
            report.replayed -= 1;
            report.skipped += 1;
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    Ok(Some(JobMessage::for_job(&replayed).encode()))
}

async fn send(backends: &Backends, messages: Vec<Bytes>) -> Result<(), ReplayError> {
    if messages.is_empty() {
        return Ok(());
    }
    backends.incoming.send_batch(messages, Duration::ZERO).await.map_err(|e| ReplayError::Backend(e.to_string()))
}
