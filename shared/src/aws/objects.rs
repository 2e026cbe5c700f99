//! One S3 bucket as a checksummed key-value store with conditional writes: the layer under the
//! blob store, the job store, the tenant directory and the queues' claim checks.
//!
//! Every write records the body's SHA-256 as object metadata (`x-amz-meta-sha256`) and every
//! read checks it, so a body changed behind Surge's back is reported, never returned. Bodies of
//! [`MULTIPART_THRESHOLD`] bytes or more are uploaded in parts.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::service_error::CallError;

/// Bodies of at least this many bytes are uploaded in parts.
pub(crate) const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Size of each part of a multipart upload (the last one may be smaller).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Bodies larger than this are hashed on the blocking pool rather than on the runtime.
const INLINE_HASH_LIMIT: usize = 1024 * 1024;
/// User metadata key of the body's hex SHA-256 (sent as `x-amz-meta-sha256`).
const SHA256_METADATA: &str = "sha256";
/// Keys per `ListObjectsV2` call, the S3 maximum.
pub(crate) const LIST_PAGE: i32 = 1000;

/// Why an object could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ObjectError {
    #[error(transparent)]
    Call(#[from] CallError),
    /// The body does not match the SHA-256 recorded when it was written.
    #[error("checksum mismatch for {0}")]
    Corrupt(String),
}

/// What a write requires of the object already under the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    /// Nothing: the write replaces whatever is there.
    Always,
    /// No object may exist (`If-None-Match: *`).
    IfAbsent,
    /// The object must still have this ETag (`If-Match`).
    IfMatch(String),
}

impl Condition {
    fn if_none_match(&self) -> Option<String> {
        matches!(self, Condition::IfAbsent).then(|| "*".to_owned())
    }

    fn if_match(&self) -> Option<String> {
        match self {
            Condition::IfMatch(etag) => Some(etag.clone()),
            _ => None,
        }
    }
}

/// An object's body and the ETag that a later conditional write can present.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub(crate) bytes: Bytes,
    pub(crate) etag: String,
}

/// An object's metadata.
#[derive(Debug, Clone)]
pub(crate) struct ObjectHead {
    pub(crate) size: u64,
    pub(crate) modified: DateTime<Utc>,
}

/// One page of keys from a listing.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyPage {
    /// Keys in ascending order.
    pub(crate) keys: Vec<String>,
    /// More keys follow the last one.
    pub(crate) more: bool,
}

/// A handle to one bucket; cheap to clone.
#[derive(Clone)]
pub(crate) struct Bucket {
    client: Client,
    name: String,
}

impl Bucket {
    pub(crate) fn new(client: Client, name: &str) -> Bucket {
        Bucket { client, name: name.to_owned() }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The raw client, for tests that tamper with objects behind the store's back.
    #[cfg(test)]
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Whether the bucket exists and is reachable with these credentials.
    pub(crate) async fn exists(&self) -> Result<bool, CallError> {
        match self.client.head_bucket().bucket(&self.name).send().await {
            Ok(_) => Ok(true),
            Err(err) => {
                let err = CallError::from_sdk("HeadBucket", err);
                if err.is_not_found() { Ok(false) } else { Err(err) }
            }
        }
    }

    /// Creates the bucket in `region`.
    pub(crate) async fn create(&self, region: &str) -> Result<(), CallError> {
        let configuration = (region != "us-east-1").then(|| {
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region)).build()
        });
        self.client
            .create_bucket()
            .bucket(&self.name)
            .set_create_bucket_configuration(configuration)
            .send()
            .await
            .map_err(|e| CallError::from_sdk("CreateBucket", e))?;
        Ok(())
    }

    /// Writes `bytes` under `key` if `condition` holds. Returns the new ETag, or `None` when the
    /// condition failed and nothing was written.
    pub(crate) async fn put(
        &self,
        key: &str,
        bytes: Bytes,
        condition: &Condition,
    ) -> Result<Option<String>, CallError> {
        let sha256 = sha256_hex(bytes.clone()).await;
        let written = if bytes.len() >= MULTIPART_THRESHOLD {
            self.put_multipart(key, bytes, &sha256, condition).await
        } else {
            self.put_single(key, bytes, &sha256, condition).await
        };
        match written {
            Ok(etag) => Ok(Some(etag)),
            Err(err) if err.is_precondition_failed() => Ok(None),
            // Another conditional write on the key was in flight: for a compare-and-swap that
            // is a lost race like any other; for create-if-absent the outcome is unknown.
            Err(err) if err.is_conditional_conflict() && matches!(condition, Condition::IfMatch(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn put_single(
        &self,
        key: &str,
        bytes: Bytes,
        sha256: &str,
        condition: &Condition,
    ) -> Result<String, CallError> {
        let output = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(ByteStream::from(bytes))
            .metadata(SHA256_METADATA, sha256)
            .set_if_none_match(condition.if_none_match())
            .set_if_match(condition.if_match())
            .send()
            .await
            .map_err(|e| CallError::from_sdk("PutObject", e))?;
        Ok(output.e_tag().unwrap_or_default().to_owned())
    }

    async fn put_multipart(
        &self,
        key: &str,
        bytes: Bytes,
        sha256: &str,
        condition: &Condition,
    ) -> Result<String, CallError> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .metadata(SHA256_METADATA, sha256)
            .send()
            .await
            .map_err(|e| CallError::from_sdk("CreateMultipartUpload", e))?;
        let upload_id = upload.upload_id().ok_or_else(|| CallError::local("CreateMultipartUpload", "no upload id"))?;
        let completed = self.upload_parts_and_complete(key, upload_id, bytes, condition).await;
        if completed.is_err() {
            self.abort_multipart(key, upload_id).await;
        }
        completed
    }

    async fn upload_parts_and_complete(
        &self,
        key: &str,
        upload_id: &str,
        bytes: Bytes,
        condition: &Condition,
    ) -> Result<String, CallError> {
        let mut parts = Vec::new();
        for (index, start) in (0..bytes.len()).step_by(PART_SIZE).enumerate() {
            let number = i32::try_from(index + 1).map_err(|e| CallError::local("UploadPart", e))?;
            let part = bytes.slice(start..(start + PART_SIZE).min(bytes.len()));
            let output = self
                .client
                .upload_part()
                .bucket(&self.name)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(part))
                .send()
                .await
                .map_err(|e| CallError::from_sdk("UploadPart", e))?;
            parts.push(
                CompletedPart::builder().part_number(number).set_e_tag(output.e_tag().map(str::to_owned)).build(),
            );
        }
        let output = self
            .client
            .complete_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .set_if_none_match(condition.if_none_match())
            .set_if_match(condition.if_match())
            .send()
            .await
            .map_err(|e| CallError::from_sdk("CompleteMultipartUpload", e))?;
        Ok(output.e_tag().unwrap_or_default().to_owned())
    }

    /// Best effort: an upload left behind only costs storage until a lifecycle rule removes it.
    async fn abort_multipart(&self, key: &str, upload_id: &str) {
        let aborted =
            self.client.abort_multipart_upload().bucket(&self.name).key(key).upload_id(upload_id).send().await;
        if let Err(err) = aborted {
            tracing::warn!(key, error = %CallError::from_sdk("AbortMultipartUpload", err), "multipart upload left behind");
        }
    }

    /// Reads the object under `key` and checks its checksum; `None` when there is none.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Fetched>, ObjectError> {
        let output = match self.client.get_object().bucket(&self.name).key(key).send().await {
            Ok(output) => output,
            Err(err) => {
                let err = CallError::from_sdk("GetObject", err);
                return if err.is_not_found() { Ok(None) } else { Err(err.into()) };
            }
        };
        let etag = output.e_tag().unwrap_or_default().to_owned();
        let recorded = output.metadata().and_then(|m| m.get(SHA256_METADATA)).cloned();
        let bytes = output.body.collect().await.map_err(|e| CallError::local("GetObject", e))?.into_bytes();
        // Objects written by other tools carry no checksum and are taken as they are.
        if let Some(recorded) = recorded
            && sha256_hex(bytes.clone()).await != recorded
        {
            return Err(ObjectError::Corrupt(key.to_owned()));
        }
        Ok(Some(Fetched { bytes, etag }))
    }

    /// The object's metadata; `None` when there is none.
    pub(crate) async fn head(&self, key: &str) -> Result<Option<ObjectHead>, CallError> {
        let output = match self.client.head_object().bucket(&self.name).key(key).send().await {
            Ok(output) => output,
            Err(err) => {
                let err = CallError::from_sdk("HeadObject", err);
                return if err.is_not_found() { Ok(None) } else { Err(err) };
            }
        };
        let modified = output
            .last_modified()
            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
            .unwrap_or_else(Utc::now);
        Ok(Some(ObjectHead {
            size: output.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            modified,
        }))
    }

    /// Deletes the object under `key`; a missing one is fine.
    pub(crate) async fn delete(&self, key: &str) -> Result<(), CallError> {
        match self.client.delete_object().bucket(&self.name).key(key).send().await {
            Ok(_) => Ok(()),
            Err(err) => {
                let err = CallError::from_sdk("DeleteObject", err);
                if err.is_not_found() { Ok(()) } else { Err(err) }
            }
        }
    }

    /// Up to `max_keys` keys under `prefix` that sort after `start_after`.
    pub(crate) async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: i32,
    ) -> Result<KeyPage, CallError> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_owned))
            .max_keys(max_keys)
            .send()
            .await
            .map_err(|e| CallError::from_sdk("ListObjectsV2", e))?;
        let keys: Vec<String> = output.contents().iter().filter_map(|object| object.key().map(str::to_owned)).collect();
        Ok(KeyPage { more: output.is_truncated().unwrap_or(false) && !keys.is_empty(), keys })
    }

    /// Every key under `prefix`, in ascending order.
    pub(crate) async fn list_all(&self, prefix: &str) -> Result<Vec<String>, CallError> {
        let mut keys = Vec::new();
        loop {
            let page = self.list_page(prefix, keys.last().map(String::as_str), LIST_PAGE).await?;
            keys.extend(page.keys);
            if !page.more {
                return Ok(keys);
            }
        }
    }
}

/// Hex SHA-256 of `bytes`; large bodies are hashed on the blocking pool.
async fn sha256_hex(bytes: Bytes) -> String {
    fn digest(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }
    if bytes.len() <= INLINE_HASH_LIMIT {
        return digest(&bytes);
    }
    let on_pool = bytes.clone();
    match tokio::task::spawn_blocking(move || digest(&on_pool)).await {
        Ok(hash) => hash,
        Err(_) => digest(&bytes),
    }
}
