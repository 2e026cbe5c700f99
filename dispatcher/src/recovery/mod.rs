//! Disaster recovery: failover to the other region, failback, status, and (in submodules) the
//! shipper, replay, backups and the drill.
//!
//! The runbook lives in the README ("Disaster recovery"); the invariants in ARCHITECTURE.md.

pub mod backup;
pub mod drill;
pub mod replay;
pub mod ship;

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use shared::backend::Backends;
use shared::config::ReplicationMode;
use shared::domain::JobStatus;
use shared::region::{Epoch, RegionName, Topology, TopologyError, write_epoch};
use shared::replication::{Resynced, resync, unshipped};

use replay::{ReplayReport, Selection, replay_jobs};

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("the {0} region is already active (epoch {1})")]
    AlreadyActive(RegionName, u64),
    #[error("the {0} region is unreachable")]
    Unreachable(RegionName),
    #[error("no second region is configured (replication.mode = \"off\" or no [secondary])")]
    NoSecondRegion,
    #[error("{0}")]
    Failed(String),
}

fn failed(err: impl std::fmt::Display) -> RecoveryError {
    RecoveryError::Failed(err.to_string())
}

/// Changes made in the old region that had not reached the new one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rpo {
    /// Unshipped changes (job transitions, documents, results); `None` when unknown.
    pub changes: Option<u64>,
    /// Age of the oldest of them, seconds, when known.
    pub oldest_secs: Option<f64>,
    /// Where the figures come from.
    pub source: String,
}

/// What `surge failover` did.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverReport {
    pub from: RegionName,
    pub to: RegionName,
    pub epoch: u64,
    /// Whether the old region got the new epoch (it was reachable) and so is fenced for sure.
    pub old_region_fenced: bool,
    pub rpo: Rpo,
    pub replay: ReplayReport,
    /// From the command's start to the new region taking jobs (epoch written, queues rebuilt).
    pub promoted_after_secs: f64,
}

/// Makes `to` the active region: fences the old one (when reachable), writes the new epoch
/// (mirroring stops until failback), and replays every unfinished job into `to`'s queues.
///
/// `topology` is what [`Topology::open_any`] finds: the active region may be unreachable.
pub async fn failover(
    topology: &Topology,
    to: RegionName,
    reason: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<FailoverReport, RecoveryError> {
    let started = Instant::now();
    if !topology.has_second_region() {
        return Err(RecoveryError::NoSecondRegion);
    }
    let from = topology.active();
    if from == to {
        return Err(RecoveryError::AlreadyActive(to, topology.epoch.epoch));
    }
    let target = topology.region(to).ok_or(RecoveryError::Unreachable(to))?.clone();
    let rpo = rpo(topology, from, &target).await;
    let epoch = topology.epoch.next(to, false, reason);
    write_epoch(target.blobs.as_ref(), &epoch).await.map_err(failed)?;
    let old_region_fenced = match topology.region(from) {
        Some(old) => write_epoch(old.blobs.as_ref(), &epoch).await.is_ok(),
        None => false,
    };
    tracing::warn!(epoch = epoch.epoch, %from, %to, old_region_fenced, "failover: new active region");
    let replay = replay_jobs(&target, &Selection::unfinished(), false, progress).await.map_err(failed)?;
    Ok(FailoverReport {
        from,
        to,
        epoch: epoch.epoch,
        old_region_fenced,
        rpo,
        replay,
        promoted_after_secs: started.elapsed().as_secs_f64(),
    })
}

async fn rpo(topology: &Topology, from: RegionName, target: &Backends) -> Rpo {
    if topology.effective_mode() == ReplicationMode::Off {
        return Rpo { changes: None, oldest_secs: None, source: "mirroring was off in this epoch".to_owned() };
    }
    if let Some(old) = topology.region(from)
        && let Ok(pending) = unshipped(old).await
    {
        let source = format!("{from} region's outbox");
        // Unshipped changes still get shipped by `surge failback` (resync), so they are late,
        // not lost, as long as the old region comes back.
        return Rpo { changes: Some(pending), oldest_secs: None, source };
    }
    match ship::read_status(target.blobs.as_ref()).await {
        Some(status) => {
            let silent = (Utc::now() - status.reported_at).num_milliseconds().max(0) as f64 / 1000.0;
            let sync_and_clean = status.mode == ReplicationMode::Sync && status.unshipped == 0;
            Rpo {
                changes: Some(status.unshipped),
                oldest_secs: (!sync_and_clean).then_some(status.oldest_unshipped_secs.max(status.lag_secs) + silent),
                source: format!("last shipper report, {silent:.1} s before the failover"),
            }
        }
        None => Rpo { changes: None, oldest_secs: None, source: "no shipper report reached this region".into() },
    }
}

/// What `surge failback` did.
#[derive(Debug, Clone, Serialize)]
pub struct FailbackReport {
    pub epoch: u64,
    /// Copied while the secondary was still active, then after it was fenced.
    pub resync: Resynced,
    pub catch_up: Resynced,
    pub replay: ReplayReport,
    pub seconds: f64,
}

/// Brings the primary back: copies everything that changed in the secondary to the primary,
/// makes the primary active again with mirroring on (the secondary's processes see the new
/// epoch and stop), copies what changed meanwhile, and replays the unfinished jobs.
///
/// `settle`: how long the secondary's processes take to see a new epoch and stop (twice
/// `replication.check_every_ms` and a margin).
pub async fn failback(
    topology: &Topology,
    settle: Duration,
    reason: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<FailbackReport, RecoveryError> {
    let started = Instant::now();
    if topology.active() == RegionName::Primary {
        return Err(RecoveryError::AlreadyActive(RegionName::Primary, topology.epoch.epoch));
    }
    let primary = topology.region(RegionName::Primary).ok_or(RecoveryError::Unreachable(RegionName::Primary))?;
    let secondary = topology.region(RegionName::Secondary).ok_or(RecoveryError::Unreachable(RegionName::Secondary))?;
    let resynced = resync(secondary, primary, progress).await.map_err(failed)?;
    let epoch: Epoch = topology.epoch.next(RegionName::Primary, true, reason);
    write_epoch(primary.blobs.as_ref(), &epoch).await.map_err(failed)?;
    write_epoch(secondary.blobs.as_ref(), &epoch).await.map_err(failed)?;
    // Let the secondary's processes see the epoch and stop before copying what they did
    // meanwhile.
    tokio::time::sleep(settle).await;
    let catch_up = resync(secondary, primary, progress).await.map_err(failed)?;
    // Replayed through the mirrored ports of the restored topology, so that what the replay
    // changes (adopted results above all) reaches the secondary too.
    let mirrored = topology.under(epoch.clone()).backends();
    let replay = replay_jobs(&mirrored, &Selection::unfinished(), false, progress).await.map_err(failed)?;
    Ok(FailbackReport {
        epoch: epoch.epoch,
        resync: resynced,
        catch_up,
        replay,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `surge replicate`: copies everything the active region holds and the other lacks.
pub async fn replicate(topology: &Topology, progress: &(dyn Fn(u64) + Sync)) -> Result<Resynced, RecoveryError> {
    let active = topology.active();
    let local = topology.region(active).ok_or(RecoveryError::Unreachable(active))?;
    let peer = topology.region(active.other()).ok_or(RecoveryError::Unreachable(active.other()))?;
    resync(local, peer, progress).await.map_err(failed)
}

/// One region as `surge status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RegionStatus {
    pub name: RegionName,
    pub reachable: bool,
    pub active: bool,
}

/// What `surge status` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub epoch: Epoch,
    pub replication_mode: ReplicationMode,
    pub regions: Vec<RegionStatus>,
    /// Changes in the active region's outbox, not yet in the other region.
    pub unshipped_changes: Option<u64>,
    /// From the active shipper's last report into the other region.
    pub replication_lag_secs: Option<f64>,
    /// Age of the oldest change not yet shipped, at that report.
    pub oldest_unshipped_secs: Option<f64>,
    pub queues: Vec<(String, u64)>,
    pub jobs: Vec<(JobStatus, u64)>,
}

/// The status of regions already open (the CLI opens them with [`Topology::open_any`]; the
/// running server passes the ones it holds). `has_secondary`: whether a second region is
/// configured at all.
pub async fn status(topology: &Topology, has_secondary: bool) -> Status {
    let active = topology.active();
    let regions = [RegionName::Primary, RegionName::Secondary]
        .into_iter()
        .filter(|name| *name == RegionName::Primary || has_secondary)
        .map(|name| RegionStatus { name, reachable: topology.region(name).is_some(), active: name == active })
        .collect();
    let (mut unshipped_changes, mut replication_lag_secs, mut queues, mut jobs) = (None, None, Vec::new(), Vec::new());
    let mut oldest_unshipped_secs = None;
    if let Some(local) = topology.region(active) {
        unshipped_changes = unshipped(local).await.ok();
        for queue in local.queues() {
            if let Ok(depth) = queue.depth().await {
                queues.push((queue.name().to_owned(), depth.total()));
            }
        }
        jobs = local.jobs.count_by_status().await.unwrap_or_default();
    }
    if let Some(peer) = topology.region(active.other()) {
        let report = ship::read_status(peer.blobs.as_ref()).await;
        replication_lag_secs = report.as_ref().map(|s| s.lag_secs);
        oldest_unshipped_secs = report.map(|s| s.oldest_unshipped_secs);
    }
    Status {
        replication_mode: topology.effective_mode(),
        epoch: topology.epoch.clone(),
        regions,
        unshipped_changes,
        replication_lag_secs,
        oldest_unshipped_secs,
        queues,
        jobs,
    }
}
