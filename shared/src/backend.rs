//! Opens a region's ports on its backend (embedded or AWS): the one place that picks a backend.

use std::path::Path;
use std::sync::Arc;

use crate::config::RegionConfig;
use crate::domain::Lane;
use crate::embedded::{EmbeddedQueues, FsBlobStore, Redrive, SqliteState};
pub use crate::ports::{Backends, queue_names};

/// Why the backends could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open {what} under {location}: {message}")]
    Embedded { what: &'static str, location: String, message: String },
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
}

impl Backends {
    /// Opens one region's own ports (nothing mirrored), creating an embedded one if needed.
    pub async fn open_region(region: &RegionConfig, max_attempts: u32) -> Result<Backends, OpenError> {
        match region {
            RegionConfig::Embedded { data_dir } => Backends::open_embedded(data_dir, max_attempts),
            RegionConfig::Aws(settings) => Ok(crate::aws::open(settings, max_attempts).await?),
        }
    }

    /// Opens the embedded backend under `data_dir`. Lane queues dead-letter a message that was
    /// delivered `max_attempts + 2` times: workers bury jobs themselves after `max_attempts`,
    /// so this is only the safety net for a message no worker survives.
    pub fn open_embedded(data_dir: &Path, max_attempts: u32) -> Result<Backends, OpenError> {
        let error = |what: &'static str, message: String| OpenError::Embedded {
            what,
            location: data_dir.display().to_string(),
            message,
        };
        let state = SqliteState::open(&data_dir.join("state.db")).map_err(|e| error("job state", e.to_string()))?;
        let queues = EmbeddedQueues::open(&data_dir.join("queue.db")).map_err(|e| error("queues", e.to_string()))?;
        let blobs = FsBlobStore::open(&data_dir.join("blobs")).map_err(|e| error("blobs", e.to_string()))?;
        let redrive =
            Some(Redrive { dead_letter_queue: queue_names::DEAD_LETTER.to_owned(), max_receives: max_attempts + 2 });
        let state = Arc::new(state);
        Ok(Backends {
            jobs: state.clone(),
            tenants: state.clone(),
            workers: state,
            blobs: Arc::new(blobs),
            incoming: Arc::new(queues.queue(queue_names::INCOMING, redrive.clone())),
            small_lane: Arc::new(queues.queue(queue_names::lane(Lane::Small), redrive.clone())),
            large_lane: Arc::new(queues.queue(queue_names::lane(Lane::Large), redrive)),
            dead_letter: Arc::new(queues.queue(queue_names::DEAD_LETTER, None)),
            replication: Arc::new(queues.queue(queue_names::REPLICATION, None)),
        })
    }
}
