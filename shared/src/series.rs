//! Every metric Surge exports: its name (one per series) and its description, in one place.
//! Code records through these constants; [`describe`] registers the descriptions with the
//! recorder, so `/metrics` carries a `# HELP` line for each.

/// HTTP requests answered, by method, route pattern and status.
pub const HTTP_REQUESTS_TOTAL: &str = "surge_http_requests_total";
/// Time to answer an HTTP request, by method and route pattern.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "surge_http_request_duration_seconds";
/// Time from an upload's first byte to its 202 (document, job record and message durable).
pub const UPLOAD_DURATION_SECONDS: &str = "surge_upload_duration_seconds";
/// Uploads refused before their body was read, by reason (`tenant_concurrency`).
pub const UPLOADS_REFUSED_TOTAL: &str = "surge_uploads_refused_total";
/// Requests cut off for taking too long, by reason (`slow_body`, `request_timeout`).
pub const REQUESTS_CUT_OFF_TOTAL: &str = "surge_requests_cut_off_total";
/// Jobs released from the incoming queue into a lane, by lane.
pub const DISPATCHED_TOTAL: &str = "surge_dispatched_total";
/// Time a job was held by the dispatcher before release, by lane.
pub const DISPATCH_WAIT_SECONDS: &str = "surge_dispatch_wait_seconds";
/// Jobs the dispatcher holds for fair release, by lane.
pub const DISPATCHER_HELD_JOBS: &str = "surge_dispatcher_held_jobs";
/// Messages in a lane queue, by lane and state (visible, in_flight).
pub const LANE_DEPTH: &str = "surge_lane_depth";
/// Large jobs sent to idle small-lane workers while the large lane slept.
pub const LENT_JOBS_TOTAL: &str = "surge_lent_jobs_total";
/// Jobs held for the busiest tenants (a few at most; idle ones drop out).
pub const TENANT_BACKLOG_JOBS: &str = "surge_tenant_backlog_jobs";
/// Jobs waiting for a worker, by lane.
pub const BACKLOG_JOBS: &str = "surge_backlog_jobs";
/// Seconds the waiting work would take the workers up now, by lane.
pub const BACKLOG_SECONDS: &str = "surge_backlog_seconds";
/// How long jobs ran on their workers, by lane (from heartbeats).
pub const JOB_DURATION_SECONDS: &str = "surge_job_duration_seconds";
/// Jobs workers finished, by lane (from heartbeats).
pub const JOBS_COMPLETED_TOTAL: &str = "surge_jobs_completed_total";
/// Jobs workers finished, by lane and status (succeeded, failed).
pub const JOBS_FINISHED_TOTAL: &str = "surge_jobs_finished_total";
/// Workers the scaling policy wants, by lane.
pub const WORKERS_DESIRED: &str = "surge_workers_desired";
/// Workers beating and not draining, by lane.
pub const WORKERS_RUNNING: &str = "surge_workers_running";
/// Workers whose heartbeats are fresh, all lanes.
pub const WORKERS_BEATING: &str = "surge_workers_beating";
/// Workers with at least one job in flight.
pub const WORKERS_BUSY: &str = "surge_workers_busy";
/// Workers written off for silence; their jobs were handed back.
pub const WORKERS_LOST_TOTAL: &str = "surge_workers_lost_total";
/// Worker processes the local pool started, by lane.
pub const WORKER_STARTS_TOTAL: &str = "surge_worker_starts_total";
/// Scaling decisions, by lane, direction (up, down, hold) and reason.
pub const SCALING_DECISIONS_TOTAL: &str = "surge_scaling_decisions_total";
/// Messages in each queue.
pub const QUEUE_MESSAGES: &str = "surge_queue_messages";
/// Messages a queue moved to the dead-letter queue.
pub const QUEUE_DEAD_LETTERED_TOTAL: &str = "surge_queue_dead_lettered_total";
/// Messages in the dead-letter queue.
pub const DEAD_LETTER_JOBS: &str = "surge_dead_letter_jobs";
/// 1 while an announced maintenance window is on.
pub const MAINTENANCE_ACTIVE: &str = "surge_maintenance_active";
/// Scheduled backups that failed.
pub const BACKUP_FAILURES_TOTAL: &str = "surge_backup_failures_total";
/// Times this process found its region demoted by a newer epoch.
pub const REGION_FENCED_TOTAL: &str = "surge_region_fenced_total";
/// Age of the oldest change shipped in the last batch.
pub const REPLICATION_LAG_SECONDS: &str = "surge_replication_lag_seconds";
/// Age of the oldest change not yet shipped.
pub const REPLICATION_OLDEST_UNSHIPPED_SECONDS: &str = "surge_replication_oldest_unshipped_seconds";
/// Changes shipped to the other region.
pub const REPLICATION_SHIPPED_TOTAL: &str = "surge_replication_shipped_total";
/// Synchronous mirror writes that fell back to the outbox.
pub const REPLICATION_SYNC_FAILURES_TOTAL: &str = "surge_replication_sync_failures_total";
/// Changes in the outbox not yet shipped.
pub const REPLICATION_UNSHIPPED_CHANGES: &str = "surge_replication_unshipped_changes";

/// Registers every series' description with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests answered, by method, route pattern and status");
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        "Time to answer an HTTP request, by method and route pattern"
    );
    metrics::describe_histogram!(
        UPLOAD_DURATION_SECONDS,
        "Time from an upload's first byte to its 202 (document, job record and message durable)"
    );
    metrics::describe_counter!(
        UPLOADS_REFUSED_TOTAL,
        "Uploads refused before their body was read, by reason (tenant_concurrency)"
    );
    metrics::describe_counter!(
        REQUESTS_CUT_OFF_TOTAL,
        "Requests cut off for taking too long, by reason (slow_body, request_timeout)"
    );
    metrics::describe_counter!(DISPATCHED_TOTAL, "Jobs released from the incoming queue into a lane, by lane");
    metrics::describe_histogram!(
        DISPATCH_WAIT_SECONDS,
        "Time a job was held by the dispatcher before release, by lane"
    );
    metrics::describe_gauge!(DISPATCHER_HELD_JOBS, "Jobs the dispatcher holds for fair release, by lane");
    metrics::describe_gauge!(LANE_DEPTH, "Messages in a lane queue, by lane and state (visible, in_flight)");
    metrics::describe_counter!(
        LENT_JOBS_TOTAL,
        "Large jobs sent to idle small-lane workers while the large lane slept"
    );
    metrics::describe_gauge!(
        TENANT_BACKLOG_JOBS,
        "Jobs held for the busiest tenants (a few at most; idle ones drop out)"
    );
    metrics::describe_gauge!(BACKLOG_JOBS, "Jobs waiting for a worker, by lane");
    metrics::describe_gauge!(BACKLOG_SECONDS, "Seconds the waiting work would take the workers up now, by lane");
    metrics::describe_histogram!(JOB_DURATION_SECONDS, "How long jobs ran on their workers, by lane (from heartbeats)");
    metrics::describe_counter!(JOBS_COMPLETED_TOTAL, "Jobs workers finished, by lane (from heartbeats)");
    metrics::describe_counter!(JOBS_FINISHED_TOTAL, "Jobs workers finished, by lane and status (succeeded, failed)");
    metrics::describe_gauge!(WORKERS_DESIRED, "Workers the scaling policy wants, by lane");
    metrics::describe_gauge!(WORKERS_RUNNING, "Workers beating and not draining, by lane");
    metrics::describe_gauge!(WORKERS_BEATING, "Workers whose heartbeats are fresh, all lanes");
    metrics::describe_gauge!(WORKERS_BUSY, "Workers with at least one job in flight");
    metrics::describe_counter!(WORKERS_LOST_TOTAL, "Workers written off for silence; their jobs were handed back");
    metrics::describe_counter!(WORKER_STARTS_TOTAL, "Worker processes the local pool started, by lane");
    metrics::describe_counter!(
        SCALING_DECISIONS_TOTAL,
        "Scaling decisions, by lane, direction (up, down, hold) and reason"
    );
    metrics::describe_gauge!(QUEUE_MESSAGES, "Messages in each queue");
    metrics::describe_counter!(QUEUE_DEAD_LETTERED_TOTAL, "Messages a queue moved to the dead-letter queue");
    metrics::describe_gauge!(DEAD_LETTER_JOBS, "Messages in the dead-letter queue");
    metrics::describe_gauge!(MAINTENANCE_ACTIVE, "1 while an announced maintenance window is on");
    metrics::describe_counter!(BACKUP_FAILURES_TOTAL, "Scheduled backups that failed");
    metrics::describe_counter!(REGION_FENCED_TOTAL, "Times this process found its region demoted by a newer epoch");
    metrics::describe_gauge!(REPLICATION_LAG_SECONDS, "Age of the oldest change shipped in the last batch");
    metrics::describe_gauge!(REPLICATION_OLDEST_UNSHIPPED_SECONDS, "Age of the oldest change not yet shipped");
    metrics::describe_counter!(REPLICATION_SHIPPED_TOTAL, "Changes shipped to the other region");
    metrics::describe_counter!(
        REPLICATION_SYNC_FAILURES_TOTAL,
        "Synchronous mirror writes that fell back to the outbox"
    );
    metrics::describe_gauge!(REPLICATION_UNSHIPPED_CHANGES, "Changes in the outbox not yet shipped");
}
