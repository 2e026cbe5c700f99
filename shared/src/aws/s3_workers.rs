//! The worker registry over S3: the latest beat of each worker at `workers/beats/{id}.json`, and a
//! drain request as the marker object `workers/drain/{id}`.

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use super::objects::{Bucket, Condition, ObjectError};
use crate::ports::Fault;
use crate::ports::{RegistryError, WorkerBeat, WorkerOrders, WorkerRegistry};

const BEATS: &str = "workers/beats/";
const DRAIN: &str = "workers/drain/";

/// A [`WorkerRegistry`] in an S3 bucket.
pub(crate) struct S3WorkerRegistry {
    bucket: Bucket,
}

impl S3WorkerRegistry {
    pub(crate) fn new(bucket: Bucket) -> S3WorkerRegistry {
        S3WorkerRegistry { bucket }
    }
}

fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> RegistryError {
    RegistryError::Unavailable(Fault::from_error(err))
}

impl From<ObjectError> for RegistryError {
    fn from(err: ObjectError) -> RegistryError {
        unavailable(err)
    }
}

#[async_trait]
impl WorkerRegistry for S3WorkerRegistry {
    async fn beat(&self, beat: &WorkerBeat) -> Result<WorkerOrders, RegistryError> {
        let bytes = serde_json::to_vec(beat).map_err(unavailable)?;
        let id = beat.worker_id;
        self.bucket
            .put(&format!("{BEATS}{id}.json"), Bytes::from(bytes), &Condition::Always)
            .await
            .map_err(unavailable)?;
        let drain = self.bucket.head(&format!("{DRAIN}{id}")).await.map_err(unavailable)?.is_some();
        Ok(WorkerOrders { drain })
    }

    async fn list(&self) -> Result<Vec<WorkerBeat>, RegistryError> {
        let mut beats = Vec::new();
        for key in self.bucket.list_all(BEATS).await.map_err(unavailable)? {
            // A worker removed between the listing and the read is simply gone.
            if let Some(fetched) = self.bucket.get(&key).await? {
                beats.push(serde_json::from_slice(&fetched.bytes).map_err(unavailable)?);
            }
        }
        Ok(beats)
    }

    async fn request_drain(&self, worker_id: Uuid) -> Result<(), RegistryError> {
        self.bucket.put(&format!("{DRAIN}{worker_id}"), Bytes::new(), &Condition::Always).await.map_err(unavailable)?;
        Ok(())
    }

    async fn remove(&self, worker_id: Uuid) -> Result<(), RegistryError> {
        self.bucket.delete(&format!("{BEATS}{worker_id}.json")).await.map_err(unavailable)?;
        self.bucket.delete(&format!("{DRAIN}{worker_id}")).await.map_err(unavailable)?;
        Ok(())
    }
}
