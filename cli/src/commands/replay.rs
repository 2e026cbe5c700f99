//! `surge replay`: puts selected jobs back into the queue (idempotently), or redrives the
//! dead-letter queue.

use std::fmt;

use dispatcher::recovery::replay::{ReplayReport, Selection, redrive_dead_letters, replay_jobs};
use serde::Serialize;
use shared::backend::Backends;
use shared::config::Config;
use shared::domain::{JobStatus, TenantId};

use crate::output::{emit, progress};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Redrive the dead-letter queue instead of selecting by status.
    #[arg(long)]
    dlq: bool,
    /// Only this tenant's jobs.
    #[arg(long)]
    tenant: Option<TenantId>,
    /// Only jobs created at or after this time (RFC 3339, e.g. 2026-11-25T10:00:00Z).
    #[arg(long)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Statuses to replay (repeatable): queued, processing, failed, dead. Default: queued
    /// and processing jobs whose lease expired.
    #[arg(long)]
    status: Vec<JobStatus>,
    /// Show what would be replayed without changing anything.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Replayed {
    report: ReplayReport,
    #[serde(skip)]
    dlq: bool,
}

impl fmt::Display for Replayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = &self.report;
        let verb = if report.dry_run { "would replay" } else { "replayed" };
        writeln!(
            f,
            "examined {}, {verb} {}, results adopted {}, skipped {}{}",
            report.examined,
            report.replayed,
            report.adopted_results,
            report.skipped,
            if self.dlq { format!(", dead letters {}", report.dead_letters) } else { String::new() }
        )
    }
}

pub(crate) async fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    let backends = Backends::open(config).await?;
    let take_live_leases = args.status.contains(&JobStatus::Processing);
    let statuses = if args.status.is_empty() { vec![JobStatus::Queued, JobStatus::Processing] } else { args.status };
    let selection = Selection { tenant: args.tenant, since: args.since, statuses, take_live_leases };
    let bar = progress("replaying", args.json);
    let set = |n| bar.set_position(n);
    let report = if args.dlq {
        redrive_dead_letters(&backends, &selection, args.dry_run, &set).await?
    } else {
        replay_jobs(&backends, &selection, args.dry_run, &set).await?
    };
    bar.finish_and_clear();
    emit(&Replayed { report, dlq: args.dlq }, args.json)
}
