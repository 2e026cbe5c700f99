//! `surge status`: the regions, the epoch, replication, queues and jobs.

use std::fmt;

use dispatcher::recovery;
use serde::Serialize;
use shared::config::Config;
use shared::region::Topology;

use crate::output::{JsonOnly, emit};

/// `--json` is the only option.
pub(crate) type Args = JsonOnly;

#[derive(Serialize)]
#[serde(transparent)]
struct StatusReport(recovery::Status);

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = &self.0;
        writeln!(
            f,
            "epoch {} since {}: {} active ({})",
            status.epoch.epoch, status.epoch.changed_at, status.epoch.active, status.epoch.reason
        )?;
        writeln!(f, "replication: {:?}", status.replication_mode)?;
        for region in &status.regions {
            let state = if region.reachable { "reachable" } else { "UNREACHABLE" };
            writeln!(f, "  {:<10} {state}{}", region.name.as_str(), if region.active { ", active" } else { "" })?;
        }
        let lag = status.replication_lag_secs.map_or("-".to_owned(), |s| format!("{s:.2} s"));
        let unshipped = status.unshipped_changes.map_or("-".to_owned(), |n| n.to_string());
        let oldest = status.oldest_unshipped_secs.map_or("-".to_owned(), |s| format!("{s:.1} s"));
        writeln!(f, "unshipped changes: {unshipped} (oldest {oldest})   replication lag: {lag}")?;
        writeln!(f, "queues:")?;
        for (name, depth) in &status.queues {
            writeln!(f, "  {name:<14} {depth}")?;
        }
        writeln!(f, "jobs:")?;
        for (job_status, count) in &status.jobs {
            writeln!(f, "  {:<14} {count}", job_status.as_str())?;
        }
        Ok(())
    }
}

pub(crate) async fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    let topology = Topology::open_any(config).await?;
    let status = recovery::status(&topology, config.secondary_region().is_some()).await;
    emit(&StatusReport(status), args.json)
}
