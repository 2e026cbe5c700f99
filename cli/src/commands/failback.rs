//! `surge failback`: copies what changed in the secondary back and makes the primary active.

use std::fmt;

use dispatcher::recovery::{self, FailbackReport};
use serde::Serialize;
use shared::config::Config;
use shared::region::Topology;

use crate::output::{JsonOnly, emit, progress};

/// `--json` is the only option.
pub(crate) type Args = JsonOnly;

#[derive(Serialize)]
#[serde(transparent)]
struct FailedBack(FailbackReport);

impl fmt::Display for FailedBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = &self.0;
        writeln!(f, "primary is active again (epoch {}), mirroring on", report.epoch)?;
        writeln!(
            f,
            "copied back {} jobs and {} objects; replayed {} jobs; {:.1} s",
            report.resync.jobs_copied + report.catch_up.jobs_copied,
            report.resync.blobs_copied + report.catch_up.blobs_copied,
            report.replay.replayed,
            report.seconds
        )
    }
}

pub(crate) async fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    let bar = progress("copying back", args.json);
    let topology = Topology::open_any(config).await?;
    let settle = config.replication.settle();
    let report = recovery::failback(&topology, settle, "surge failback", &|n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    emit(&FailedBack(report), args.json)
}
