//! The worker loop: receive jobs from the lanes, claim them with a lease, run the CPU work on a
//! bounded pool, store the result, finish the job, ack.
//!
//! Delivery is at least once; effects are idempotent. A duplicate delivery of a finished job is
//! acked without work. A job's result is stored under a key derived from its id, so a job that
//! runs twice still has one result, and only the holder of the current lease can mark it done.
//!
//! This module holds the entry points and the receive loop with its drain; each step of a job
//! has a file of its own: `attempt` (claim, retry and bury), `lease` (keeping a claim alive),
//! `work` (what a job does), `charts` and `cpu_pool` (its chart and its CPU), `outcome` (how an
//! attempt ends and what is written for it) and `heartbeat` (what the worker reports to the
//! registry).

mod attempt;
mod charts;
mod cpu_pool;
mod heartbeat;
mod lease;
mod outcome;
#[cfg(test)]
mod tests;
mod work;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use shared::backend::Backends;
use shared::chart::Chart;
use shared::config::{Config, WorkerConfig};
use shared::domain::Lane;
use shared::ports::ReceivedMessage;
use shared::region::{Topology, TopologyError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use uuid::Uuid;

use self::heartbeat::{Heartbeats, Report};
use crate::protection::{ProtectionSettings, TaskProtection};

/// What this worker process does, beyond the shared config.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Lanes to serve, in priority order.
    pub lanes: Vec<Lane>,
    /// Ledger accounts for the suggested journal entries.
    pub chart: Chart,
    /// Extra time spent on every job, for demonstrating and testing crash recovery.
    pub debug_delay: Duration,
    /// ECS task scale-in protection while jobs are held (`None`: not an ECS task, or off).
    pub protection: Option<ProtectionSettings>,
}

/// Why the worker stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("worker has no lane to serve")]
    NoLanes,
    /// The deployment's regions could not be opened.
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

/// Everything a job task needs, shared by all of them.
struct Context {
    backends: Backends,
    config: WorkerConfig,
    options: WorkerOptions,
    /// Bounds CPU-heavy extraction to `cpu_threads` at once.
    cpu: Arc<Semaphore>,
    /// What the heartbeat reports: the jobs held now and the cost of those finished since the
    /// last beat. A std mutex: held only to insert, remove or swap, never across an await.
    report: Mutex<Report>,
    /// Asks for a heartbeat soon, so the registry learns of a claimed job without waiting for
    /// the next tick: a worker that dies right after a claim then still has its job handed back.
    beat_soon: Notify,
}

impl Context {
    fn new(backends: Backends, config: WorkerConfig, options: WorkerOptions) -> Context {
        Context {
            cpu: Arc::new(Semaphore::new(config.cpu_threads)),
            backends,
            config,
            options,
            report: Mutex::default(),
            beat_soon: Notify::new(),
        }
    }

    fn report(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs the worker on the active region of the deployment `config` describes, until `shutdown`
/// is cancelled or the region is fenced (demoted: another region holds a newer epoch), then
/// drains as [`run`] does.
pub async fn run_in_active_region(
    config: &Config,
    options: WorkerOptions,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let topology = Topology::open(config).await?;
    let backends = topology.backends();
    // A demoted region's worker stops taking jobs as soon as it sees the newer epoch.
    let fenced = topology.fence(Duration::from_millis(config.replication.check_every_ms), &shutdown);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        fenced.cancelled().await;
        stop.cancel();
    });
    run(backends, config.worker.clone(), options, shutdown).await
}

/// Runs the worker until `shutdown` is cancelled, then drains: stops receiving, lets in-flight
/// jobs finish for up to `drain_timeout_secs`, hands back the rest and returns.
pub async fn run(
    backends: Backends,
    config: WorkerConfig,
    options: WorkerOptions,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    if options.lanes.is_empty() {
        return Err(WorkerError::NoLanes);
    }
    let context = Arc::new(Context::new(backends, config, options));
    let worker_id = Uuid::new_v4();
    let draining = CancellationToken::new();
    let beats = Heartbeats::start(Arc::clone(&context), worker_id, Utc::now(), shutdown.clone(), draining.clone());
    // Jobs held (received and not yet finished), for the task's scale-in protection.
    let (held, held_changes) = watch::channel(0usize);
    let protection = protect_while_busy(&context, held_changes, &shutdown);
    let tracker = TaskTracker::new();
    // Cancelled when the drain timeout passes: in-flight jobs then hand their message back.
    let hand_back = CancellationToken::new();
    info!(lanes = ?context.options.lanes, concurrency = context.config.concurrency, "worker started");

    receive_until_shutdown(&context, &shutdown, &tracker, &hand_back, &Arc::new(held)).await;

    draining.cancel();
    drain(&context, &tracker, &hand_back).await;
    // The last beat must be written before the worker deregisters: a beat still on its way
    // would register it again, as a live worker that no longer exists.
    beats.stop().await;
    if let Some(protection) = protection {
        protection.abort();
    }
    if let Err(err) = context.backends.workers.remove(worker_id).await {
        warn!(error = %err, "could not deregister; the dispatcher will notice the silence");
    }
    info!("worker stopped");
    Ok(())
}

/// Starts keeping the ECS task protected while `held` is above zero, when the worker is set up
/// for it.
fn protect_while_busy(
    context: &Context,
    held: watch::Receiver<usize>,
    shutdown: &CancellationToken,
) -> Option<JoinHandle<()>> {
    context.options.protection.clone().map(|settings| {
        info!(agent = %settings.agent_uri, "ECS task scale-in protection on while jobs are held");
        tokio::spawn(TaskProtection::new(settings).keep(held, shutdown.child_token()))
    })
}

/// Receives messages while there are free job slots and spawns a task on `tracker` for each,
/// until `shutdown` is cancelled.
async fn receive_until_shutdown(
    context: &Arc<Context>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
    hand_back: &CancellationToken,
    held: &Arc<watch::Sender<usize>>,
) {
    let slots = Arc::new(Semaphore::new(context.config.concurrency));
    while !shutdown.is_cancelled() {
        let first = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let mut permits = vec![first];
        while permits.len() < context.config.concurrency {
            match Arc::clone(&slots).try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        // Not raced against shutdown: a receive dropped half-way would hide its messages until
        // their visibility timeout. The long poll is short instead.
        let received = receive(context, permits.len()).await;
        for ((lane, message), permit) in received.into_iter().zip(permits) {
            let context = Arc::clone(context);
            let hand_back = hand_back.clone();
            let held = Held::new(Arc::clone(held));
            tracker.spawn(async move {
                attempt::handle(&context, lane, message, hand_back).await;
                drop::<(Held, OwnedSemaphorePermit)>((held, permit));
            });
        }
    }
}

/// Waits for the jobs on `tracker` for up to the drain timeout, then cancels `hand_back` so the
/// rest give their messages back, and waits for those.
async fn drain(context: &Context, tracker: &TaskTracker, hand_back: &CancellationToken) {
    tracker.close();
    let in_flight = tracker.len();
    info!(in_flight, "worker draining");
    let drain = Duration::from_secs(context.config.drain_timeout_secs);
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        warn!(in_flight = tracker.len(), "drain timeout; handing jobs back to the queue");
        hand_back.cancel();
        tracker.wait().await;
    }
}

/// One job held, counted in the watched total while it lives (released even if the job's task
/// unwinds).
struct Held(Arc<watch::Sender<usize>>);

impl Held {
    fn new(count: Arc<watch::Sender<usize>>) -> Held {
        count.send_modify(|n| *n += 1);
        Held(count)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Receives up to `max` messages, trying lanes in priority order.
async fn receive(context: &Context, max: usize) -> Vec<(Lane, ReceivedMessage)> {
    let visibility = context.config.visibility_timeout();
    let lanes = &context.options.lanes;
    for (index, &lane) in lanes.iter().enumerate() {
        // Only the last lane long-polls, so a higher-priority lane is never starved by waiting.
        let wait = if index + 1 == lanes.len() { Duration::from_secs(1) } else { Duration::ZERO };
        match context.backends.lane(lane).receive(max, visibility, wait).await {
            Ok(messages) if !messages.is_empty() => {
                return messages.into_iter().map(|m| (lane, m)).collect();
            }
            Ok(_) => {}
            Err(err) => {
                warn!(%lane, error = %err, "receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Vec::new()
}
