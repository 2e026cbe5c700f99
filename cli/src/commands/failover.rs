//! `surge failover --to REGION`: fences the old region, promotes the other and replays there;
//! optionally waits for the first completion there (the RTO).

use std::fmt;
use std::time::{Duration, Instant};

use dispatcher::recovery::{self, FailoverReport};
use serde::Serialize;
use shared::backend::Backends;
use shared::config::Config;
use shared::domain::JobStatus;
use shared::region::{RegionName, Topology};

use crate::output::{emit, progress};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The region to make active.
    #[arg(long)]
    to: RegionName,
    /// Wait up to this many seconds for the first job completed in the new region (RTO).
    #[arg(long, default_value_t = 0)]
    wait_secs: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct FailoverOutcome {
    failover: FailoverReport,
    rto_secs: Option<f64>,
    #[serde(skip)]
    waited_secs: u64,
}

impl fmt::Display for FailoverOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = &self.failover;
        writeln!(
            f,
            "{} is active (epoch {}); old region fenced: {}",
            report.to, report.epoch, report.old_region_fenced
        )?;
        writeln!(
            f,
            "replayed {} jobs, {} results adopted, {} skipped",
            report.replay.replayed, report.replay.adopted_results, report.replay.skipped
        )?;
        writeln!(
            f,
            "RPO: {} changes not in {} ({})",
            report.rpo.changes.map_or("unknown".to_owned(), |n| n.to_string()),
            report.to,
            report.rpo.source
        )?;
        writeln!(f, "promoted in {:.2} s", report.promoted_after_secs)?;
        match self.rto_secs {
            Some(rto) => writeln!(f, "RTO: {rto:.1} s to the first job completed in {}", report.to),
            None if self.waited_secs > 0 => {
                writeln!(f, "RTO: no job completed within {} s (is `surge up` running?)", self.waited_secs)
            }
            None => writeln!(f, "start `surge up` to process in {} (--wait-secs N measures the RTO)", report.to),
        }
    }
}

pub(crate) async fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    let bar = progress("replaying", args.json);
    let topology = Topology::open_any(config).await?;
    let report = recovery::failover(&topology, args.to, "surge failover", &|n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    let rto_secs = match topology.region(args.to) {
        Some(region) if args.wait_secs > 0 => first_completion(region, args.wait_secs).await?,
        _ => None,
    };
    emit(&FailoverOutcome { failover: report, rto_secs, waited_secs: args.wait_secs }, args.json)
}

/// Seconds until a job finishes in the (new) active region, polling its counts.
async fn first_completion(backends: &Backends, wait_secs: u64) -> anyhow::Result<Option<f64>> {
    let started = Instant::now();
    let finished =
        |counts: &[(JobStatus, u64)]| -> u64 { counts.iter().filter(|(s, _)| s.is_terminal()).map(|(_, n)| n).sum() };
    let before = finished(&backends.jobs.count_by_status().await?);
    while started.elapsed().as_secs() < wait_secs {
        if finished(&backends.jobs.count_by_status().await?) > before {
            return Ok(Some(started.elapsed().as_secs_f64()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}
