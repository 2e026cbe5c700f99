//! One delivery of a job message, from decoding to its [`Outcome`]: the claim protocol and the
//! retry and bury policy.
//!
//! A delivery of a finished or unknown job is acked without work; a job whose earlier attempts
//! all ended without a verdict is buried; otherwise the job is claimed with a lease, worked on
//! while the lease is kept, and finished by the lease holder only. A transient failure (the
//! infrastructure's, not the document's) sends the job back to its lane as a fresh message
//! delayed by a backoff, without using up an attempt, and buries the job only once such faults
//! have lasted the transient retry window.

use std::time::{Duration, Instant};

use chrono::Utc;
use shared::domain::{ErrorCode, Job, JobError, JobMessage, Lane, Lease, TransitionError};
use shared::ports::{InFlightJob, Queue, ReceivedMessage, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};
use uuid::Uuid;

use super::Context;
use super::lease::{keep_lease, lease_for};
use super::outcome::{Outcome, WorkError, ack, dead_letter, store_error};
use super::work::work;

/// Handles one received message: decodes it (an undecodable one is dead-lettered), runs an
/// attempt on its job in the job's span, and counts and logs the outcome.
pub(super) async fn handle(context: &Context, lane: Lane, message: ReceivedMessage, hand_back: CancellationToken) {
    let queue = context.backends.lane(lane);
    let job_message = match JobMessage::decode(&message.body) {
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
        // Workers export no metrics of their own: the dispatcher counts completions and
        // durations from their heartbeats (`surge_jobs_finished_total`, `surge_job_duration_seconds`).
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

/// One attempt on the job of `job_message`: acks the delivery of an unknown or finished job,
/// buries a job whose attempts are used up, and otherwise claims the job and works on it,
/// reporting it as held meanwhile.
async fn attempt(
    context: &Context,
    lane: Lane,
    queue: &dyn Queue,
    message: &ReceivedMessage,
    job_message: &JobMessage,
    hand_back: CancellationToken,
) -> Outcome {
    let job = match context.backends.jobs.get(job_message.job_id).await {
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
    if job.attempts >= context.config.max_attempts {
        return bury_exhausted(context, queue, message, &job).await;
    }
    let token = Uuid::new_v4();
    let job = match claim(context, queue, message, &job, token).await {
        Ok(job) => job,
        Err(outcome) => return outcome,
    };

    let held = InFlightJob { job_id: job.id, lane, receipt: message.receipt.0.clone(), lease_token: token };
    context.report().claimed(held);
    context.beat_soon.notify_one();
    let started = Instant::now();
    let outcome = run_claimed(context, queue, message, &job, token, hand_back).await;
    context.report().finished(&job, lane, &outcome, started);
    outcome
}

/// Buries `job`, every earlier attempt of which ended without a verdict, and dead-letters its
/// message.
async fn bury_exhausted(context: &Context, queue: &dyn Queue, message: &ReceivedMessage, job: &Job) -> Outcome {
    // Every earlier attempt ended without a verdict: the job keeps killing its workers.
    let error = JobError {
        code: ErrorCode::AttemptsExhausted,
        message: format!("no worker finished this job in {} attempts", job.attempts),
    };
    let buried = context
        .backends
        .jobs
        .update(job.id, Box::new(move |j: &Job| j.bury_abandoned(error.clone(), Utc::now())))
        .await;
    match buried {
        Ok(job) => {
            dead_letter(context, queue, message).await;
            Outcome::Failed(
                job.last_error.unwrap_or_else(|| JobError { code: ErrorCode::Dead, message: String::new() }),
            )
        }
        Err(StoreError::Transition(_)) => {
            ack(queue, message).await;
            Outcome::Duplicate
        }
        Err(err) => retry_later(context, queue, message, None, store_error(err)).await,
    }
}

/// Claims `job` with a lease under `token`. When it cannot be claimed, `Err` holds the outcome:
/// finished meanwhile, held by another worker, or the job store unreachable.
async fn claim(
    context: &Context,
    queue: &dyn Queue,
    message: &ReceivedMessage,
    job: &Job,
    token: Uuid,
) -> Result<Job, Outcome> {
    let lease_for = lease_for(context);
    let claimed = context
        .backends
        .jobs
        .update(
            job.id,
            Box::new(move |j: &Job| j.claim(Lease { token, expires_at: Utc::now() + lease_for }, Utc::now())),
        )
        .await;
    match claimed {
        Ok(job) => Ok(job),
        Err(StoreError::Transition(TransitionError::IllegalTransition { .. })) => {
            // Finished meanwhile.
            ack(queue, message).await;
            Err(Outcome::Duplicate)
        }
        Err(StoreError::Transition(TransitionError::LeaseHeld { until })) => {
            // Another worker holds the job. This delivery may be the very message that worker
            // holds (redelivered after a missed heartbeat), so acking it could strand the job if
            // that worker then dies. Hide it until the lease would have expired instead: by then
            // the job is finished (and this copy is acked) or free to claim.
            let wait = (until - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1);
            let _ = queue.extend_visibility(std::slice::from_ref(&message.receipt), wait).await;
            Err(Outcome::Duplicate)
        }
        Err(err) => Err(retry_later(context, queue, message, None, store_error(err)).await),
    }
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
    // Keep the message hidden and the lease alive while the work runs. If the lease is lost,
    // the job belongs to someone else now: stop and commit nothing.
    let fenced = CancellationToken::new();
    let lease = keep_lease(context, queue, message, job, token, fenced.clone());
    let work = work(context, job);
    let result = tokio::select! {
        result = work => Some(result),
        () = lease => None,
        () = hand_back.cancelled() => None,
    };
    let Some(result) = result else {
        if !fenced.is_cancelled() {
            // Stopping: hand the job back so another worker starts on it at once.
            let error = JobError { code: ErrorCode::WorkerStopped, message: "worker stopped during the job".into() };
            let _ = context
                .backends
                .jobs
                .update(job.id, Box::new(move |j: &Job| j.retry(token, error.clone(), Utc::now())))
                .await;
            let _ = queue.extend_visibility(std::slice::from_ref(&message.receipt), Duration::ZERO).await;
        }
        return Outcome::Abandoned;
    };
    finish(context, queue, message, job, token, result).await
}

/// Records the verdict of the work on `job` (succeeded with its result key, or failed because
/// of the document) under the lease `token`, and acks. A transient failure, or a job store that
/// cannot be reached, is retried later; a lost lease abandons the job to its new holder.
async fn finish(
    context: &Context,
    queue: &dyn Queue,
    message: &ReceivedMessage,
    job: &Job,
    token: Uuid,
    result: Result<Option<String>, WorkError>,
) -> Outcome {
    let jobs = &context.backends.jobs;
    let (finished, verdict) = match result {
        Ok(result_key) => {
            let finished =
                jobs.update(job.id, Box::new(move |j: &Job| j.succeed(token, result_key.clone(), Utc::now()))).await;
            (finished, Outcome::Succeeded)
        }
        Err(WorkError::Document(error)) => {
            let to_store = error.clone();
            let finished =
                jobs.update(job.id, Box::new(move |j: &Job| j.fail(token, to_store.clone(), Utc::now()))).await;
            (finished, Outcome::Failed(error))
        }
        Err(WorkError::Transient(error)) => {
            return retry_later(context, queue, message, Some((job, token)), error).await;
        }
    };
    match finished {
        Ok(_) => {
            ack(queue, message).await;
            verdict
        }
        Err(StoreError::Transition(_)) => Outcome::Abandoned,
        Err(err) => retry_later(context, queue, message, Some((job, token)), store_error(err)).await,
    }
}

/// Sends the job back to its lane for a later try: when this worker holds the job (`claimed`),
/// it is first deferred (the attempt is not counted: the fault is the infrastructure's), or
/// buried (and its message dead-lettered) once such faults have lasted the transient retry
/// window. The job travels on as a fresh message delayed by the backoff, and this delivery is
/// acked, so the queue's receive count (its guard against jobs that crash workers) is not
/// used up by faults of the stores.
async fn retry_later(
    context: &Context,
    queue: &dyn Queue,
    message: &ReceivedMessage,
    claimed: Option<(&Job, Uuid)>,
    error: JobError,
) -> Outcome {
    if let Some((job, token)) = claimed {
        let faulty_for = job.transient_since.map(|since| (Utc::now() - since).to_std().unwrap_or_default());
        let give_up = faulty_for.is_some_and(|t| t >= context.config.transient_retry_window());
        let to_store = error.clone();
        let updated = context
            .backends
            .jobs
            .update(
                job.id,
                Box::new(move |j: &Job| {
                    if give_up {
                        j.bury(token, to_store.clone(), Utc::now())
                    } else {
                        j.defer(token, to_store.clone(), Utc::now())
                    }
                }),
            )
            .await;
        if give_up && updated.is_ok() {
            dead_letter(context, queue, message).await;
            return Outcome::Failed(error);
        }
    }
    let Ok(mut next) = JobMessage::decode(&message.body) else {
        // Decoded before this attempt began; cannot happen, but never drop a message.
        let _ = queue.extend_visibility(std::slice::from_ref(&message.receipt), Duration::from_secs(1)).await;
        return Outcome::Retry(error);
    };
    next.deferrals = next.deferrals.saturating_add(1);
    let delay = context.config.retry_delay(next.deferrals);
    match queue.send_batch(vec![next.encode()], delay).await {
        Ok(()) => ack(queue, message).await,
        Err(err) => {
            // The queue failed too: leave this delivery to come back after the backoff.
            warn!(error = %err, "could not send the job back to its lane; its message will come back");
            let _ = queue.extend_visibility(std::slice::from_ref(&message.receipt), delay).await;
        }
    }
    Outcome::Retry(error)
}
