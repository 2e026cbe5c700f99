//! The blob store over S3: one object per key, at the key itself (`documents/…`, `results/…`),
//! next to the job store's and tenant directory's objects in the same bucket.
//!
//! S3 gives the port's guarantees directly: a put is atomic and durable when it returns,
//! `If-None-Match: *` makes `put_if_absent` race-free. The first key segments that the other
//! adapters use are reserved, so a blob can never overwrite a job record.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;

use super::RESERVED_PREFIXES;
use super::objects::{Bucket, Condition, ObjectError};
use crate::ports::Fault;
use crate::ports::{BlobError, BlobMeta, BlobStore, validate_blob_key};

/// A [`BlobStore`] in an S3 bucket.
pub(crate) struct S3BlobStore {
    bucket: Bucket,
}

impl S3BlobStore {
    pub(crate) fn new(bucket: Bucket) -> S3BlobStore {
        S3BlobStore { bucket }
    }

    async fn write(&self, key: &str, bytes: Bytes, condition: Condition) -> Result<Option<BlobMeta>, BlobError> {
        validate(key)?;
        let size = bytes.len() as u64;
        let written = self.bucket.put(key, bytes, &condition).await?;
        Ok(written.map(|_| BlobMeta { key: key.to_owned(), size, modified: Utc::now() }))
    }
}

/// The port's key grammar, minus the prefixes the other adapters own.
fn validate(key: &str) -> Result<(), BlobError> {
    validate_blob_key(key)?;
    if is_reserved(key) {
        return Err(BlobError::InvalidKey(key.to_owned()));
    }
    Ok(())
}

fn is_reserved(key: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|prefix| key.starts_with(prefix))
}

impl From<ObjectError> for BlobError {
    fn from(err: ObjectError) -> BlobError {
        match err {
            ObjectError::Call(err) => err.into(),
            ObjectError::Corrupt(key) => BlobError::Corrupt(key),
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<BlobMeta, BlobError> {
        self.write(key, bytes, Condition::Always)
            .await?
            .ok_or_else(|| BlobError::Unavailable(Fault::new(format!("unconditional write of {key} was refused"))))
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<Option<BlobMeta>, BlobError> {
        self.write(key, bytes, Condition::IfAbsent).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        validate(key)?;
        Ok(self.bucket.get(key).await?.map(|fetched| fetched.bytes))
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        validate(key)?;
        let head = self.bucket.head(key).await?;
        Ok(head.map(|head| BlobMeta { key: key.to_owned(), size: head.size, modified: head.modified }))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        validate(key)?;
        Ok(self.bucket.delete(key).await?)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let mut keys = self.bucket.list_all(prefix).await?;
        keys.retain(|key| !is_reserved(key));
        keys.sort();
        Ok(keys)
    }
}
