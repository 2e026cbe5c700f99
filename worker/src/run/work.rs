//! The work of one claimed job: load its document and chart, extract the proposal on the CPU
//! pool and store it; or, for benchmarks, nothing at all (the `noop` processor) or a fixed
//! sleep (the `sleep:` processor).

use shared::config::Processor;
use shared::domain::{ErrorCode, Job, JobError};

use super::Context;
use super::charts::tenant_chart;
use super::cpu_pool::extract_on_pool;
use super::outcome::{WorkError, store_result};

/// Loads the document, extracts the proposal on the CPU pool and stores it. Returns the result
/// key (`None` for no-op jobs).
pub(super) async fn work(context: &Context, job: &Job) -> Result<Option<String>, WorkError> {
    if !context.options.debug_delay.is_zero() {
        tokio::time::sleep(context.options.debug_delay).await;
    }
    match context.config.processor {
        Processor::Noop => return Ok(None),
        Processor::Sleep(duration) => {
            tokio::time::sleep(duration).await;
            return store_result(context, job, &synthetic_result(job, context.config.processor)).await.map(Some);
        }
        Processor::Extract => {}
    }
    let bytes = match context.backends.blobs.get(&job.blob_key).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(WorkError::Document(JobError {
                code: ErrorCode::DocumentMissing,
                message: "the uploaded document is no longer stored".into(),
            }));
        }
        Err(err) => return Err(WorkError::blob_store(err)),
    };
    let chart = tenant_chart(context, job).await?;
    let proposal = extract_on_pool(context, bytes, job.document_type, chart).await?;
    store_result(context, job, &proposal).await.map(Some)
}

/// The result of a synthetic job: what it was, and that nothing was extracted.
fn synthetic_result(job: &Job, processor: Processor) -> serde_json::Value {
    serde_json::json!({
        "synthetic": true,
        "processor": processor.to_string(),
        "job_id": job.id,
        "document_sha256": job.sha256,
        "warnings": [format!("synthetic processor `{processor}`: the document was not read")],
    })
}
