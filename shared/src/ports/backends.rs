//! A region's ports together: what a region is made of, whichever backend sits behind it.

use std::sync::Arc;

use crate::domain::Lane;
use crate::ports::{BlobStore, JobStore, Queue, TenantDirectory, WorkerRegistry};

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
    /// Changes still to be shipped to the other region (see the replication module).
    pub replication: Arc<dyn Queue>,
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
}
