//! The `surge` commands, one module each. Every command is a clap `Args` struct and a
//! `run(args, config)`; this module only names them and dispatches.

mod aws;
mod backup;
mod bench;
mod completions;
mod drill;
mod failback;
mod failover;
mod replay;
mod replicate;
mod simulate;
mod status;
mod tenant;
mod up;
mod workers;

use std::path::PathBuf;

use clap::Subcommand;
use shared::config::Config;

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the API, the dispatcher and a pool of worker processes until Ctrl-C.
    Up(up::Args),
    /// Manage tenants.
    Tenant(tenant::Args),
    /// Replay an arrival trace through a model of the lanes and worker pool under an
    /// autoscaling policy, and report queue waits, worker-seconds and scaling actions.
    Simulate(simulate::Args),
    /// Show the regions, the epoch, replication, queues and jobs.
    Status(status::Args),
    /// Make the other region active: fence the old one (when reachable), promote, and replay
    /// every unfinished job there. Prints the RPO and how long the promotion took.
    Failover(failover::Args),
    /// Copy what changed in the secondary back to the primary and make the primary active again.
    Failback(failback::Args),
    /// Put selected jobs back into the queue (idempotently), or redrive the dead-letter queue.
    Replay(replay::Args),
    /// Copy everything the active region holds and the other lacks (repairs mirroring).
    Replicate(replicate::Args),
    /// Backups of the job state and a checksummed manifest of every document and result.
    Backup(backup::Args),
    /// Rehearse a disaster: load, lose the primary, fail over, replay, verify, fail back.
    Drill(drill::Args),
    /// Operate on the running deployment's worker pool.
    Workers(workers::Args),
    /// Print shell completions.
    Completions(completions::Args),
    /// Set up cloud resources.
    Aws(aws::Args),
    /// Measure the job pipeline and the upload path on a scratch embedded backend.
    Bench(bench::Args),
}

impl Command {
    /// The log level unless `SURGE_LOG` says otherwise: the benchmark's own per-request logs
    /// would measure the terminal, not Surge.
    pub(crate) fn default_log_filter(&self) -> &'static str {
        if matches!(self, Command::Bench(_)) { "warn" } else { "info" }
    }

    /// Runs the command. `config_file` is handed on to the workers `surge up` starts.
    pub(crate) async fn run(self, config: Config, config_file: Option<PathBuf>) -> anyhow::Result<()> {
        match self {
            Command::Up(args) => up::run(args, config, config_file).await,
            Command::Tenant(args) => tenant::run(args, &config).await,
            Command::Simulate(args) => simulate::run(args, &config),
            Command::Status(args) => status::run(args, &config).await,
            Command::Failover(args) => failover::run(args, &config).await,
            Command::Failback(args) => failback::run(args, &config).await,
            Command::Replay(args) => replay::run(args, &config).await,
            Command::Replicate(args) => replicate::run(args, &config).await,
            Command::Backup(args) => backup::run(args, &config).await,
            Command::Drill(args) => drill::run(args, &config).await,
            Command::Workers(args) => workers::run(args, &config).await,
            Command::Completions(args) => completions::run(args),
            Command::Aws(args) => aws::run(args, &config).await,
            Command::Bench(args) => bench::run(args, &config).await,
        }
    }
}
