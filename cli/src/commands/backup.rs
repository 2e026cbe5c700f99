//! `surge backup create|list|verify|restore`: backups of the job state with a checksummed
//! manifest of every document and result.

use std::fmt;

use clap::Subcommand;
use dispatcher::recovery::backup::{self, BackupSummary, Manifest, RestoreReport};
use serde::Serialize;
use shared::config::Config;
use shared::region::RegionName;

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
        BackupCommand::Create { json } => emit(&Created(backup::create(config).await?), json),
        BackupCommand::List { json } => emit(&Listed(backup::list(config).await?), json),
        BackupCommand::Verify { id, json } => {
            let report = Verified(backup::verify(config, &id).await?);
            emit(&report, json)?;
            if !report.0.is_clean() {
                anyhow::bail!("backup {id} does not verify");
            }
            Ok(())
        }
        BackupCommand::Restore { id, to, json } => {
            emit(&Restored { report: backup::restore(config, &id, to).await?, to }, json)
        }
    }
}
