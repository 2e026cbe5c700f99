//! `surge drill`: rehearses a disaster (load, lose the primary, fail over, replay, verify,
//! fail back) and reports what was lost, duplicated or differs.

use std::time::Duration;

use dispatcher::recovery::drill::{self, DrillOptions};
use shared::config::Config;
use shared::domain::TenantId;

use crate::output::print_json;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Jobs uploaded (half before the primary is lost, half after the failover).
    #[arg(long, default_value_t = 200)]
    jobs: usize,
    /// Tenants the load is spread over (comma-separated); default: three drill tenants.
    #[arg(long, value_delimiter = ',')]
    tenants: Vec<TenantId>,
    /// Longest wait for the load to finish in each region, seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    let tenants = if args.tenants.is_empty() {
        ["drill-a", "drill-b", "drill-c"].iter().map(|t| t.parse()).collect::<Result<_, _>>()?
    } else {
        args.tenants
    };
    let options = DrillOptions {
        jobs: args.jobs,
        tenants,
        surge_binary: std::env::current_exe()?,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    if !args.json {
        println!("drill: {} jobs, primary lost half-way; data in {}", args.jobs, config.data_dir.display());
    }
    let report = drill::run(config, &options).await?;
    if args.json {
        print_json(&report)?;
    } else {
        print!("{}", report.summary());
    }
    if !report.passed {
        anyhow::bail!("the drill found lost, duplicated or differing jobs");
    }
    Ok(())
}
