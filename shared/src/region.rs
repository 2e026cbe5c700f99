//! The two regions and the epoch that names the active one; fencing of the other.
//!
//! Each region's blob store holds `region/epoch.json`: a number that only grows, the region it
//! makes active, and whether writes are mirrored to the other region. The highest epoch found
//! in any reachable region wins. A failover writes a higher epoch into the new active region
//! (and into the old one when it is reachable); every dispatcher and worker re-reads the epochs
//! every `replication.check_every_ms` and stops as soon as it sees a newer one, so a region that
//! comes back cannot process or write alongside the new active one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::backend::OpenError;
use crate::config::{Config, RegionConfig, ReplicationMode};
use crate::ports::Fault;
use crate::ports::{Backends, BlobError, BlobStore};
use crate::replication::{Mirror, mirrored};

impl Backends {
    /// Opens the active region as `config` and the region epoch say, mirrored to the other
    /// region (see [`Topology`]). Processes that must stop when demoted use [`Topology`].
    pub async fn open(config: &Config) -> Result<Backends, TopologyError> {
        Ok(Topology::open(config).await?.backends())
    }
}

/// Where each region keeps its copy of the epoch.
pub const EPOCH_KEY: &str = crate::keys::EPOCH;

/// One of the two configured regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionName {
    Primary,
    Secondary,
}

impl RegionName {
    pub fn other(self) -> RegionName {
        match self {
            RegionName::Primary => RegionName::Secondary,
            RegionName::Secondary => RegionName::Primary,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegionName::Primary => "primary",
            RegionName::Secondary => "secondary",
        }
    }
}

impl std::str::FromStr for RegionName {
    type Err = String;

    fn from_str(s: &str) -> Result<RegionName, String> {
        match s {
            "primary" => Ok(RegionName::Primary),
            "secondary" => Ok(RegionName::Secondary),
            other => Err(format!("unknown region {other:?}: primary or secondary")),
        }
    }
}

impl fmt::Display for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which region is active since when; the highest `epoch` wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    pub epoch: u64,
    pub active: RegionName,
    /// Whether the active region mirrors its writes to the other one (off after a failover
    /// until `surge failback` resynchronises).
    pub mirroring: bool,
    pub changed_at: DateTime<Utc>,
    pub reason: String,
}

impl Epoch {
    fn first() -> Epoch {
        Epoch {
            epoch: 1,
            active: RegionName::Primary,
            mirroring: true,
            changed_at: Utc::now(),
            reason: "first start".to_owned(),
        }
    }

    /// The next epoch, making `active` the active region.
    pub fn next(&self, active: RegionName, mirroring: bool, reason: &str) -> Epoch {
        Epoch { epoch: self.epoch + 1, active, mirroring, changed_at: Utc::now(), reason: reason.to_owned() }
    }
}

pub async fn read_epoch(blobs: &dyn BlobStore) -> Result<Option<Epoch>, BlobError> {
    let Some(bytes) = blobs.get(EPOCH_KEY).await? else { return Ok(None) };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| BlobError::Unavailable(Fault::caused_by(format!("corrupt {EPOCH_KEY}"), e)))
}

pub async fn write_epoch(blobs: &dyn BlobStore, epoch: &Epoch) -> Result<(), BlobError> {
    let bytes = serde_json::to_vec_pretty(epoch).map_err(|e| BlobError::Unavailable(Fault::from_error(e)))?;
    blobs.put(EPOCH_KEY, Bytes::from(bytes)).await.map(drop)
}

/// Both regions as far as they are reachable, and the epoch in force.
#[derive(Clone)]
pub struct Topology {
    /// How the active region mirrors when the epoch allows it: `replication.mode`, or off when
    /// no second region is configured.
    pub mode: ReplicationMode,
    pub epoch: Epoch,
    /// Each region's own ports (not mirrored); `None` when unreachable or not configured.
    pub primary: Option<Backends>,
    pub secondary: Option<Backends>,
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("the active region ({0}) is unreachable; `surge failover --to {other}` makes the other one active", other = .0.other())]
    ActiveUnreachable(RegionName),
    #[error("no region is reachable")]
    NoRegion,
    #[error("cannot write the region epoch: {0}")]
    Epoch(BlobError),
}

impl Topology {
    /// Opens every reachable region and finds the epoch in force. On the very first start (no
    /// epoch anywhere) it creates the embedded regions and writes epoch 1 (primary active,
    /// mirroring on) into both.
    pub async fn open(config: &Config) -> Result<Topology, TopologyError> {
        let topology = Topology::open_any(config).await?;
        if topology.region(topology.epoch.active).is_none() {
            return Err(TopologyError::ActiveUnreachable(topology.epoch.active));
        }
        Ok(topology)
    }

    /// Like [`Topology::open`], but also when the active region is unreachable (for failover).
    pub async fn open_any(config: &Config) -> Result<Topology, TopologyError> {
        let primary_config = config.primary_region();
        let secondary_config = config.secondary_region();
        let mode = if secondary_config.is_some() { config.replication.mode } else { ReplicationMode::Off };
        let max_attempts = config.worker.max_attempts;
        let mut primary = open_if_reachable(&primary_config, max_attempts).await;
        let mut secondary = match &secondary_config {
            Some(region) => open_if_reachable(region, max_attempts).await,
            None => None,
        };
        let (mut epochs, mut found) = (Vec::new(), false);
        for (name, region) in [(RegionName::Primary, &primary), (RegionName::Secondary, &secondary)] {
            if let Some(backends) = region
                && let Ok(epoch) = read_epoch(backends.blobs.as_ref()).await
            {
                found |= epoch.is_some();
                epochs.extend(epoch.map(|e| (name, e)));
            }
        }
        if !found {
            // First start: create what is missing, and agree on epoch 1 in both regions.
            if primary.is_none() {
                primary = Some(Backends::open_region(&primary_config, max_attempts).await?);
            }
            if let (None, Some(region)) = (&secondary, &secondary_config) {
                secondary = Some(Backends::open_region(region, max_attempts).await?);
            }
            let epoch = Epoch::first();
            for backends in [&primary, &secondary].into_iter().flatten() {
                write_epoch(backends.blobs.as_ref(), &epoch).await.map_err(TopologyError::Epoch)?;
            }
            return Ok(Topology { mode, epoch, primary, secondary });
        }
        let epoch = epochs.into_iter().map(|(_, e)| e).max_by_key(|e| e.epoch).ok_or(TopologyError::NoRegion)?;
        Ok(Topology { mode, epoch, primary, secondary })
    }

    /// A region's own ports, if reachable.
    pub fn region(&self, name: RegionName) -> Option<&Backends> {
        match name {
            RegionName::Primary => self.primary.as_ref(),
            RegionName::Secondary => self.secondary.as_ref(),
        }
    }

    pub fn active(&self) -> RegionName {
        self.epoch.active
    }

    /// One region and nothing mirrored, for code that runs on a single store (tests, tools).
    pub fn single(backends: Backends) -> Topology {
        Topology { mode: ReplicationMode::Off, epoch: Epoch::first(), primary: Some(backends), secondary: None }
    }

    /// Whether a second region is configured at all (reachable or not).
    pub fn has_second_region(&self) -> bool {
        self.mode != ReplicationMode::Off
    }

    /// The same regions under another epoch: what a failover or failback that wrote `epoch`
    /// continues with, without opening the regions again.
    pub fn under(&self, epoch: Epoch) -> Topology {
        Topology { epoch, ..self.clone() }
    }

    pub fn effective_mode(&self) -> ReplicationMode {
        if self.epoch.mirroring { self.mode } else { ReplicationMode::Off }
    }

    /// The ports everything else uses: the active region's, with documents, job records and
    /// tenants mirrored to the other region as the epoch and `replication.mode` say.
    pub fn backends(&self) -> Backends {
        let active = self.region(self.active()).expect("checked in open").clone();
        let mode = self.effective_mode();
        if mode == ReplicationMode::Off {
            return active;
        }
        let peer = self.region(self.active().other()).cloned();
        mirrored(active, Arc::new(Mirror::new(mode, peer)))
    }

    /// A token cancelled as soon as any reachable region holds a newer epoch than the one this
    /// topology was opened with: the caller must stop processing.
    pub fn fence(&self, check_every: Duration, stop: &CancellationToken) -> CancellationToken {
        let fenced = CancellationToken::new();
        let (topology, token, stop) = (self.clone(), fenced.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(check_every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Some(newer) = topology.newer_epoch().await {
                    tracing::error!(
                        epoch = newer.epoch,
                        active = %newer.active,
                        reason = %newer.reason,
                        "a newer region epoch is in force; this region is demoted and stops processing"
                    );
                    metrics::counter!(crate::series::REGION_FENCED_TOTAL).increment(1);
                    token.cancel();
                    return;
                }
            }
        });
        fenced
    }

    /// The highest epoch in any reachable region, if it is newer than ours.
    pub async fn newer_epoch(&self) -> Option<Epoch> {
        let mut newest: Option<Epoch> = None;
        for backends in [&self.primary, &self.secondary].into_iter().flatten() {
            if let Ok(Some(epoch)) = read_epoch(backends.blobs.as_ref()).await
                && epoch.epoch > newest.as_ref().map_or(self.epoch.epoch, |e| e.epoch)
            {
                newest = Some(epoch);
            }
        }
        newest
    }
}

/// Opens a region that exists: an embedded data directory that is there, or an AWS region
/// whose bucket answers. `None` when it is not reachable.
async fn open_if_reachable(region: &RegionConfig, max_attempts: u32) -> Option<Backends> {
    if let RegionConfig::Embedded { data_dir } = region
        && !embedded_region_exists(data_dir)
    {
        return None;
    }
    match Backends::open_region(region, max_attempts).await {
        Ok(backends) => Some(backends),
        Err(err) => {
            tracing::warn!(error = %err, "region unreachable");
            None
        }
    }
}

fn embedded_region_exists(data_dir: &Path) -> bool {
    data_dir.join("state.db").exists()
}
