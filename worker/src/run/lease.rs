//! The lease of a claimed job: how long a claim lasts, and its renewal while the work runs,
//! which also keeps the job's message hidden. A lost lease fences the attempt: the job belongs
//! to someone else now, and this worker commits nothing.

use std::time::Duration;

use chrono::Utc;
use shared::domain::Job;
use shared::ports::{Queue, ReceivedMessage, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

use super::Context;

/// How long a claim or renewal holds the lease: the visibility timeout of the job's message.
pub(super) fn lease_for(context: &Context) -> chrono::Duration {
    chrono::Duration::from_std(context.config.visibility_timeout()).unwrap_or(chrono::Duration::seconds(30))
}

/// Renews the lease `token` on `job` and extends the visibility of its `message`, a third of
/// the visibility timeout apart, until the lease is lost; then cancels `fenced` and returns.
/// Never returns while the lease holds: the caller races it against the work.
pub(super) async fn keep_lease(
    context: &Context,
    queue: &dyn Queue,
    message: &ReceivedMessage,
    job: &Job,
    token: Uuid,
    fenced: CancellationToken,
) {
    let visibility = context.config.visibility_timeout();
    let every = (visibility / 3).max(Duration::from_millis(200));
    let lease_for = lease_for(context);
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
