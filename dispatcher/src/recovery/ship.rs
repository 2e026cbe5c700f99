//! The shipper: copies the changes announced in the active region's outbox to the other
//! region, exports the replication lag, and leaves a status record in the other region so a
//! failover can tell what had not arrived (the RPO) even when the active region is gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::backend::Backends;
use shared::config::ReplicationMode;
use shared::ports::BlobStore;
use shared::region::Topology;
use shared::replication::{ship_once, unshipped};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where the shipper of the active region reports into the other region.
pub(crate) const STATUS_KEY: &str = shared::keys::REPLICATION_STATUS;

/// What the other region last heard from the active one's shipper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipperStatus {
    pub mode: ReplicationMode,
    pub epoch: u64,
    pub reported_at: DateTime<Utc>,
    /// Changes in the outbox at that time.
    pub unshipped: u64,
    /// Age of the oldest change shipped in the last round, seconds.
    pub lag_secs: f64,
    /// Age of the oldest change still in the outbox, seconds (0 when it is empty): every
    /// change in it was made after the last time the shipper saw it empty.
    #[serde(default)]
    pub oldest_unshipped_secs: f64,
}

pub async fn read_status(blobs: &dyn BlobStore) -> Option<ShipperStatus> {
    let bytes = blobs.get(STATUS_KEY).await.ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// Shipping loops per process: each takes a batch of notices at a time, so several keep up with
/// a sustained load where one would fall behind (copies are idempotent; order does not matter).
pub const SHIPPERS: usize = 4;

/// Ships until `stop`; does nothing when the epoch does not mirror or the peer is unreachable.
pub async fn run(topology: Topology, report_every: Duration, stop: CancellationToken) {
    let active = topology.active();
    let (Some(local), Some(peer)) = (topology.region(active).cloned(), topology.region(active.other()).cloned()) else {
        return;
    };
    if topology.effective_mode() == ReplicationMode::Off {
        return;
    }
    // The oldest change shipped in the latest round of any loop (f64 bits).
    let lag_bits = Arc::new(AtomicU64::new(0f64.to_bits()));
    let loops = TaskTracker::new();
    for _ in 0..SHIPPERS {
        let (local, peer, stop, lag_bits) = (local.clone(), peer.clone(), stop.clone(), Arc::clone(&lag_bits));
        loops.spawn(async move {
            while !stop.is_cancelled() {
                let round = tokio::select! {
                    _ = stop.cancelled() => return,
                    round = ship_once(&local, &peer, Duration::from_secs(1)) => round,
                };
                match round {
                    Ok(shipped) => {
                        let lag = shipped.lags_secs.iter().copied().fold(0.0, f64::max);
                        lag_bits.store(lag.to_bits(), Ordering::Relaxed);
                        metrics::gauge!(shared::series::REPLICATION_LAG_SECONDS).set(lag);
                        metrics::counter!(shared::series::REPLICATION_SHIPPED_TOTAL)
                            .increment(shipped.lags_secs.len() as u64);
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "replication outbox unreadable");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
    loops.close();
    let lag = || f64::from_bits(lag_bits.load(Ordering::Relaxed));
    let mut last_empty = Utc::now();
    loop {
        report(&topology, &local, &peer, lag(), &mut last_empty).await;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(report_every) => {}
        }
    }
    loops.wait().await;
}

/// Exports the outbox depth and leaves a [`ShipperStatus`] in the other region.
async fn report(topology: &Topology, local: &Backends, peer: &Backends, lag_secs: f64, last_empty: &mut DateTime<Utc>) {
    let pending = unshipped(local).await.unwrap_or(0);
    let now = Utc::now();
    if pending == 0 {
        *last_empty = now;
    }
    let oldest_unshipped_secs = (now - *last_empty).num_milliseconds().max(0) as f64 / 1000.0;
    metrics::gauge!(shared::series::REPLICATION_UNSHIPPED_CHANGES).set(pending as f64);
    metrics::gauge!(shared::series::REPLICATION_OLDEST_UNSHIPPED_SECONDS).set(oldest_unshipped_secs);
    let status = ShipperStatus {
        mode: topology.effective_mode(),
        epoch: topology.epoch.epoch,
        reported_at: Utc::now(),
        unshipped: pending,
        lag_secs,
        oldest_unshipped_secs,
    };
    let bytes = Bytes::from(serde_json::to_vec(&status).expect("status serialises"));
    if let Err(err) = peer.blobs.put(STATUS_KEY, bytes).await {
        tracing::warn!(error = %err, "cannot report replication status to the other region");
    }
}
