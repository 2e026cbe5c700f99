//! `surge replicate`: copies everything the active region holds and the other lacks.

use std::fmt;

use dispatcher::recovery;
use serde::Serialize;
use shared::config::Config;
use shared::region::Topology;
use shared::replication::Resynced;

use crate::output::{JsonOnly, emit, progress};

/// `--json` is the only option.
pub(crate) type Args = JsonOnly;

#[derive(Serialize)]
#[serde(transparent)]
struct Replicated(Resynced);

impl fmt::Display for Replicated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = &self.0;
        writeln!(
            f,
            "examined {} jobs; copied {} jobs, {} objects, {} keys",
            report.jobs_examined, report.jobs_copied, report.blobs_copied, report.keys_copied
        )
    }
}

pub(crate) async fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    let bar = progress("copying", args.json);
    let report = recovery::replicate(&Topology::open(config).await?, &|n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    emit(&Replicated(report), args.json)
}
