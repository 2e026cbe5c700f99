//! Worker lifecycle as the dispatcher sees it: who is alive, busy or idle (from heartbeats), and
//! what to do when a worker falls silent: hand its jobs back at once instead of waiting for their
//! visibility timeout.
//!
//! The lost worker cannot do harm if it comes back: its jobs were moved back to `queued` (or
//! claimed by someone else) under a new lease, so every transition it attempts is refused.

use std::time::Duration;

use chrono::Utc;
use shared::backend::Backends;
use shared::domain::{Job, JobError};
use shared::ports::{Receipt, WorkerBeat};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The live workers' latest beats, split by what the scaler cares about.
#[derive(Debug, Default, Clone)]
pub(crate) struct Census {
    pub alive: Vec<WorkerBeat>,
    pub lost: Vec<WorkerBeat>,
}

/// Splits the registry's beats into alive and lost (silent for longer than `lost_after`).
pub(crate) fn census(beats: Vec<WorkerBeat>, lost_after: Duration, now: chrono::DateTime<Utc>) -> Census {
    let lost_after = chrono::Duration::from_std(lost_after).unwrap_or(chrono::Duration::seconds(5));
    let (alive, lost) = beats.into_iter().partition(|beat| now - beat.last_seen <= lost_after);
    Census { alive, lost }
}

/// Hands a lost worker's jobs back (claim released, message visible now) and forgets it.
pub(crate) async fn release_lost_worker(backends: &Backends, beat: &WorkerBeat) {
    warn!(worker_id = %beat.worker_id, pid = beat.pid, jobs = beat.in_flight.len(), "worker lost; handing its jobs back");
    for held in &beat.in_flight {
        let token = held.lease_token;
        let error = JobError {
            code: shared::domain::ErrorCode::WorkerLost,
            message: "the worker processing this job stopped responding".into(),
        };
        let released = backends
            .jobs
            .update(held.job_id, Box::new(move |job: &Job| job.retry(token, error.clone(), Utc::now())))
            .await;
        if let Err(err) = released {
            // Finished in the meantime, or already claimed again: nothing to hand back.
            info!(job_id = %held.job_id, error = %err, "lost worker's job needs no release");
            continue;
        }
        let receipt = Receipt(held.receipt.clone());
        if let Err(err) = backends.lane(held.lane).extend_visibility(&[receipt], Duration::ZERO).await {
            warn!(job_id = %held.job_id, error = %err, "could not make the job visible; it returns after its timeout");
        }
    }
    metrics::counter!(shared::series::WORKERS_LOST_TOTAL).increment(1);
    if let Err(err) = backends.workers.remove(beat.worker_id).await {
        warn!(worker_id = %beat.worker_id, error = %err, "could not forget a lost worker");
    }
}

/// The live workers' latest beats, as [`watch`] last saw them.
pub(crate) type AliveWorkers = tokio::sync::watch::Receiver<Vec<WorkerBeat>>;

/// Every second: looks at the heartbeats, releases workers that fell silent and publishes the
/// live ones to `alive` (the autoscaler reads them there rather than listing the registry again).
pub(crate) async fn watch(
    backends: Backends,
    lost_after: Duration,
    alive: tokio::sync::watch::Sender<Vec<WorkerBeat>>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let beats = match backends.workers.list().await {
            Ok(beats) => beats,
            Err(err) => {
                warn!(error = %err, "worker registry unavailable");
                continue;
            }
        };
        let census = census(beats, lost_after, Utc::now());
        for beat in &census.lost {
            release_lost_worker(&backends, beat).await;
        }
        let busy = census.alive.iter().filter(|beat| !beat.in_flight.is_empty()).count();
        metrics::gauge!(shared::series::WORKERS_BEATING).set(census.alive.len() as f64);
        metrics::gauge!(shared::series::WORKERS_BUSY).set(busy as f64);
        alive.send_replace(census.alive);
    }
}

#[cfg(test)]
mod tests {
    use shared::domain::Lane;
    use uuid::Uuid;

    use super::*;

    fn beat(seconds_ago: i64) -> WorkerBeat {
        WorkerBeat {
            worker_id: Uuid::new_v4(),
            lanes: vec![Lane::Small],
            pid: 1,
            host: String::new(),
            started_at: Utc::now(),
            last_seen: Utc::now() - chrono::Duration::seconds(seconds_ago),
            in_flight: Vec::new(),
            draining: false,
            completed: Vec::new(),
            completed_total: 0,
            failed_total: 0,
        }
    }

    #[test]
    fn silent_workers_are_lost() {
        let census = census(vec![beat(0), beat(2), beat(10)], Duration::from_secs(5), Utc::now());
        assert_eq!((census.alive.len(), census.lost.len()), (2, 1));
    }
}
