//! The CPU pool: extraction runs on blocking threads, at most `cpu_threads` documents at once,
//! within the job's time budget.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shared::chart::Chart;
use shared::config::WorkerConfig;
use shared::domain::{DocumentType, ErrorCode, JobError};
use shared::proposal::BookingProposal;
use tracing::warn;

use super::Context;
use super::outcome::{WorkError, extract_error};
use crate::extract::{self, ExtractOptions};
use crate::limits::Limits;

/// Extracts the proposal from `bytes` on the pool, once a CPU slot is free, within
/// `job_timeout_secs`.
pub(super) async fn extract_on_pool(
    context: &Context,
    bytes: Bytes,
    document_type: DocumentType,
    chart: Chart,
) -> Result<BookingProposal, WorkError> {
    let _permit = Arc::clone(&context.cpu).acquire_owned().await.map_err(|_| {
        WorkError::Transient(JobError { code: ErrorCode::WorkerStopping, message: "CPU pool closed".into() })
    })?;
    let budget = Duration::from_secs(context.config.job_timeout_secs);
    let options = extract_options(&context.config, budget);
    let task = tokio::task::spawn_blocking(move || extract::extract_with(&bytes, document_type, &chart, &options));
    match tokio::time::timeout(budget, task).await {
        Ok(Ok(Ok(proposal))) => Ok(proposal),
        Ok(Ok(Err(error))) if error.is_transient() => Err(WorkError::Transient(extract_error(&error))),
        Ok(Ok(Err(error))) => Err(WorkError::Document(extract_error(&error))),
        Ok(Err(join_error)) => {
            warn!(error = %join_error, "extraction panicked");
            Err(WorkError::Document(JobError {
                code: ErrorCode::InternalError,
                message: "the document could not be read because of an internal error".into(),
            }))
        }
        Err(_) => Err(WorkError::Document(JobError {
            code: ErrorCode::TimeBudgetExceeded,
            message: format!("processing took longer than the budget of {} s", budget.as_secs()),
        })),
    }
}

/// How a job's document is read: within its time `budget` less a margin, and its memory.
fn extract_options(config: &WorkerConfig, budget: Duration) -> ExtractOptions {
    // The extractor kills its tools a little before the budget, so a slow document fails with
    // its own clear reason and leaves nothing running behind.
    let margin = (budget / 10).min(Duration::from_secs(5));
    ExtractOptions {
        ignore_embedded: false,
        limits: Limits {
            time: budget - margin,
            memory_bytes: config.job_memory_mib.saturating_mul(1024 * 1024),
            ..Limits::default()
        },
    }
}
