//! Opens the ports for a region and names its queues; the one place that picks a backend.

use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, RegionConfig};
use crate::domain::Lane;
use crate::embedded::{EmbeddedQueues, FsBlobStore, Redrive, SqliteState};
use crate::ports::{BlobStore, JobStore, Queue, TenantDirectory, WorkerRegistry};
use crate::region::{Topology, TopologyError};

/// Queue names, shared by every backend.
pub mod queue_names {
    use crate::domain::Lane;

    /// Where the API puts every accepted job; read by the dispatcher only.
    pub const INCOMING: &str = "incoming";
    /// Jobs that ran out of attempts, for operators to inspect and replay.
    pub const DEAD_LETTER: &str = "dead-letter";
    /// The replication outbox: changes still to ship to the other region.
    pub const REPLICATION: &str = "replication";

    /// The queue a lane's workers read.
    pub fn lane(lane: Lane) -> &'static str {
        match lane {
            Lane::Small => "lane-small",
            Lane::Large => "lane-large",
        }
    }
}

/// Every port of one region, ready to use.
#[derive(Clone)]
pub struct Backends {
    pub jobs: Arc<dyn JobStore>,
    pub tenants: Arc<dyn TenantDirectory>,
    pub workers: Arc<dyn WorkerRegistry>,
    pub blobs: Arc<dyn BlobStore>,
    pub incoming: Arc<dyn Queue>,
    pub small_lane: Arc<dyn Queue>,
    pub large_lane: Arc<dyn Queue>,
    pub dead_letter: Arc<dyn Queue>,
    /// Changes still to be shipped to the other region (`crate::replication`).
    pub replication: Arc<dyn Queue>,
}

/// Why the backends could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open {what} under {location}: {message}")]
    Embedded { what: &'static str, location: String, message: String },
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
}

impl Backends {
    /// Every queue of the region, in pipeline order (incoming, lanes, dead letters, outbox).
    pub fn queues(&self) -> [&Arc<dyn Queue>; 5] {
        [&self.incoming, &self.small_lane, &self.large_lane, &self.dead_letter, &self.replication]
    }

    pub fn lane(&self, lane: Lane) -> &Arc<dyn Queue> {
        match lane {
            Lane::Small => &self.small_lane,
            Lane::Large => &self.large_lane,
        }
    }

    /// Opens the active region as `config` and the region epoch say, mirrored to the other
    /// region (see [`Topology`]). Processes that must stop when demoted use [`Topology`].
    pub async fn open(config: &Config) -> Result<Backends, TopologyError> {
        Ok(Topology::open(config).await?.backends())
    }

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
