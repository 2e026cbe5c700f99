//! The enqueue path: store a document, create its job record, send it to the incoming queue.
//! Used by the HTTP API and by `surge bench`, so the benchmark measures what uploads do.

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use sha2::{Digest, Sha256};
use shared::backend::Backends;
use shared::domain::{DocumentType, Job, JobId, JobMessage, JobStatus, NewJob, TenantId};
use shared::ports::{BlobError, CreateOutcome, QueueError, StoreError};

/// What happened to an upload.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// A new job, durable and enqueued.
    Created(Job),
    /// The idempotency key was seen before with the same document: the earlier job.
    Repeated(Job),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum IntakeError {
    /// The idempotency key was used before for a different document.
    #[error("idempotency key was already used for a different document")]
    KeyReused,
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Where a job's document is stored.
pub(crate) fn document_key(tenant: &TenantId, id: JobId) -> String {
    shared::keys::document(tenant, id)
}

/// Stores `bytes` for `tenant` and enqueues a job for it. Returns only when the document, the
/// job record and the queue message are all durable.
pub(crate) async fn accept(
    backends: &Backends,
    tenant: &TenantId,
    idempotency_key: Option<String>,
    document_type: DocumentType,
    bytes: Bytes,
) -> Result<Accepted, IntakeError> {
    let id = JobId::new();
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let blob_key = document_key(tenant, id);
    let new = NewJob {
        id,
        tenant: tenant.clone(),
        idempotency_key,
        blob_key: blob_key.clone(),
        document_type,
        size: bytes.len() as u64,
        sha256,
        page_estimate: estimate_pages(document_type, &bytes),
    };
    backends.blobs.put_if_absent(&blob_key, bytes).await?;
    match backends.jobs.create(Job::new(new.clone(), Utc::now())).await? {
        CreateOutcome::Created(job) => {
            enqueue(backends, std::slice::from_ref(&job)).await?;
            Ok(Accepted::Created(job))
        }
        CreateOutcome::Existing(job) => {
            // The document we just stored belongs to no job; the earlier upload's copy stays.
            if let Err(err) = backends.blobs.delete(&blob_key).await {
                tracing::warn!(key = %blob_key, error = %err, "could not delete a duplicate upload");
            }
            if job.sha256 != new.sha256 {
                return Err(IntakeError::KeyReused);
            }
            if job.status == JobStatus::Queued {
                // The first request may have died between record and message; a duplicate
                // message is harmless, a missing one would strand the job.
                enqueue(backends, std::slice::from_ref(&job)).await?;
            }
            Ok(Accepted::Repeated(job))
        }
    }
}

/// Sends the incoming-queue messages for `jobs`.
pub(crate) async fn enqueue(backends: &Backends, jobs: &[Job]) -> Result<(), QueueError> {
    let bodies = jobs.iter().map(|job| JobMessage::for_job(job).encode()).collect();
    backends.incoming.send_batch(bodies, Duration::ZERO).await
}

/// A cheap page count: PDFs by their `/Type /Page` objects, everything else one page. Only
/// used to pick a lane, so it may be off for compressed object streams.
pub(crate) fn estimate_pages(document_type: DocumentType, bytes: &[u8]) -> u32 {
    if document_type != DocumentType::Pdf {
        return 1;
    }
    let mut pages = 0u32;
    for needle in [&b"/Type /Page"[..], &b"/Type/Page"[..]] {
        let mut rest = bytes;
        while let Some(at) = find(rest, needle) {
            let after = rest.get(at + needle.len()).copied();
            if after != Some(b's') {
                pages = pages.saturating_add(1);
            }
            rest = &rest[at + needle.len()..];
        }
    }
    pages.max(1)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pdf_pages_not_page_trees() {
        let pdf = b"1 0 obj << /Type /Pages /Count 2 >> 2 0 obj << /Type /Page >> 3 0 obj <</Type/Page>>";
        assert_eq!(estimate_pages(DocumentType::Pdf, pdf), 2);
        assert_eq!(estimate_pages(DocumentType::Pdf, b"garbage"), 1);
        assert_eq!(estimate_pages(DocumentType::Xml, pdf), 1);
    }
}
