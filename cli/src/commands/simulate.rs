//! `surge simulate`: replays an arrival trace under Surge's scaling policy and the baselines.

use std::path::PathBuf;

use anyhow::Context as _;
use scaling::simulate::{self, PolicySelection, SimOptions};
use shared::config::Config;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Arrival trace (CSV, see traces/README.md), e.g. traces/peak-month.csv.
    #[arg(long)]
    trace: PathBuf,
    /// surge, keda, target-tracking, or all to compare them.
    #[arg(long, default_value = "all")]
    policy: PolicySelection,
    /// Seconds from asking for a worker to its first job.
    #[arg(long, default_value_t = 20.0)]
    startup_delay_secs: f64,
    /// Seed of the service-time noise.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(&args.trace).with_context(|| format!("cannot read trace {}", args.trace.display()))?;
    let parsed = simulate::parse_trace(&text).with_context(|| format!("invalid trace {}", args.trace.display()))?;
    let options = SimOptions {
        startup_delay_secs: args.startup_delay_secs,
        seed: args.seed,
        lanes: config.lanes.clone(),
        scaling: config.scaling.clone(),
        ..SimOptions::default()
    };
    let reports = simulate::run_many(&parsed, &args.policy.kinds(), &options);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", simulate::render_table(&reports));
    }
    Ok(())
}
