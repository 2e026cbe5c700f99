//! How a job attempt ends ([`Outcome`], and [`WorkError`] when the work itself fails), and the
//! writes that settle a message: the result blob, the ack, the move to the dead-letter queue.

use std::time::Duration;

use bytes::Bytes;
use shared::domain::{ErrorCode, Job, JobError};
use shared::ports::{Queue, ReceivedMessage, StoreError};
use tracing::warn;

use super::Context;
use crate::error::ExtractError;

/// How a job attempt ended.
pub(super) enum Outcome {
    Succeeded,
    Failed(JobError),
    /// A transient problem (store unreachable); the job is tried again later.
    Retry(JobError),
    /// Another delivery of a job that is finished or being worked on elsewhere.
    Duplicate,
    /// This worker lost its lease or is stopping; the message is left to come back.
    Abandoned,
}

/// Why the work on a claimed job did not produce a result.
pub(super) enum WorkError {
    /// The document is at fault; final.
    Document(JobError),
    /// Infrastructure is at fault; try again later.
    Transient(JobError),
}

impl WorkError {
    /// The blob store could not be reached: worth another attempt. The cause goes to the log; the
    /// tenant sees a stable message without paths or OS errors.
    pub(super) fn blob_store(err: impl std::fmt::Display) -> WorkError {
        warn!(error = %err, "blob store unavailable");
        WorkError::Transient(JobError {
            code: ErrorCode::BlobStoreUnavailable,
            message: "the document store is unavailable; the job will be retried".to_owned(),
        })
    }
}

/// Stores a job's result under its key; returns the key. Same job, same key, same content: a
/// second run overwrites with an identical object.
pub(super) async fn store_result(
    context: &Context,
    job: &Job,
    result: &impl serde::Serialize,
) -> Result<String, WorkError> {
    let json = serde_json::to_vec_pretty(result).map_err(|e| {
        WorkError::Document(JobError { code: ErrorCode::InternalError, message: format!("unencodable result: {e}") })
    })?;
    let key = result_key(job);
    context.backends.blobs.put(&key, Bytes::from(json)).await.map_err(WorkError::blob_store)?;
    Ok(key)
}

/// Where a job's booking proposal is stored.
fn result_key(job: &Job) -> String {
    job.result_blob_key()
}

/// The job error recorded for a document that could not be read.
pub(super) fn extract_error(error: &ExtractError) -> JobError {
    JobError { code: error.code(), message: error.to_string() }
}

/// The job error recorded when the job store could not be reached; the cause goes to the log.
pub(super) fn store_error(err: StoreError) -> JobError {
    warn!(error = %err, "job store unavailable");
    JobError {
        code: ErrorCode::JobStoreUnavailable,
        message: "the job store is unavailable; the job will be retried".to_owned(),
    }
}

/// Acks `message`; a failed ack is only logged.
pub(super) async fn ack(queue: &dyn Queue, message: &ReceivedMessage) {
    if let Err(err) = queue.ack(std::slice::from_ref(&message.receipt)).await {
        // Not retried blindly: the message comes back and the job's idempotency handles it.
        warn!(error = %err, "ack failed; the message will be redelivered");
    }
}

/// Moves `message` to the dead-letter queue, then acks it on its lane.
pub(super) async fn dead_letter(context: &Context, queue: &dyn Queue, message: &ReceivedMessage) {
    match context.backends.dead_letter.send_batch(vec![message.body.clone()], Duration::ZERO).await {
        Ok(()) => ack(queue, message).await,
        Err(err) => warn!(error = %err, "could not move message to the dead-letter queue"),
    }
}
