//! The worker loop: receive jobs from the lanes, claim them with a lease, run the CPU work on a
//! bounded pool, store the result, finish the job, ack.
//!
//! Delivery is at least once; effects are idempotent. A duplicate delivery of a finished job is
//! acked without work. A job's result is stored under a key derived from its id, so a job that
//! runs twice still has one result, and only the holder of the current lease can mark it done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use shared::backend::Backends;
use shared::config::{Processor, WorkerConfig};
use shared::domain::{DocumentType, Job, JobError, JobId, JobMessage, Lane, Lease, TransitionError};
use shared::ports::{CompletedJob, InFlightJob, Queue, ReceivedMessage, StoreError, WorkerBeat};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};
use uuid::Uuid;

use crate::booking::Chart;
use crate::extract::{self, ExtractError};
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

#[derive(Default)]
struct Report {
    in_flight: HashMap<JobId, InFlightJob>,
    completed: Vec<CompletedJob>,
    completed_total: u64,
    failed_total: u64,
}

/// How many finished jobs one beat reports at most; the scaler needs a sample, not a log.
const MAX_COMPLETED_PER_BEAT: usize = 256;

impl Context {
    fn report(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let context = Arc::new(Context {
        cpu: Arc::new(Semaphore::new(config.cpu_threads)),
        backends,
        config,
        options,
        report: Mutex::default(),
        beat_soon: Notify::new(),
    });
    let worker_id = Uuid::new_v4();
    let started_at = Utc::now();
    let draining = CancellationToken::new();
    let stop_beats = CancellationToken::new();
    let tokens = BeatTokens { shutdown: shutdown.clone(), draining: draining.clone(), stop: stop_beats.clone() };
    let mut beats = tokio::spawn(heartbeats(Arc::clone(&context), worker_id, started_at, tokens));
    // Jobs held (received and not yet finished), for the task's scale-in protection.
    let (held, held_changes) = watch::channel(0usize);
    let held = Arc::new(held);
    let protection = context.options.protection.clone().map(|settings| {
        info!(agent = %settings.agent_uri, "ECS task scale-in protection on while jobs are held");
        tokio::spawn(TaskProtection::new(settings).keep(held_changes, shutdown.child_token()))
    });
    let tracker = TaskTracker::new();
    // Cancelled when the drain timeout passes: in-flight jobs then hand their message back.
    let hand_back = CancellationToken::new();
    info!(lanes = ?context.options.lanes, concurrency = context.config.concurrency, "worker started");

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
        let received = receive(&context, permits.len()).await;
        for ((lane, message), permit) in received.into_iter().zip(permits) {
            let context = Arc::clone(&context);
            let hand_back = hand_back.clone();
            let held = Held::new(Arc::clone(&held));
            tracker.spawn(async move {
                handle(&context, lane, message, hand_back).await;
                drop::<(Held, OwnedSemaphorePermit)>((held, permit));
            });
        }
    }

    draining.cancel();
    tracker.close();
    let in_flight = tracker.len();
    info!(in_flight, "worker draining");
    let drain = Duration::from_secs(context.config.drain_timeout_secs);
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        warn!(in_flight = tracker.len(), "drain timeout; handing jobs back to the queue");
        hand_back.cancel();
        tracker.wait().await;
    }
    // The last beat must be written before the worker deregisters: a beat still on its way
    // would register it again, as a live worker that no longer exists.
    stop_beats.cancel();
    if tokio::time::timeout(LAST_BEAT_WAIT, &mut beats).await.is_err() {
        beats.abort();
        let _ = beats.await;
    }
    if let Some(protection) = protection {
        protection.abort();
    }
    if let Err(err) = context.backends.workers.remove(worker_id).await {
        warn!(error = %err, "could not deregister; the dispatcher will notice the silence");
    }
    info!("worker stopped");
    Ok(())
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

/// How often a worker reports; the dispatcher writes a worker off after a few missed beats.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Least time between two beats, however many jobs are claimed: bounds the registry's load.
const MIN_BEAT_SPACING: Duration = Duration::from_millis(200);
/// How long a stopping worker waits for a beat in flight before it deregisters anyway.
const LAST_BEAT_WAIT: Duration = Duration::from_secs(5);

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

/// How a job attempt ended.
enum Outcome {
    Succeeded,
    Failed(JobError),
    /// A transient problem (store unreachable); the job is tried again later.
    Retry(JobError),
    /// Another delivery of a job that is finished or being worked on elsewhere.
    Duplicate,
    /// This worker lost its lease or is stopping; the message is left to come back.
    Abandoned,
}

async fn handle(context: &Context, lane: Lane, message: ReceivedMessage, hand_back: CancellationToken) {
    let queue = context.backends.lane(lane);
    let job_message: JobMessage = match serde_json::from_slice(&message.body) {
        Ok(parsed) => parsed,
        Err(err) => {
            warn!(%lane, error = %err, "undecodable message; moving it to the dead-letter queue");
            dead_letter(context, queue.as_ref(), &message).await;
            return;
        }
    };
    let span = info_span!(
        "job",
        job_id = %job_message.job_id,
        tenant = %job_message.tenant,
        attempt = message.receive_count,
        %lane,
    );
    async {
        let started = Instant::now();
        let outcome = attempt(context, lane, queue.as_ref(), &message, &job_message, hand_back).await;
        let label = match &outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed(_) => "failed",
            Outcome::Retry(_) => "retried",
            Outcome::Duplicate => "duplicate",
            Outcome::Abandoned => "abandoned",
        };
        metrics::counter!("surge_jobs_total", "lane" => lane.as_str(), "outcome" => label).increment(1);
        metrics::histogram!("surge_job_duration_seconds", "lane" => lane.as_str(), "outcome" => label)
            .record(started.elapsed().as_secs_f64());
        match outcome {
            Outcome::Failed(error) => info!(code = %error.code, reason = %error.message, "job failed"),
            Outcome::Retry(error) => warn!(code = %error.code, reason = %error.message, "job will be retried"),
            Outcome::Succeeded => debug!(elapsed_ms = started.elapsed().as_millis() as u64, "job succeeded"),
            Outcome::Duplicate => debug!("duplicate delivery acked"),
            Outcome::Abandoned => info!("job handed back"),
        }
    }
    .instrument(span)
    .await;
}

async fn attempt(
    context: &Context,
    lane: Lane,
    queue: &dyn Queue,
    message: &ReceivedMessage,
    job_message: &JobMessage,
    hand_back: CancellationToken,
) -> Outcome {
    let jobs = &context.backends.jobs;
    let job = match jobs.get(job_message.job_id).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            warn!("message for an unknown job; dropping it");
            ack(queue, message).await;
            return Outcome::Duplicate;
        }
        Err(err) => return retry_later(context, queue, message, None, store_error(err)).await,
    };
    if job.status.is_terminal() {
        ack(queue, message).await;
        return Outcome::Duplicate;
    }
    let max_attempts = context.config.max_attempts;
    if job.attempts >= max_attempts {
        // Every earlier attempt ended without a verdict: the job keeps killing its workers.
        let error = JobError {
            code: "attempts_exhausted".into(),
            message: format!("no worker finished this job in {} attempts", job.attempts),
        };
        let buried = jobs.update(job.id, Box::new(move |j: &Job| j.bury_abandoned(error.clone(), Utc::now()))).await;
        return match buried {
            Ok(job) => {
                dead_letter(context, queue, message).await;
                Outcome::Failed(
                    job.last_error.unwrap_or_else(|| JobError { code: "dead".into(), message: String::new() }),
                )
            }
            Err(StoreError::Transition(_)) => {
                ack(queue, message).await;
                Outcome::Duplicate
            }
            Err(err) => retry_later(context, queue, message, None, store_error(err)).await,
        };
    }

    let visibility = context.config.visibility_timeout();
    let token = Uuid::new_v4();
    let lease_for = chrono::Duration::from_std(visibility).unwrap_or(chrono::Duration::seconds(30));
    let claimed = jobs
        .update(
            job.id,
            Box::new(move |j: &Job| j.claim(Lease { token, expires_at: Utc::now() + lease_for }, Utc::now())),
        )
        .await;
    let job = match claimed {
        Ok(job) => job,
        Err(StoreError::Transition(TransitionError::IllegalTransition { .. })) => {
            // Finished meanwhile.
            ack(queue, message).await;
            return Outcome::Duplicate;
        }
        Err(StoreError::Transition(TransitionError::LeaseHeld { until })) => {
            // Another worker holds the job. This delivery may be the very message that worker
            // holds (redelivered after a missed heartbeat), so acking it could strand the job if
            // that worker then dies. Hide it until the lease would have expired instead: by then
            // the job is finished (and this copy is acked) or free to claim.
            let wait = (until - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1);
            let _ = queue.extend_visibility(std::slice::from_ref(&message.receipt), wait).await;
            return Outcome::Duplicate;
        }
        Err(err) => return retry_later(context, queue, message, None, store_error(err)).await,
    };

    context
        .report()
        .in_flight
        .insert(job.id, InFlightJob { job_id: job.id, lane, receipt: message.receipt.0.clone(), lease_token: token });
    context.beat_soon.notify_one();
    let started = Instant::now();
    let outcome = run_claimed(context, queue, message, &job, token, hand_back).await;
    let mut report = context.report();
    report.in_flight.remove(&job.id);
    if matches!(outcome, Outcome::Succeeded | Outcome::Failed(_)) {
        report.completed_total += 1;
    }
    if matches!(outcome, Outcome::Failed(_)) {
        report.failed_total += 1;
    }
    if matches!(outcome, Outcome::Succeeded | Outcome::Failed(_)) && report.completed.len() < MAX_COMPLETED_PER_BEAT {
        let seconds = started.elapsed().as_secs_f64();
        report.completed.push(CompletedJob { lane, seconds, size: job.size, pages: job.page_estimate });
    }
    outcome
}

/// Works on a job this worker has claimed, until it is finished, handed back or fenced.
async fn run_claimed(
    context: &Context,
    queue: &dyn Queue,
    message: &ReceivedMessage,
    job: &Job,
    token: Uuid,
    hand_back: CancellationToken,
) -> Outcome {
    let jobs = &context.backends.jobs;
    // Heartbeat: keep the message hidden and the lease alive while the work runs. If the lease
    // is lost, the job belongs to someone else now: stop and commit nothing.
    let fenced = CancellationToken::new();
    let heartbeat = heartbeat(context, queue, message, job, token, fenced.clone());
    let work = work(context, job);
    let result = tokio::select! {
        result = work => Some(result),
        () = heartbeat => None,
        () = hand_back.cancelled() => None,
    };
    let Some(result) = result else {
        if !fenced.is_cancelled() {
            // Stopping: hand the job back so another worker starts on it at once.
            let error = JobError { code: "worker_stopped".into(), message: "worker stopped during the job".into() };
            let _ = jobs.update(job.id, Box::new(move |j: &Job| j.retry(token, error.clone(), Utc::now()))).await;
            let _ = queue.extend_visibility(std::slice::from_ref(&message.receipt), Duration::ZERO).await;
        }
        return Outcome::Abandoned;
    };

    match result {
        Ok(result_key) => {
            let finished =
                jobs.update(job.id, Box::new(move |j: &Job| j.succeed(token, result_key.clone(), Utc::now()))).await;
            match finished {
                Ok(_) => {
                    ack(queue, message).await;
                    Outcome::Succeeded
                }
                Err(StoreError::Transition(_)) => Outcome::Abandoned,
                Err(err) => retry_later(context, queue, message, Some((job, token)), store_error(err)).await,
            }
        }
        Err(WorkError::Document(error)) => {
            let to_store = error.clone();
            let finished =
                jobs.update(job.id, Box::new(move |j: &Job| j.fail(token, to_store.clone(), Utc::now()))).await;
            match finished {
                Ok(_) => {
                    ack(queue, message).await;
                    Outcome::Failed(error)
                }
                Err(StoreError::Transition(_)) => Outcome::Abandoned,
                Err(err) => retry_later(context, queue, message, Some((job, token)), store_error(err)).await,
            }
        }
        Err(WorkError::Transient(error)) => retry_later(context, queue, message, Some((job, token)), error).await,
    }
}

/// Why the work on a claimed job did not produce a result.
enum WorkError {
    /// The document is at fault; final.
    Document(JobError),
    /// Infrastructure is at fault; try again later.
    Transient(JobError),
}

/// Loads the document, extracts the proposal on the CPU pool and stores it. Returns the result
/// key (`None` for no-op jobs).
async fn work(context: &Context, job: &Job) -> Result<Option<String>, WorkError> {
    if !context.options.debug_delay.is_zero() {
        tokio::time::sleep(context.options.debug_delay).await;
    }
    if job.document_type == DocumentType::BenchNoop {
        return Ok(None);
    }
    if let Processor::Sleep(duration) = context.config.processor {
        tokio::time::sleep(duration).await;
        return store_result(context, job, &synthetic_result(job, context.config.processor)).await.map(Some);
    }
    let blobs = &context.backends.blobs;
    let bytes = match blobs.get(&job.blob_key).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(WorkError::Document(JobError {
                code: "document_missing".into(),
                message: "the uploaded document is no longer stored".into(),
            }));
        }
        Err(err) => {
            return Err(WorkError::Transient(JobError {
                code: "blob_store_unavailable".into(),
                message: err.to_string(),
            }));
        }
    };
    let chart = tenant_chart(context, job).await?;
    let proposal = extract_on_pool(context, bytes, job.document_type, chart).await?;
    store_result(context, job, &proposal).await.map(Some)
}

/// Stores a job's result under its key; returns the key. Same job, same key, same content: a
/// second run overwrites with an identical object.
async fn store_result(context: &Context, job: &Job, result: &impl serde::Serialize) -> Result<String, WorkError> {
    let json = serde_json::to_vec_pretty(result).map_err(|e| {
        WorkError::Document(JobError { code: "internal_error".into(), message: format!("unencodable result: {e}") })
    })?;
    let key = result_key(job);
    context.backends.blobs.put(&key, Bytes::from(json)).await.map_err(|err| {
        WorkError::Transient(JobError { code: "blob_store_unavailable".into(), message: err.to_string() })
    })?;
    Ok(key)
}

/// The result of a synthetic job: what it was, and that nothing was extracted.
fn synthetic_result(job: &Job, processor: Processor) -> serde_json::Value {
    serde_json::json!({
        "synthetic": true,
        "processor": processor.to_string(),
        "job_id": job.id,
        "document_sha256": job.sha256,
        "warnings": [format!("synthetic processor `{processor}`: the document was not read")],
    })
}

/// Where a job's booking proposal is stored.
pub fn result_key(job: &Job) -> String {
    job.result_blob_key()
}

/// The tenant's chart of accounts, or the worker's default when the tenant has not set one.
async fn tenant_chart(context: &Context, job: &Job) -> Result<Chart, WorkError> {
    let stored = context.backends.blobs.get(&shared::chart::chart_key(&job.tenant)).await.map_err(|err| {
        WorkError::Transient(JobError { code: "blob_store_unavailable".into(), message: err.to_string() })
    })?;
    match stored.map(|bytes| serde_json::from_slice::<Chart>(&bytes)) {
        Some(Ok(chart)) => Ok(chart),
        Some(Err(err)) => {
            // The API validates charts, so this is a stored chart from an older version.
            warn!(error = %err, "stored chart unreadable; using the default chart");
            Ok(context.options.chart.clone())
        }
        None => Ok(context.options.chart.clone()),
    }
}

async fn extract_on_pool(
    context: &Context,
    bytes: Bytes,
    document_type: DocumentType,
    chart: Chart,
) -> Result<shared::proposal::BookingProposal, WorkError> {
    let _permit = Arc::clone(&context.cpu).acquire_owned().await.map_err(|_| {
        WorkError::Transient(JobError { code: "worker_stopping".into(), message: "CPU pool closed".into() })
    })?;
    let budget = Duration::from_secs(context.config.job_timeout_secs);
    // The extractor kills its tools a little before the budget, so a slow document fails with
    // its own clear reason and leaves nothing running behind.
    let margin = (budget / 10).min(Duration::from_secs(5));
    let options = extract::ExtractOptions {
        ignore_embedded: false,
        limits: extract::Limits {
            time: budget - margin,
            memory_bytes: context.config.job_memory_mib.saturating_mul(1024 * 1024),
            ..extract::Limits::default()
        },
    };
    let task = tokio::task::spawn_blocking(move || extract::extract_with(&bytes, document_type, &chart, &options));
    match tokio::time::timeout(budget, task).await {
        Ok(Ok(Ok(proposal))) => Ok(proposal),
        Ok(Ok(Err(error))) if error.is_transient() => Err(WorkError::Transient(extract_error(&error))),
        Ok(Ok(Err(error))) => Err(WorkError::Document(extract_error(&error))),
        Ok(Err(join_error)) => {
            warn!(error = %join_error, "extraction panicked");
            Err(WorkError::Document(JobError {
                code: "internal_error".into(),
                message: "the document could not be read because of an internal error".into(),
            }))
        }
        Err(_) => Err(WorkError::Document(JobError {
            code: "time_budget_exceeded".into(),
            message: format!("processing took longer than the budget of {} s", budget.as_secs()),
        })),
    }
}

fn extract_error(error: &ExtractError) -> JobError {
    JobError { code: error.code().to_owned(), message: error.to_string() }
}

fn store_error(err: StoreError) -> JobError {
    JobError { code: "job_store_unavailable".into(), message: err.to_string() }
}

async fn heartbeat(
    context: &Context,
    queue: &dyn Queue,
    message: &ReceivedMessage,
    job: &Job,
    token: Uuid,
    fenced: CancellationToken,
) {
    let visibility = context.config.visibility_timeout();
    let every = (visibility / 3).max(Duration::from_millis(200));
    let lease_for = chrono::Duration::from_std(visibility).unwrap_or(chrono::Duration::seconds(30));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        let renewed = context
            .backends
            .jobs
            .update(job.id, Box::new(move |j: &Job| j.renew(token, Utc::now() + lease_for, Utc::now())))
            .await;
        match renewed {
            Ok(_) => {}
            Err(StoreError::Transition(err)) => {
                warn!(error = %err, "lease lost; abandoning the job");
                fenced.cancel();
                return;
            }
            Err(err) => warn!(error = %err, "lease renewal failed; will retry"),
        }
        let extended = queue.extend_visibility(std::slice::from_ref(&message.receipt), visibility).await;
        if let Ok(Some(Err(err))) = extended.map(|results| results.into_iter().next()) {
            warn!(error = %err, "visibility extension refused");
        }
    }
}

async fn retry_later(
    context: &Context,
    queue: &dyn Queue,
    message: &ReceivedMessage,
    claimed: Option<(&Job, Uuid)>,
    error: JobError,
) -> Outcome {
    let attempts = claimed.map(|(job, _)| job.attempts).unwrap_or(message.receive_count);
    if let Some((job, token)) = claimed {
        let jobs = &context.backends.jobs;
        let to_store = error.clone();
        let give_up = attempts >= context.config.max_attempts;
        let updated = jobs
            .update(
                job.id,
                Box::new(move |j: &Job| {
                    if give_up {
                        j.bury(token, to_store.clone(), Utc::now())
                    } else {
                        j.retry(token, to_store.clone(), Utc::now())
                    }
                }),
            )
            .await;
        if give_up && updated.is_ok() {
            dead_letter(context, queue, message).await;
            return Outcome::Failed(error);
        }
    }
    let delay = context.config.retry_delay(attempts.max(1));
    let _ = queue.extend_visibility(std::slice::from_ref(&message.receipt), delay).await;
    Outcome::Retry(error)
}

async fn ack(queue: &dyn Queue, message: &ReceivedMessage) {
    if let Err(err) = queue.ack(std::slice::from_ref(&message.receipt)).await {
        // Not retried blindly: the message comes back and the job's idempotency handles it.
        warn!(error = %err, "ack failed; the message will be redelivered");
    }
}

async fn dead_letter(context: &Context, queue: &dyn Queue, message: &ReceivedMessage) {
    match context.backends.dead_letter.send_batch(vec![message.body.clone()], Duration::ZERO).await {
        Ok(()) => ack(queue, message).await,
        Err(err) => warn!(error = %err, "could not move message to the dead-letter queue"),
    }
}

#[cfg(test)]
mod tests {
    use shared::domain::{JobId, JobStatus, NewJob};

    use super::*;

    async fn run_until_settled(backends: &Backends, id: shared::domain::JobId) -> Job {
        let shutdown = CancellationToken::new();
        let options = WorkerOptions {
            lanes: vec![Lane::Small],
            chart: Chart::default(),
            debug_delay: Duration::ZERO,
            protection: None,
        };
        // A short lease, so a duplicate delivery deferred behind a live lease comes back soon.
        let config = WorkerConfig { drain_timeout_secs: 1, visibility_timeout_secs: 2, ..WorkerConfig::default() };
        let worker = tokio::spawn(run(backends.clone(), config, options, shutdown.clone()));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let job = backends.jobs.get(id).await.unwrap().unwrap();
            let depth = backends.small_lane.depth().await.unwrap();
            if job.status.is_terminal() && depth.visible + depth.in_flight == 0 {
                shutdown.cancel();
                worker.await.unwrap().unwrap();
                return job;
            }
            assert!(Instant::now() < deadline, "job did not settle: {job:?} {depth:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_delivered_twice_yields_one_result_and_both_messages_are_acked() {
        let dir = tempfile::tempdir().unwrap();
        let backends = Backends::open_embedded(dir.path(), 3).unwrap();
        let tenant: shared::domain::TenantId = "acme".parse().unwrap();
        let samples = std::env::var_os("SURGE_SAMPLES")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/samples").into());
        let path = samples.join("peppol-bis3/base-example.xml");
        let invoice = Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("sample {}: {e}", path.display())));

        let id = JobId::new();
        let blob_key = format!("documents/acme/{id}");
        backends.blobs.put(&blob_key, invoice.clone()).await.unwrap();
        let new = NewJob {
            id,
            tenant,
            idempotency_key: None,
            blob_key,
            document_type: DocumentType::Xml,
            size: invoice.len() as u64,
            sha256: String::new(),
            page_estimate: 1,
        };
        let job = Job::new(new, Utc::now());
        backends.jobs.create(job.clone()).await.unwrap();
        let body = Bytes::from(serde_json::to_vec(&JobMessage::for_job(&job)).unwrap());
        backends.small_lane.send_batch(vec![body.clone(), body], Duration::ZERO).await.unwrap();

        let done = run_until_settled(&backends, id).await;
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.attempts, 1, "the duplicate delivery did no work");
        let results = backends.blobs.list("results/acme/").await.unwrap();
        assert_eq!(results, vec![format!("results/acme/{id}.json")]);
    }

    /// Creates a one-page XML job of acme whose document is at `blob_key` (not written), and
    /// queues it on the small lane.
    async fn queue_job(backends: &Backends, blob_key: &str) -> Job {
        let new = NewJob {
            id: JobId::new(),
            tenant: "acme".parse().unwrap(),
            idempotency_key: None,
            blob_key: blob_key.into(),
            document_type: DocumentType::Xml,
            size: 1,
            sha256: String::new(),
            page_estimate: 1,
        };
        let job = Job::new(new, Utc::now());
        backends.jobs.create(job.clone()).await.unwrap();
        let body = Bytes::from(serde_json::to_vec(&JobMessage::for_job(&job)).unwrap());
        backends.small_lane.send_batch(vec![body], Duration::ZERO).await.unwrap();
        job
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_document_fails_the_job_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let backends = Backends::open_embedded(dir.path(), 3).unwrap();
        let job = queue_job(&backends, "documents/acme/gone").await;
        let done = run_until_settled(&backends, job.id).await;
        assert_eq!(done.status, JobStatus::Failed);
        assert_eq!(done.last_error.unwrap().code, "document_missing");
    }

    /// A registry whose beats are written late, by a task of their own, the way the embedded
    /// backend's writer thread or an HTTP request already sent completes after its caller went.
    struct LateBeats(Arc<dyn shared::ports::WorkerRegistry>);

    #[async_trait::async_trait]
    impl shared::ports::WorkerRegistry for LateBeats {
        async fn beat(&self, beat: &WorkerBeat) -> Result<shared::ports::WorkerOrders, shared::ports::RegistryError> {
            let (registry, beat) = (Arc::clone(&self.0), beat.clone());
            let write = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                registry.beat(&beat).await
            });
            write.await.expect("the write task")
        }

        async fn list(&self) -> Result<Vec<WorkerBeat>, shared::ports::RegistryError> {
            self.0.list().await
        }

        async fn request_drain(&self, worker_id: Uuid) -> Result<(), shared::ports::RegistryError> {
            self.0.request_drain(worker_id).await
        }

        async fn remove(&self, worker_id: Uuid) -> Result<(), shared::ports::RegistryError> {
            self.0.remove(worker_id).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_worker_is_not_registered_again_by_its_last_beat() {
        let dir = tempfile::tempdir().unwrap();
        let mut backends = Backends::open_embedded(dir.path(), 3).unwrap();
        let registry = Arc::clone(&backends.workers);
        backends.workers = Arc::new(LateBeats(Arc::clone(&registry)));
        let options = WorkerOptions {
            lanes: vec![Lane::Small],
            chart: Chart::default(),
            debug_delay: Duration::ZERO,
            protection: None,
        };
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(run(backends, WorkerConfig::default(), options, shutdown.clone()));
        // Each beat takes 1.5 s to land and the next is due after 1 s: one is always on its way.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(registry.list().await.unwrap().len(), 1, "the worker beats");
        shutdown.cancel();
        worker.await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let left = registry.list().await.unwrap();
        assert!(left.is_empty(), "a beat landed after the worker deregistered: {left:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_worker_protects_its_ecs_task_and_releases_it_when_idle() {
        use crate::protection::tests::{Agent, serve_agent};

        let agent = Arc::new(Agent::default());
        let mut protection = ProtectionSettings::new(serve_agent(Arc::clone(&agent)).await, 60).unwrap();
        protection.release_after = Duration::from_millis(300);
        let dir = tempfile::tempdir().unwrap();
        let backends = Backends::open_embedded(dir.path(), 3).unwrap();
        let job = queue_job(&backends, "documents/acme/synthetic").await;

        let config =
            WorkerConfig { processor: Processor::Sleep(Duration::from_millis(800)), ..WorkerConfig::default() };
        let options = WorkerOptions {
            lanes: vec![Lane::Small],
            chart: Chart::default(),
            debug_delay: Duration::ZERO,
            protection: Some(protection),
        };
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(run(backends.clone(), config, options, shutdown.clone()));
        let deadline = Instant::now() + Duration::from_secs(20);
        let finished = loop {
            if backends.jobs.get(job.id).await.unwrap().unwrap().status == JobStatus::Succeeded {
                break Instant::now();
            }
            assert!(Instant::now() < deadline, "the job did not finish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        while agent.calls.lock().unwrap().len() < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        worker.await.unwrap().unwrap();
        let calls = agent.calls.lock().unwrap().clone();
        let times = agent.times.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec![
                serde_json::json!({"ProtectionEnabled": true, "ExpiresInMinutes": 60}),
                serde_json::json!({"ProtectionEnabled": false}),
            ],
            "protected once while busy, released once idle"
        );
        assert!(times[0] < finished, "protected while the job ran");
        assert!(times[1] >= finished, "released after it");
    }
}
