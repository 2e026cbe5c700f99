//! `surge aws bootstrap`: creates the queues and the bucket of every region on AWS.

use std::fmt;

use clap::Subcommand;
use serde::Serialize;
use shared::config::{Config, RegionConfig};

use crate::output::emit;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: AwsCommand,
}

#[derive(Subcommand)]
enum AwsCommand {
    /// Create the queues (with dead-letter queue and redrive policies) and the bucket of every
    /// region on AWS (primary and secondary) if they are missing. Safe to run again.
    Bootstrap {
        #[arg(long)]
        json: bool,
    },
}

/// One thing bootstrap did or found.
#[derive(Serialize)]
struct Action {
    region: &'static str,
    action: String,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Bootstrapped(Vec<Action>);

impl fmt::Display for Bootstrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|done| writeln!(f, "{}: {}", done.region, done.action))
    }
}

pub(crate) async fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    let AwsCommand::Bootstrap { json } = args.command;
    let regions = [("primary", Some(config.primary_region())), ("secondary", config.secondary_region())];
    let on_aws: Vec<_> = regions
        .into_iter()
        .filter_map(|(name, region)| match region {
            Some(RegionConfig::Aws(settings)) => Some((name, settings)),
            _ => None,
        })
        .collect();
    if on_aws.is_empty() {
        anyhow::bail!("no region is on AWS: set [primary] backend = \"aws\" in the config");
    }
    let mut done = Vec::new();
    for (region, settings) in on_aws {
        for action in shared::aws::bootstrap(&settings, config.worker.max_attempts).await? {
            done.push(Action { region, action });
        }
    }
    emit(&Bootstrapped(done), json)
}
