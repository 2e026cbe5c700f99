//! The worker's heartbeat: what it reports to the worker registry (the jobs it holds, the cost
//! of those it finished), every [`HEARTBEAT_INTERVAL`] and soon after each claim, and the drain
//! the registry may ask for in return.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use shared::domain::{Job, JobId, Lane};
use shared::ports::{CompletedJob, InFlightJob, WorkerBeat};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use super::Context;
use super::outcome::Outcome;

/// How often a worker reports; the dispatcher writes a worker off after a few missed beats.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Least time between two beats, however many jobs are claimed: bounds the registry's load.
const MIN_BEAT_SPACING: Duration = Duration::from_millis(200);
/// How long a stopping worker waits for a beat in flight before it deregisters anyway.
const LAST_BEAT_WAIT: Duration = Duration::from_secs(5);
/// How many finished jobs one beat reports at most; the scaler needs a sample, not a log.
const MAX_COMPLETED_PER_BEAT: usize = 256;

/// What the next beat reports, gathered by the job tasks.
#[derive(Default)]
pub(super) struct Report {
    in_flight: HashMap<JobId, InFlightJob>,
    completed: Vec<CompletedJob>,
    completed_total: u64,
    failed_total: u64,
}

impl Report {
    /// Counts a job this worker has just claimed as held.
    pub(super) fn claimed(&mut self, job: InFlightJob) {
        self.in_flight.insert(job.job_id, job);
    }

    /// Records the end of an attempt on `job` that started at `started`: no longer held, and,
    /// when the attempt reached a verdict, counted and sampled for the scaler.
    pub(super) fn finished(&mut self, job: &Job, lane: Lane, outcome: &Outcome, started: Instant) {
        self.in_flight.remove(&job.id);
        let verdict = matches!(outcome, Outcome::Succeeded | Outcome::Failed(_));
        if verdict {
            self.completed_total += 1;
        }
        if matches!(outcome, Outcome::Failed(_)) {
            self.failed_total += 1;
        }
        if verdict && self.completed.len() < MAX_COMPLETED_PER_BEAT {
            let seconds = started.elapsed().as_secs_f64();
            self.completed.push(CompletedJob { lane, seconds, size: job.size, pages: job.page_estimate });
        }
    }
}

/// The heartbeat task of a running worker.
pub(super) struct Heartbeats {
    /// Ends the task between two beats, never in the middle of one.
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Heartbeats {
    /// Starts beating for worker `worker_id`, started at `started_at`. The beats report
    /// `draining` once it is cancelled, and cancel `shutdown` when the registry asks for a drain.
    pub(super) fn start(
        context: Arc<Context>,
        worker_id: Uuid,
        started_at: chrono::DateTime<Utc>,
        shutdown: CancellationToken,
        draining: CancellationToken,
    ) -> Heartbeats {
        let stop = CancellationToken::new();
        let tokens = BeatTokens { shutdown, draining, stop: stop.clone() };
        let task = tokio::spawn(heartbeats(context, worker_id, started_at, tokens));
        Heartbeats { stop, task }
    }

    /// Stops beating, after the beat in flight (if any) is written, or after [`LAST_BEAT_WAIT`]
    /// when it takes longer.
    pub(super) async fn stop(self) {
        let Heartbeats { stop, mut task } = self;
        stop.cancel();
        if tokio::time::timeout(LAST_BEAT_WAIT, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// What the heartbeat loop is told and tells: `shutdown` it cancels when the registry asks for
/// a drain, `draining` it reports, `stop` ends it (between two beats, never in the middle of one).
struct BeatTokens {
    shutdown: CancellationToken,
    draining: CancellationToken,
    stop: CancellationToken,
}

/// Reports to the worker registry every [`HEARTBEAT_INTERVAL`] until `tokens.stop`, and starts
/// the drain (cancels `tokens.shutdown`) when the registry asks for it.
async fn heartbeats(context: Arc<Context>, worker_id: Uuid, started_at: chrono::DateTime<Utc>, tokens: BeatTokens) {
    let BeatTokens { shutdown, draining, stop } = tokens;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let mut last_beat = tokio::time::Instant::now() - HEARTBEAT_INTERVAL;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(last_beat + HEARTBEAT_INTERVAL) => {}
            () = context.beat_soon.notified() => {
                tokio::time::sleep_until(last_beat + MIN_BEAT_SPACING).await;
            }
        }
        last_beat = tokio::time::Instant::now();
        let (in_flight, completed, completed_total, failed_total) = {
            let mut report = context.report();
            let completed = std::mem::take(&mut report.completed);
            (report.in_flight.values().cloned().collect(), completed, report.completed_total, report.failed_total)
        };
        let beat = WorkerBeat {
            worker_id,
            lanes: context.options.lanes.clone(),
            pid: std::process::id(),
            host: host.clone(),
            started_at,
            last_seen: Utc::now(),
            in_flight,
            draining: draining.is_cancelled(),
            completed,
            completed_total,
            failed_total,
        };
        match context.backends.workers.beat(&beat).await {
            Ok(orders) if orders.drain && !shutdown.is_cancelled() => {
                info!("drain requested by the dispatcher");
                shutdown.cancel();
            }
            Ok(_) => {}
            Err(err) => warn!(error = %err, "heartbeat failed"),
        }
    }
}
