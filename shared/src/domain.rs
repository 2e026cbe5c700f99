//! Domain types: job and tenant identifiers, the job record and its status machine.
//!
//! The status machine is the single source of truth for which transitions are legal; every
//! backend stores whole [`Job`] records and applies these methods inside its conditional write,
//! so no backend can invent a transition of its own.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A job's identity. UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    pub fn new() -> JobId {
        JobId(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        JobId::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<JobId, InvalidId> {
        let uuid = Uuid::parse_str(s).map_err(|_| InvalidId("job id"))?;
        if uuid.get_version_num() != 7 {
            return Err(InvalidId("job id"));
        }
        Ok(JobId(uuid))
    }
}

/// A tenant's identity: 1 to 64 characters of `a-z`, `0-9` and `-`, starting with a letter or
/// digit. Safe to use in blob keys and metric labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidId;

    fn try_from(s: String) -> Result<TenantId, InvalidId> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if valid { Ok(TenantId(s)) } else { Err(InvalidId("tenant id")) }
    }
}

impl FromStr for TenantId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<TenantId, InvalidId> {
        TenantId::try_from(s.to_owned())
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid {0}")]
pub struct InvalidId(&'static str);

/// What kind of document a job carries, from the upload's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentType {
    Pdf,
    Xml,
    Png,
    Jpeg,
    Tiff,
}

impl DocumentType {
    /// Maps an HTTP media type (parameters such as `charset` ignored) to a document type.
    pub fn from_media_type(media_type: &str) -> Option<DocumentType> {
        let essence = media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/pdf" => Some(DocumentType::Pdf),
            "application/xml" | "text/xml" => Some(DocumentType::Xml),
            "image/png" => Some(DocumentType::Png),
            "image/jpeg" => Some(DocumentType::Jpeg),
            "image/tiff" => Some(DocumentType::Tiff),
            _ => None,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            DocumentType::Pdf => "application/pdf",
            DocumentType::Xml => "application/xml",
            DocumentType::Png => "image/png",
            DocumentType::Jpeg => "image/jpeg",
            DocumentType::Tiff => "image/tiff",
        }
    }
}

/// Scheduling lanes live with the scaling model, which needs them without the rest of the
/// domain; they are domain types all the same.
pub use scaling::{Lane, PerLane};

/// Where a job is in its life.
///
/// ```text
/// queued ──claim──▶ processing ──succeed──▶ succeeded
///    ▲                  │  │ └────fail────▶ failed      (bad document: never retried)
///    └─────retry────────┘  └────bury──────▶ dead        (out of attempts: in the dead-letter queue)
/// ```
/// A `processing` job whose lease expired may be claimed again (its worker died).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Processing,
    Succeeded,
    Failed,
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Queued, JobStatus::Processing, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Processing => "processing",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
        }
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Dead)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<JobStatus, InvalidId> {
        JobStatus::ALL.into_iter().find(|status| status.as_str() == s).ok_or(InvalidId("status"))
    }
}

/// A worker's claim on a job. Every transition out of `processing` must present the lease
/// token it was claimed with, so a worker that was written off cannot commit a stale result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub token: Uuid,
    /// After this instant the job may be claimed by another worker.
    pub expires_at: DateTime<Utc>,
}

/// The durable record of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub tenant: TenantId,
    /// Client-chosen key that makes a repeated upload return this job instead of a new one;
    /// unique per tenant.
    pub idempotency_key: Option<String>,
    /// Where the document lives in the blob store.
    pub blob_key: String,
    pub document_type: DocumentType,
    /// Document size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the document, to verify copies and detect idempotency-key reuse.
    pub sha256: String,
    /// Rough page count (PDFs), used to choose the lane.
    pub page_estimate: u32,
    pub status: JobStatus,
    /// Number of times a worker claimed the job.
    pub attempts: u32,
    pub lease: Option<Lease>,
    /// Where the booking proposal lives once the job succeeded.
    pub result_key: Option<String>,
    pub last_error: Option<JobError>,
    /// Since when the job has been waiting out infrastructure faults (store, queue, disk): set by
    /// the first [`Job::defer`], cleared when the job succeeds or is replayed. Such faults do not use up
    /// attempts; the job is buried only once they have lasted the configured window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transient_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Why an attempt failed, as shown to the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobError {
    /// Stable machine-readable code, e.g. `not_an_invoice`.
    pub code: ErrorCode,
    pub message: String,
}

impl JobError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> JobError {
        JobError { code, message: message.into() }
    }
}

/// Every code a job's error can carry, serialised as the snake_case codes tenants see. The first
/// group lies with the document (never retried); the second with the machine (retried).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedDocument,
    NotAnInvoice,
    RejectedDocument,
    UnsupportedFormat,
    EncryptedDocument,
    DocumentTooLarge,
    OverBudget,
    /// An amount on the document beyond what Surge books (±10^15).
    AmountOutOfRange,
    TimeBudgetExceeded,
    DocumentMissing,
    InternalError,
    ExtractorUnavailable,
    BlobStoreUnavailable,
    JobStoreUnavailable,
    WorkerStopping,
    WorkerStopped,
    WorkerLost,
    AttemptsExhausted,
    Dead,
    /// A code this build does not know (written by a newer version); shown as `unknown`.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedDocument => "malformed_document",
            ErrorCode::NotAnInvoice => "not_an_invoice",
            ErrorCode::RejectedDocument => "rejected_document",
            ErrorCode::UnsupportedFormat => "unsupported_format",
            ErrorCode::EncryptedDocument => "encrypted_document",
            ErrorCode::DocumentTooLarge => "document_too_large",
            ErrorCode::OverBudget => "over_budget",
            ErrorCode::AmountOutOfRange => "amount_out_of_range",
            ErrorCode::TimeBudgetExceeded => "time_budget_exceeded",
            ErrorCode::DocumentMissing => "document_missing",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::ExtractorUnavailable => "extractor_unavailable",
            ErrorCode::BlobStoreUnavailable => "blob_store_unavailable",
            ErrorCode::JobStoreUnavailable => "job_store_unavailable",
            ErrorCode::WorkerStopping => "worker_stopping",
            ErrorCode::WorkerStopped => "worker_stopped",
            ErrorCode::WorkerLost => "worker_lost",
            ErrorCode::AttemptsExhausted => "attempts_exhausted",
            ErrorCode::Dead => "dead",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// Compares with the code as tenants see it, e.g. `code == "not_an_invoice"`.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition the status machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("job is {from}; cannot {action}")]
    IllegalTransition { from: JobStatus, action: &'static str },
    #[error("job is held by another worker until {until}")]
    LeaseHeld { until: DateTime<Utc> },
    #[error("lease is no longer valid")]
    StaleLease,
}

/// What the API needs to create a job.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub tenant: TenantId,
    pub idempotency_key: Option<String>,
    pub blob_key: String,
    pub document_type: DocumentType,
    pub size: u64,
    pub sha256: String,
    pub page_estimate: u32,
}

impl Job {
    pub fn new(new: NewJob, now: DateTime<Utc>) -> Job {
        Job {
            id: new.id,
            tenant: new.tenant,
            idempotency_key: new.idempotency_key,
            blob_key: new.blob_key,
            document_type: new.document_type,
            size: new.size,
            sha256: new.sha256,
            page_estimate: new.page_estimate,
            status: JobStatus::Queued,
            attempts: 0,
            lease: None,
            result_key: None,
            last_error: None,
            transient_since: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
        }
    }

    /// A worker takes the job: `queued → processing`, or `processing → processing` when the
    /// previous holder's lease has expired.
    pub fn claim(&self, lease: Lease, now: DateTime<Utc>) -> Result<Job, TransitionError> {
        match (self.status, &self.lease) {
            (JobStatus::Queued, _) => {}
            (JobStatus::Processing, Some(held)) if held.expires_at > now => {
                return Err(TransitionError::LeaseHeld { until: held.expires_at });
            }
            (JobStatus::Processing, _) => {}
            (from, _) => return Err(TransitionError::IllegalTransition { from, action: "claim" }),
        }
        let mut job = self.clone();
        job.status = JobStatus::Processing;
        job.attempts += 1;
        job.lease = Some(lease);
        job.started_at.get_or_insert(now);
        job.updated_at = now;
        Ok(job)
    }

    /// The holder extends its lease while it works.
    pub fn renew(&self, token: Uuid, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<Job, TransitionError> {
        self.check_lease(token, "renew")?;
        let mut job = self.clone();
        job.lease = Some(Lease { token, expires_at });
        job.updated_at = now;
        Ok(job)
    }

    /// `processing → succeeded` with the result's blob key (`None` for jobs without a result,
    /// such as benchmark no-ops).
    pub fn succeed(&self, token: Uuid, result_key: Option<String>, now: DateTime<Utc>) -> Result<Job, TransitionError> {
        self.check_lease(token, "succeed")?;
        let mut job = self.clone();
        job.status = JobStatus::Succeeded;
        job.lease = None;
        job.result_key = result_key;
        job.last_error = None;
        job.transient_since = None;
        job.finished_at = Some(now);
        job.updated_at = now;
        Ok(job)
    }

    /// `processing → failed`: the document itself is bad; never retried.
    pub fn fail(&self, token: Uuid, error: JobError, now: DateTime<Utc>) -> Result<Job, TransitionError> {
        self.finish_unsuccessfully(token, JobStatus::Failed, error, now, "fail")
    }

    /// `processing → dead`: out of attempts; the message goes to the dead-letter queue.
    pub fn bury(&self, token: Uuid, error: JobError, now: DateTime<Utc>) -> Result<Job, TransitionError> {
        self.finish_unsuccessfully(token, JobStatus::Dead, error, now, "bury")
    }

    /// Any non-terminal job goes to `dead`; used when a job is found in the dead-letter queue
    /// without its worker having said so (it crashed its worker too often).
    pub fn bury_abandoned(&self, error: JobError, now: DateTime<Utc>) -> Result<Job, TransitionError> {
        if self.status.is_terminal() {
            return Err(TransitionError::IllegalTransition { from: self.status, action: "bury" });
        }
        let mut job = self.clone();
        job.status = JobStatus::Dead;
        job.lease = None;
        job.last_error = Some(error);
        job.finished_at = Some(now);
        job.updated_at = now;
        Ok(job)
    }

    /// `processing → queued`: a transient failure; the queue redelivers after a backoff.
    pub fn retry(&self, token: Uuid, error: JobError, now: DateTime<Utc>) -> Result<Job, TransitionError> {
        self.check_lease(token, "retry")?;
        let mut job = self.clone();
        job.status = JobStatus::Queued;
        job.lease = None;
        job.last_error = Some(error);
        job.updated_at = now;
        Ok(job)
    }

    /// `processing → queued`: the infrastructure failed this attempt (a store, the queue, the
    /// disk), not the document. The attempt is given back, and [`Job::transient_since`] records
    /// when the faults began; the queue redelivers after a backoff.
    pub fn defer(&self, token: Uuid, error: JobError, now: DateTime<Utc>) -> Result<Job, TransitionError> {
        let mut job = self.retry(token, error, now)?;
        job.attempts = job.attempts.saturating_sub(1);
        job.transient_since.get_or_insert(now);
        Ok(job)
    }

    /// `dead | failed → queued` for an operator's replay; resets the attempt count.
    pub fn requeue(&self, now: DateTime<Utc>) -> Result<Job, TransitionError> {
        if !matches!(self.status, JobStatus::Dead | JobStatus::Failed) {
            return Err(TransitionError::IllegalTransition { from: self.status, action: "requeue" });
        }
        let mut job = self.clone();
        job.status = JobStatus::Queued;
        job.attempts = 0;
        job.transient_since = None;
        job.lease = None;
        job.finished_at = None;
        job.updated_at = now;
        Ok(job)
    }

    /// `queued | processing → queued` when a job is replayed in another region (failover,
    /// `surge replay`): any lease is dropped, so a worker of the old region holding it can no
    /// longer commit (fencing). Attempts are kept.
    pub fn recover(&self, now: DateTime<Utc>) -> Result<Job, TransitionError> {
        if self.status.is_terminal() {
            return Err(TransitionError::IllegalTransition { from: self.status, action: "recover" });
        }
        let mut job = self.clone();
        job.status = JobStatus::Queued;
        job.lease = None;
        job.updated_at = now;
        Ok(job)
    }

    /// `queued | processing → succeeded` with a result that is already stored (its worker
    /// wrote it, but the region was lost before the record said so): replay must not book the
    /// document a second time.
    pub fn adopt_result(&self, result_key: String, now: DateTime<Utc>) -> Result<Job, TransitionError> {
        if self.status.is_terminal() {
            return Err(TransitionError::IllegalTransition { from: self.status, action: "adopt result" });
        }
        let mut job = self.clone();
        job.status = JobStatus::Succeeded;
        job.lease = None;
        job.result_key = Some(result_key);
        job.finished_at = Some(now);
        job.updated_at = now;
        Ok(job)
    }

    /// Where the job's booking proposal is stored once it succeeded.
    pub fn result_blob_key(&self) -> String {
        crate::keys::result(&self.tenant, self.id)
    }

    fn finish_unsuccessfully(
        &self,
        token: Uuid,
        status: JobStatus,
        error: JobError,
        now: DateTime<Utc>,
        action: &'static str,
    ) -> Result<Job, TransitionError> {
        self.check_lease(token, action)?;
        let mut job = self.clone();
        job.status = status;
        job.lease = None;
        job.last_error = Some(error);
        job.finished_at = Some(now);
        job.updated_at = now;
        Ok(job)
    }

    fn check_lease(&self, token: Uuid, action: &'static str) -> Result<(), TransitionError> {
        if self.status != JobStatus::Processing {
            return Err(TransitionError::IllegalTransition { from: self.status, action });
        }
        match &self.lease {
            Some(lease) if lease.token == token => Ok(()),
            _ => Err(TransitionError::StaleLease),
        }
    }
}

/// The message that travels through the queues: enough to schedule a job without reading its
/// record. The record stays the source of truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: JobId,
    pub tenant: TenantId,
    pub document_type: DocumentType,
    pub size: u64,
    pub page_estimate: u32,
    /// When the upload was accepted; lets the dispatcher and metrics see queue wait.
    pub enqueued_at: DateTime<Utc>,
    /// How many times infrastructure faults sent this job back to its lane. A deferred job
    /// travels as a fresh message, so the queue's receive count (which buries jobs that keep
    /// killing their workers) only counts attempts that ended without a verdict; this count
    /// drives the backoff instead.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deferrals: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl JobMessage {
    /// The message's body on a queue. The one place a job message is encoded.
    pub fn encode(&self) -> bytes::Bytes {
        // A struct of ids, numbers and a timestamp always serialises.
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a queue message's body. The one place a job message is decoded; `Err` for a body
    /// that is not a job message (dead-letter it).
    pub fn decode(body: &[u8]) -> Result<JobMessage, serde_json::Error> {
        serde_json::from_slice(body)
    }

    pub fn for_job(job: &Job) -> JobMessage {
        JobMessage {
            job_id: job.id,
            tenant: job.tenant.clone(),
            document_type: job.document_type,
            size: job.size,
            page_estimate: job.page_estimate,
            enqueued_at: job.created_at,
            deferrals: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn job() -> Job {
        Job::new(
            NewJob {
                id: JobId::new(),
                tenant: "acme".parse().unwrap(),
                idempotency_key: None,
                blob_key: "documents/acme/x".into(),
                document_type: DocumentType::Xml,
                size: 10,
                sha256: "00".into(),
                page_estimate: 1,
            },
            Utc::now(),
        )
    }

    fn lease(now: DateTime<Utc>, secs: i64) -> Lease {
        Lease { token: Uuid::new_v4(), expires_at: now + Duration::seconds(secs) }
    }

    #[test]
    fn recovery_drops_the_lease_so_the_old_worker_cannot_commit() {
        let now = Utc::now();
        let held = lease(now, 60);
        let claimed = job().claim(held.clone(), now).unwrap();
        let recovered = claimed.recover(now).unwrap();
        assert_eq!((recovered.status, recovered.lease.clone()), (JobStatus::Queued, None));
        assert_eq!(recovered.attempts, claimed.attempts, "attempts are kept");
        assert_eq!(
            recovered.succeed(held.token, None, now),
            Err(TransitionError::IllegalTransition { from: JobStatus::Queued, action: "succeed" })
        );
        let adopted = claimed.adopt_result(claimed.result_blob_key(), now).unwrap();
        assert_eq!(adopted.status, JobStatus::Succeeded);
        assert!(adopted.recover(now).is_err(), "a finished job is never replayed");
        assert!(adopted.adopt_result("x".into(), now).is_err());
    }

    fn error() -> JobError {
        JobError { code: ErrorCode::InternalError, message: "y".into() }
    }

    #[test]
    fn an_infrastructure_fault_gives_the_attempt_back_and_remembers_when_it_began() {
        let start = Utc::now();
        let l = lease(start, 30);
        let first = job().claim(l.clone(), start).unwrap().defer(l.token, error(), start).unwrap();
        assert_eq!((first.status, first.attempts, first.transient_since), (JobStatus::Queued, 0, Some(start)));
        let later = start + Duration::seconds(60);
        let l2 = lease(later, 30);
        let second = first.claim(l2.clone(), later).unwrap().defer(l2.token, error(), later).unwrap();
        assert_eq!((second.attempts, second.transient_since), (0, Some(start)), "the first fault's time is kept");
        let l3 = lease(later, 30);
        let done = second.claim(l3.clone(), later).unwrap().succeed(l3.token, None, later).unwrap();
        assert_eq!(done.transient_since, None);
        assert!(second.defer(Uuid::new_v4(), error(), later).is_err(), "only the lease holder defers");
    }

    #[test]
    fn happy_path() {
        let now = Utc::now();
        let l = lease(now, 30);
        let claimed = job().claim(l.clone(), now).unwrap();
        assert_eq!(claimed.status, JobStatus::Processing);
        assert_eq!(claimed.attempts, 1);
        let done = claimed.succeed(l.token, Some("results/acme/x.json".into()), now).unwrap();
        assert_eq!(done.status, JobStatus::Succeeded);
        assert!(done.status.is_terminal());
    }

    #[test]
    fn terminal_jobs_refuse_everything() {
        let now = Utc::now();
        let l = lease(now, 30);
        let done = job().claim(l.clone(), now).unwrap().succeed(l.token, Some("r".into()), now).unwrap();
        assert!(done.claim(lease(now, 30), now).is_err());
        assert!(done.fail(l.token, error(), now).is_err());
        assert!(done.retry(l.token, error(), now).is_err());
        assert!(done.succeed(l.token, Some("r".into()), now).is_err());
        assert!(done.requeue(now).is_err());
    }

    #[test]
    fn a_live_lease_blocks_and_an_expired_one_is_fenced() {
        let now = Utc::now();
        let first = lease(now, 30);
        let claimed = job().claim(first.clone(), now).unwrap();
        assert!(matches!(claimed.claim(lease(now, 30), now), Err(TransitionError::LeaseHeld { .. })));

        let later = now + Duration::seconds(31);
        let second = lease(later, 30);
        let reclaimed = claimed.claim(second.clone(), later).unwrap();
        assert_eq!(reclaimed.attempts, 2);
        // The written-off worker comes back: its token no longer counts.
        assert_eq!(reclaimed.succeed(first.token, Some("r".into()), later), Err(TransitionError::StaleLease));
        assert!(reclaimed.succeed(second.token, Some("r".into()), later).is_ok());
    }

    #[test]
    fn queued_cannot_finish_without_a_claim() {
        let now = Utc::now();
        let j = job();
        assert!(j.succeed(Uuid::new_v4(), Some("r".into()), now).is_err());
        assert!(j.fail(Uuid::new_v4(), error(), now).is_err());
    }

    #[test]
    fn retry_then_dead() {
        let now = Utc::now();
        let l = lease(now, 30);
        let retried = job().claim(l.clone(), now).unwrap().retry(l.token, error(), now).unwrap();
        assert_eq!(retried.status, JobStatus::Queued);
        let l2 = lease(now, 30);
        let dead = retried.claim(l2.clone(), now).unwrap().bury(l2.token, error(), now).unwrap();
        assert_eq!(dead.status, JobStatus::Dead);
        assert_eq!(dead.attempts, 2);
        let replayed = dead.requeue(now).unwrap();
        assert_eq!(replayed.status, JobStatus::Queued);
        assert_eq!(replayed.attempts, 0);
    }

    #[test]
    fn ids_parse_and_refuse_garbage() {
        let id = JobId::new();
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        assert!("not-a-uuid".parse::<JobId>().is_err());
        assert!(Uuid::new_v4().to_string().parse::<JobId>().is_err());
        assert!("Acme".parse::<TenantId>().is_err());
        assert!("-x".parse::<TenantId>().is_err());
        assert!("acme-2".parse::<TenantId>().is_ok());
    }

    #[test]
    fn media_types() {
        assert_eq!(DocumentType::from_media_type("text/xml; charset=utf-8"), Some(DocumentType::Xml));
        assert_eq!(DocumentType::from_media_type("application/json"), None);
    }
}
