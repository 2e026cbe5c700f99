//! One small error type for every failed S3 or SQS call, so the adapters classify failures
//! (missing, precondition failed, stale receipt) in one place and no SDK error type travels
//! further than the call that produced it.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::ports::Fault;
use crate::ports::{BlobError, QueueError, StoreError, TenantError};

/// A failed S3 or SQS call: throttling, network trouble, a refused request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed: {detail}")]
pub(crate) struct CallError {
    /// The API operation, e.g. `PutObject`, for the message.
    operation: &'static str,
    /// The service's error code, e.g. `PreconditionFailed`, when it sent one.
    code: Option<String>,
    /// The HTTP status of the response, when there was one.
    status: Option<u16>,
    detail: String,
}

impl CallError {
    /// Classifies an SDK error of `operation`.
    pub(crate) fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> CallError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|response| response.status().as_u16());
        let code = err.code().map(str::to_owned);
        let detail = match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => DisplayErrorContext(&err).to_string(),
        };
        CallError { operation, code, status, detail }
    }

    /// A failure found on our side of the call (a request that would not build, a body that
    /// could not be read).
    pub(crate) fn local(operation: &'static str, detail: impl std::fmt::Display) -> CallError {
        CallError { operation, code: None, status: None, detail: detail.to_string() }
    }

    /// The service's error code, e.g. `BucketAlreadyOwnedByYou`.
    pub(crate) fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The object or queue does not exist (HTTP 404 that is not about the bucket).
    pub(crate) fn is_not_found(&self) -> bool {
        self.status == Some(404) && self.code.as_deref() != Some("NoSuchBucket")
    }

    /// A conditional write lost (HTTP 412).
    pub(crate) fn is_precondition_failed(&self) -> bool {
        self.status == Some(412) || self.code.as_deref() == Some("PreconditionFailed")
    }

    /// S3 refused a conditional write because another one on the same key was in progress
    /// (HTTP 409 `ConditionalRequestConflict`); the caller should re-read and try again.
    pub(crate) fn is_conditional_conflict(&self) -> bool {
        self.status == Some(409) && self.code.as_deref() == Some("ConditionalRequestConflict")
    }
}

impl From<BuildError> for CallError {
    fn from(err: BuildError) -> CallError {
        CallError::local("building a request", err)
    }
}

impl From<CallError> for BlobError {
    fn from(err: CallError) -> BlobError {
        BlobError::Unavailable(Fault::from_error(err))
    }
}

impl From<CallError> for StoreError {
    fn from(err: CallError) -> StoreError {
        StoreError::Unavailable(Fault::from_error(err))
    }
}

impl From<CallError> for TenantError {
    fn from(err: CallError) -> TenantError {
        TenantError::Unavailable(Fault::from_error(err))
    }
}

impl From<CallError> for QueueError {
    fn from(err: CallError) -> QueueError {
        QueueError::Unavailable(Fault::from_error(err))
    }
}
