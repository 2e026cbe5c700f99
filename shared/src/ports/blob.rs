//! The blob store port: documents and results, written atomically.

use super::fault::Fault;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

/// A key-value store for immutable-ish byte objects (documents, results, manifests).
///
/// Contract (checked for every backend by `blob_contract` in `shared/src/contract.rs`):
/// - Keys are `/`-separated segments of `[A-Za-z0-9._=-]`, no empty, `.` or `..` segments
///   (see [`validate_blob_key`]).
/// - `put` is atomic and durable: a reader sees the old object, or the whole new one, never a
///   torn write; after `put` returns the object survives a crash. `put` replaces.
/// - `put_if_absent` writes only if no object exists under the key and reports whether it did;
///   two racing callers cannot both win.
/// - `get` and `head` of a missing key return `Ok(None)`.
/// - `delete` of a missing key is not an error.
/// - `list` returns every key under a prefix, sorted.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<BlobMeta, BlobError>;
    /// Returns `Ok(None)` when the key already existed (nothing was written).
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<Option<BlobMeta>, BlobError>;
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError>;
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError>;
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    /// The stored bytes do not match their recorded checksum; never retry blindly.
    #[error("checksum mismatch for {0}")]
    Corrupt(String),
    /// The backend could not be reached or failed; retry later.
    #[error("blob store unavailable: {0}")]
    Unavailable(Fault),
}

impl BlobError {
    /// Whether the failure lies with the infrastructure, so the same call may succeed later
    /// (retry with backoff; never blame the document for it).
    pub fn is_transient(&self) -> bool {
        matches!(self, BlobError::Unavailable(_))
    }
}

/// Checks a key against the port's key grammar.
pub fn validate_blob_key(key: &str) -> Result<(), BlobError> {
    let valid = !key.is_empty()
        && key.len() <= 1024
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"._=-".contains(&b))
        });
    if valid { Ok(()) } else { Err(BlobError::InvalidKey(key.to_owned())) }
}
