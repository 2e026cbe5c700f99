//! `surge backup create|list|verify|restore`: backups of the job state with a checksummed
//! manifest of every document and result.

use std::fmt;

use clap::Subcommand;
use dispatcher::recovery::backup::{self, BackupSummary, Manifest, RestoreReport};
use serde::Serialize;
use shared::config::Config;
use shared::region::{RegionName, Topology};

use crate::output::emit;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Take a backup now (and apply the retention policy).
    Create {
        #[arg(long)]
        json: bool,
    },
    /// List the backups.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into a scratch location and check every checksum.
    Verify {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into a region (records newer there are kept).
    Restore {
        id: String,
        /// The region to restore into; default: the primary.
        #[arg(long, default_value = "primary")]
        to: RegionName,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
#[serde(transparent)]
struct Created(Manifest);

impl fmt::Display for Created {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.0;
        writeln!(f, "backup {}: {} jobs, {} tenants, {} objects", m.id, m.jobs, m.tenants, m.objects.len())
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct Listed(Vec<BackupSummary>);

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<26} {:>8} {:>8}", "id", "jobs", "objects")?;
        self.0.iter().try_for_each(|b| writeln!(f, "{:<26} {:>8} {:>8}", b.id, b.jobs, b.objects))
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct Verified(RestoreReport);

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.0;
        writeln!(
            f,
            "backup {}: {} jobs restored, {} objects checked, {} missing, {} mismatched",
            r.id,
            r.jobs,
            r.objects_checked,
            r.missing.len(),
            r.mismatched.len()
        )
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct Restored {
    report: RestoreReport,
    #[serde(skip)]
    to: RegionName,
}

impl fmt::Display for Restored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        writeln!(f, "restored backup {} into {}: {} jobs, {} objects", r.id, self.to, r.jobs, r.objects_checked)
    }
}

pub(crate) async fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    match args.command {
        BackupCommand::Create { json } => {
            let topology = Topology::open(config).await?;
            emit(&Created(backup::create(&topology, &config.backup).await?), json)
        }
        BackupCommand::List { json } => emit(&Listed(backup::list(&Topology::open_any(config).await?).await?), json),
        BackupCommand::Verify { id, json } => {
            let topology = Topology::open_any(config).await?;
            let report = Verified(backup::verify(&topology, &id, config.worker.max_attempts).await?);
            emit(&report, json)?;
            if !report.0.is_clean() {
                anyhow::bail!("backup {id} does not verify");
            }
            Ok(())
        }
        BackupCommand::Restore { id, to, json } => {
            let topology = Topology::open_any(config).await?;
            emit(&Restored { report: backup::restore(&topology, &id, to).await?, to }, json)
        }
    }
}
