//! `surge`: runs Surge on one machine (`surge up`) and carries the operator commands.

#![allow(clippy::print_stdout)] // This is the CLI: stdout is its output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use dispatcher::admin::{RollState, RollStatus};
use dispatcher::recovery;
use shared::backend::Backends;
use shared::config::Config;
use shared::domain::TenantId;
use shared::telemetry::{self, LogFormat};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "surge", version, about = "Surge: elastic invoice processing")]
struct Cli {
    /// Configuration file (TOML); `SURGE_*` environment variables override it.
    #[arg(long, global = true, env = "SURGE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory of the embedded backend (overrides `data_dir`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, the dispatcher and a pool of worker processes until Ctrl-C.
    Up {
        /// Address to listen on (overrides `api.listen`).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Worker processes for the small lane (overrides `pool.small_workers`).
        #[arg(long)]
        small_workers: Option<usize>,
        /// Worker processes for the large lane (overrides `pool.large_workers`).
        #[arg(long)]
        large_workers: Option<usize>,
    },
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Replay an arrival trace through a model of the lanes and worker pool under an
    /// autoscaling policy, and report queue waits, worker-seconds and scaling actions.
    Simulate {
        /// Arrival trace (CSV, see traces/README.md), e.g. traces/peak-month.csv.
        #[arg(long)]
        trace: PathBuf,
        /// surge, keda, target-tracking, or all to compare them.
        #[arg(long, default_value = "all")]
        policy: dispatcher::simulate::PolicySelection,
        /// Seconds from asking for a worker to its first job.
        #[arg(long, default_value_t = 20.0)]
        startup_delay_secs: f64,
        /// Seed of the service-time noise.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the regions, the epoch, replication, queues and jobs.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the other region active: fence the old one (when reachable), promote, and replay
    /// every unfinished job there. Prints the RPO and how long the promotion took.
    Failover {
        /// The region to make active.
        #[arg(long)]
        to: shared::region::RegionName,
        /// Wait up to this many seconds for the first job completed in the new region (RTO).
        #[arg(long, default_value_t = 0)]
        wait_secs: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy what changed in the secondary back to the primary and make the primary active again.
    Failback {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put selected jobs back into the queue (idempotently), or redrive the dead-letter queue.
    Replay {
        /// Redrive the dead-letter queue instead of selecting by status.
        #[arg(long)]
        dlq: bool,
        /// Only this tenant's jobs.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Only jobs created at or after this time (RFC 3339, e.g. 2026-11-25T10:00:00Z).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Statuses to replay (repeatable): queued, processing, failed, dead. Default: queued
        /// and processing jobs whose lease expired.
        #[arg(long)]
        status: Vec<shared::domain::JobStatus>,
        /// Show what would be replayed without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy everything the active region holds and the other lacks (repairs mirroring).
    Replicate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Backups of the job state and a checksummed manifest of every document and result.
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Rehearse a disaster: load, lose the primary, fail over, replay, verify, fail back.
    Drill {
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
    },
    /// Operate on the running deployment's worker pool.
    Workers {
        #[command(subcommand)]
        command: WorkersCommand,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// Set up cloud resources.
    Aws {
        #[command(subcommand)]
        command: AwsCommand,
    },
    /// Measure the job pipeline and the upload path on a scratch embedded backend.
    Bench {
        /// No-op jobs pushed through the pipeline.
        #[arg(long, default_value_t = 20_000)]
        jobs: usize,
        /// Worker processes for the pipeline benchmark.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Jobs each worker holds at once.
        #[arg(long, default_value_t = 256)]
        worker_concurrency: usize,
        /// Documents posted in the upload benchmark.
        #[arg(long, default_value_t = 5_000)]
        uploads: usize,
        /// Concurrent HTTP clients in the upload benchmark.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WorkersCommand {
    /// Replace every worker process, batch by batch (start new ones, wait until they beat,
    /// drain the old ones), while uploads keep being accepted: after an upgrade of
    /// surge-worker, or to recycle the pool.
    Roll {
        /// Workers replaced at a time.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// The deployment's URL; default: the `surge up` running on this data directory.
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        json: bool,
    },
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
        to: shared::region::RegionName,
        #[arg(long)]
        json: bool,
    },
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

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant (or add a key to an existing one) and print its new API key once.
    Add {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let env = Config::process_env();
    // The benchmark's own per-request logs would measure the terminal, not Surge.
    let default_filter = if matches!(cli.command, Command::Bench { .. }) { "warn" } else { "info" };
    let filter = env.get("SURGE_LOG").cloned().unwrap_or_else(|| default_filter.to_owned());
    telemetry::init_tracing(cli.log_format, &filter);
    let mut config = Config::load(cli.config.as_deref(), &env)?;
    if let Some(data_dir) = &cli.data_dir {
        config.data_dir = data_dir.clone();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Up { listen, small_workers, large_workers } => {
                if let Some(listen) = listen {
                    config.api.listen = listen;
                }
                if let Some(n) = small_workers {
                    config.pool.small_workers = n;
                }
                if let Some(n) = large_workers {
                    config.pool.large_workers = n;
                }
                up(config, cli.config).await
            }
            Command::Tenant { command: TenantCommand::Add { name, json } } => {
                let tenant: TenantId = name
                    .parse()
                    .with_context(|| format!("invalid tenant name {name:?}: use 1-64 of a-z, 0-9 and '-'"))?;
                let backends = Backends::open(&config).await?;
                let key = dispatcher::add_tenant(&backends, &tenant).await?;
                if json {
                    return print_json(&serde_json::json!({ "tenant": tenant, "api_key": key.expose() }));
                }
                println!("{}", key.expose());
                eprintln!("tenant {tenant}: store this key now; it is not shown again");
                Ok(())
            }
            Command::Tenant { command: TenantCommand::List { json } } => {
                let backends = Backends::open(&config).await?;
                let tenants = backends.tenants.list_tenants().await?;
                if json {
                    return print_json(&tenants);
                }
                for tenant in tenants {
                    println!("{tenant}");
                }
                Ok(())
            }
            Command::Aws { command: AwsCommand::Bootstrap { json } } => {
                let regions = [("primary", Some(config.primary_region())), ("secondary", config.secondary_region())];
                let on_aws: Vec<_> = regions
                    .into_iter()
                    .filter_map(|(name, region)| match region {
                        Some(shared::config::RegionConfig::Aws(settings)) => Some((name, settings)),
                        _ => None,
                    })
                    .collect();
                if on_aws.is_empty() {
                    anyhow::bail!("no region is on AWS: set [primary] backend = \"aws\" in the config");
                }
                let mut done = Vec::new();
                for (name, settings) in on_aws {
                    for line in shared::aws::bootstrap(&settings, config.worker.max_attempts).await? {
                        if !json {
                            println!("{name}: {line}");
                        }
                        done.push(serde_json::json!({ "region": name, "action": line }));
                    }
                }
                if json {
                    return print_json(&done);
                }
                Ok(())
            }
            Command::Simulate { trace, policy, startup_delay_secs, seed, json } => {
                let text = std::fs::read_to_string(&trace)
                    .with_context(|| format!("cannot read trace {}", trace.display()))?;
                let parsed = dispatcher::simulate::parse_trace(&text)
                    .with_context(|| format!("invalid trace {}", trace.display()))?;
                let options = dispatcher::simulate::SimOptions {
                    startup_delay_secs,
                    seed,
                    lanes: config.lanes.clone(),
                    scaling: dispatcher::scaling_config(&config)?,
                    ..dispatcher::simulate::SimOptions::default()
                };
                let reports = dispatcher::simulate::run_many(&parsed, &policy.kinds(), &options);
                if json {
                    println!("{}", serde_json::to_string_pretty(&reports)?);
                } else {
                    print!("{}", dispatcher::simulate::render_table(&reports));
                }
                Ok(())
            }
            Command::Status { json } => {
                let status = recovery::status(&config).await?;
                if json {
                    return print_json(&status);
                }
                println!(
                    "epoch {} since {}: {} active ({})",
                    status.epoch.epoch, status.epoch.changed_at, status.epoch.active, status.epoch.reason
                );
                println!("replication: {:?}", status.replication_mode);
                for region in &status.regions {
                    let state = if region.reachable { "reachable" } else { "UNREACHABLE" };
                    println!("  {:<10} {state}{}", region.name.as_str(), if region.active { ", active" } else { "" });
                }
                let lag = status.replication_lag_secs.map_or("-".to_owned(), |s| format!("{s:.2} s"));
                let unshipped = status.unshipped_changes.map_or("-".to_owned(), |n| n.to_string());
                let oldest = status.oldest_unshipped_secs.map_or("-".to_owned(), |s| format!("{s:.1} s"));
                println!("unshipped changes: {unshipped} (oldest {oldest})   replication lag: {lag}");
                println!("queues:");
                for (name, depth) in &status.queues {
                    println!("  {name:<14} {depth}");
                }
                println!("jobs:");
                for (job_status, count) in &status.jobs {
                    println!("  {:<14} {count}", job_status.as_str());
                }
                Ok(())
            }
            Command::Failover { to, wait_secs, json } => {
                let bar = progress("replaying", json);
                let report = recovery::failover(&config, to, "surge failover", &|n| bar.set_position(n)).await?;
                bar.finish_and_clear();
                let rto = if wait_secs > 0 { first_completion(&config, wait_secs).await? } else { None };
                if json {
                    return print_json(&serde_json::json!({ "failover": report, "rto_secs": rto }));
                }
                println!(
                    "{} is active (epoch {}); old region fenced: {}",
                    report.to, report.epoch, report.old_region_fenced
                );
                println!(
                    "replayed {} jobs, {} results adopted, {} skipped",
                    report.replay.replayed, report.replay.adopted_results, report.replay.skipped
                );
                println!(
                    "RPO: {} changes not in {} ({})",
                    report.rpo.changes.map_or("unknown".to_owned(), |n| n.to_string()),
                    report.to,
                    report.rpo.source
                );
                println!("promoted in {:.2} s", report.promoted_after_secs);
                match rto {
                    Some(rto) => println!("RTO: {rto:.1} s to the first job completed in {}", report.to),
                    None if wait_secs > 0 => {
                        println!("RTO: no job completed within {wait_secs} s (is `surge up` running?)")
                    }
                    None => println!("start `surge up` to process in {} (--wait-secs N measures the RTO)", report.to),
                }
                Ok(())
            }
            Command::Failback { json } => {
                let bar = progress("copying back", json);
                let report = recovery::failback(&config, "surge failback", &|n| bar.set_position(n)).await?;
                bar.finish_and_clear();
                if json {
                    return print_json(&report);
                }
                println!("primary is active again (epoch {}), mirroring on", report.epoch);
                println!(
                    "copied back {} jobs and {} objects; replayed {} jobs; {:.1} s",
                    report.resync.jobs_copied + report.catch_up.jobs_copied,
                    report.resync.blobs_copied + report.catch_up.blobs_copied,
                    report.replay.replayed,
                    report.seconds
                );
                Ok(())
            }
            Command::Replay { dlq, tenant, since, status, dry_run, json } => {
                use dispatcher::recovery::replay::{Selection, redrive_dead_letters, replay_jobs};
                use shared::domain::JobStatus;
                let backends = Backends::open(&config).await?;
                let take_live_leases = status.contains(&JobStatus::Processing);
                let statuses = if status.is_empty() { vec![JobStatus::Queued, JobStatus::Processing] } else { status };
                let selection = Selection { tenant, since, statuses, take_live_leases };
                let bar = progress("replaying", json);
                let set = |n| bar.set_position(n);
                let report = if dlq {
                    redrive_dead_letters(&backends, &selection, dry_run, &set).await?
                } else {
                    replay_jobs(&backends, &selection, dry_run, &set).await?
                };
                bar.finish_and_clear();
                if json {
                    return print_json(&report);
                }
                let verb = if dry_run { "would replay" } else { "replayed" };
                println!(
                    "examined {}, {verb} {}, results adopted {}, skipped {}{}",
                    report.examined,
                    report.replayed,
                    report.adopted_results,
                    report.skipped,
                    if dlq { format!(", dead letters {}", report.dead_letters) } else { String::new() }
                );
                Ok(())
            }
            Command::Replicate { json } => {
                let bar = progress("copying", json);
                let report = recovery::replicate(&config, &|n| bar.set_position(n)).await?;
                bar.finish_and_clear();
                if json {
                    return print_json(&report);
                }
                println!(
                    "examined {} jobs; copied {} jobs, {} objects, {} keys",
                    report.jobs_examined, report.jobs_copied, report.blobs_copied, report.keys_copied
                );
                Ok(())
            }
            Command::Backup { command } => backup(&config, command).await,
            Command::Drill { jobs, tenants, timeout_secs, json } => {
                let tenants = if tenants.is_empty() {
                    ["drill-a", "drill-b", "drill-c"].iter().map(|t| t.parse().expect("valid")).collect()
                } else {
                    tenants
                };
                let options = recovery::drill::DrillOptions {
                    jobs,
                    tenants,
                    surge_binary: std::env::current_exe()?,
                    timeout: std::time::Duration::from_secs(timeout_secs),
                };
                if !json {
                    println!("drill: {jobs} jobs, primary lost half-way; data in {}", config.data_dir.display());
                }
                let report = recovery::drill::run(&config, &options).await?;
                if json {
                    print_json(&report)?;
                } else {
                    print!("{}", report.summary());
                }
                if !report.passed {
                    anyhow::bail!("the drill found lost, duplicated or differing jobs");
                }
                Ok(())
            }
            Command::Workers { command: WorkersCommand::Roll { batch, url, json } } => {
                roll_workers(&config, batch, url, json).await
            }
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut <Cli as clap::CommandFactory>::command(),
                    "surge",
                    &mut std::io::stdout(),
                );
                Ok(())
            }
            Command::Bench { jobs, workers, worker_concurrency, uploads, clients, json } => {
                bench(jobs, workers, worker_concurrency, uploads, clients, json, config.replication.mode).await
            }
        }
    })
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `surge workers roll`: asks the running deployment to roll its pool and follows it.
async fn roll_workers(config: &Config, batch: usize, url: Option<String>, json: bool) -> anyhow::Result<()> {
    let url = match url {
        Some(url) => url,
        None => dispatcher::running::find(&config.data_dir)
            .map(|r| r.url)
            .with_context(|| format!("no running surge up found in {} (pass --url)", config.data_dir.display()))?,
    };
    let token = match &config.api.admin_token {
        Some(token) => token.clone(),
        None => dispatcher::read_admin_token(&config.data_dir)?.context(
            "no admin token: set api.admin_token (SURGE_API__ADMIN_TOKEN) or run on the deployment's data directory",
        )?,
    };
    let client = reqwest::Client::new();
    let endpoint = format!("{url}/admin/workers/roll");
    let response =
        client.post(&endpoint).bearer_auth(&token).json(&serde_json::json!({ "batch": batch })).send().await?;
    if !response.status().is_success() {
        let status = response.status();
        anyhow::bail!("the deployment refused the roll ({status}): {}", response.text().await.unwrap_or_default());
    }
    let bar = if json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(0) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} workers replaced · {msg} ({elapsed})")
            .expect("valid template"),
    );
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let status: RollStatus =
            client.get(&endpoint).bearer_auth(&token).send().await?.error_for_status()?.json().await?;
        bar.set_length(status.total as u64);
        bar.set_position(status.replaced as u64);
        bar.set_message(status.phase.clone());
        match status.state {
            RollState::Running => continue,
            RollState::Done => {
                bar.finish_and_clear();
                if json {
                    return print_json(&status);
                }
                if status.total == 0 {
                    println!("{}", status.phase);
                } else {
                    println!("rolled {} worker(s) in batches of {}", status.replaced, status.batch);
                }
                return Ok(());
            }
            RollState::Failed | RollState::Idle => {
                bar.abandon();
                if json {
                    print_json(&status)?;
                }
                let reason = status.error.unwrap_or_else(|| "the deployment no longer knows of it (restarted?)".into());
                anyhow::bail!("the roll failed: {reason}");
            }
        }
    }
}

/// A progress bar on stderr counting jobs; hidden for `--json`.
fn progress(what: &'static str, hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}: {pos} jobs ({per_sec}, {elapsed})")
            .expect("valid template"),
    );
    bar.set_message(what);
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// Seconds until a job finishes in the active region, polling its counts.
async fn first_completion(config: &Config, wait_secs: u64) -> anyhow::Result<Option<f64>> {
    let backends = Backends::open(config).await?;
    let started = std::time::Instant::now();
    let finished = |counts: &[(shared::domain::JobStatus, u64)]| -> u64 {
        counts.iter().filter(|(s, _)| s.is_terminal()).map(|(_, n)| n).sum()
    };
    let before = finished(&backends.jobs.count_by_status().await?);
    while started.elapsed().as_secs() < wait_secs {
        if finished(&backends.jobs.count_by_status().await?) > before {
            return Ok(Some(started.elapsed().as_secs_f64()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(None)
}

async fn backup(config: &Config, command: BackupCommand) -> anyhow::Result<()> {
    use dispatcher::recovery::backup;
    match command {
        BackupCommand::Create { json } => {
            let manifest = backup::create(config).await?;
            if json {
                return print_json(&manifest);
            }
            println!(
                "backup {}: {} jobs, {} tenants, {} objects",
                manifest.id,
                manifest.jobs,
                manifest.tenants,
                manifest.objects.len()
            );
        }
        BackupCommand::List { json } => {
            let backups = backup::list(config).await?;
            if json {
                return print_json(&backups);
            }
            println!("{:<26} {:>8} {:>8}", "id", "jobs", "objects");
            for b in backups {
                println!("{:<26} {:>8} {:>8}", b.id, b.jobs, b.objects);
            }
        }
        BackupCommand::Verify { id, json } => {
            let report = backup::verify(config, &id).await?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "backup {}: {} jobs restored, {} objects checked, {} missing, {} mismatched",
                    report.id,
                    report.jobs,
                    report.objects_checked,
                    report.missing.len(),
                    report.mismatched.len()
                );
            }
            if !report.is_clean() {
                anyhow::bail!("backup {id} does not verify");
            }
        }
        BackupCommand::Restore { id, to, json } => {
            let report = backup::restore(config, &id, to).await?;
            if json {
                return print_json(&report);
            }
            println!(
                "restored backup {} into {to}: {} jobs, {} objects",
                report.id, report.jobs, report.objects_checked
            );
        }
    }
    Ok(())
}

async fn up(config: Config, config_file: Option<PathBuf>) -> anyhow::Result<()> {
    let worker_binary = match &config.pool.worker_binary {
        Some(path) => path.clone(),
        None => sibling_binary("surge-worker")?,
    };
    let metrics = telemetry::init_metrics();
    let shutdown = CancellationToken::new();
    tokio::spawn(telemetry::cancel_on_signal(shutdown.clone()));
    let data_dir = config.data_dir.clone();
    let options = dispatcher::UpOptions { worker_binary, config_file };
    let mut record = None;
    let served = dispatcher::up(config, options, metrics, shutdown, |ready| {
        if let Some(key) = ready.demo_key {
            println!("first start: created tenant 'demo' with API key {}", key.expose());
            println!("(store it now; it is not shown again. More keys: surge tenant add NAME)");
        }
        println!("data directory: {}", data_dir.display());
        println!("Surge is listening on http://{}", ready.address);
        println!("dashboard: http://{}/dashboard?token={}", ready.address, ready.admin_token);
        // For operator commands that work against the running deployment (`surge drill`).
        let running = dispatcher::running::RunningDeployment::this_process(format!("http://{}", ready.address));
        match std::fs::create_dir_all(&data_dir).and_then(|()| running.write(&data_dir)) {
            Ok(()) => record = Some(running),
            Err(err) => tracing::warn!(error = %err, "cannot record the running deployment in the data directory"),
        }
    })
    .await;
    if let Some(record) = record {
        record.remove(&data_dir);
    }
    served?;
    Ok(())
}

async fn bench(
    jobs: usize,
    workers: usize,
    worker_concurrency: usize,
    uploads: usize,
    clients: usize,
    json: bool,
    replication: shared::config::ReplicationMode,
) -> anyhow::Result<()> {
    let worker_binary = sibling_binary("surge-worker")?;
    let scratch = tempfile::tempdir()?;
    let pipeline = dispatcher::bench::pipeline(
        scratch.path().join("pipeline"),
        worker_binary,
        jobs,
        workers,
        worker_concurrency,
        replication,
    )
    .await?;
    let upload = dispatcher::bench::uploads(scratch.path().join("uploads"), uploads, clients, replication).await?;
    let mirrored = dispatcher::bench::replication(scratch.path().join("replication"), uploads, clients).await?;
    if json {
        println!("{}", serde_json::json!({ "pipeline": pipeline, "uploads": upload, "replication": mirrored }));
        return Ok(());
    }
    println!(
        "job pipeline (embedded backend, durable, replication {replication:?}, {} surge-worker processes x {} in flight)",
        workers, worker_concurrency
    );
    println!("  jobs              {}", pipeline.jobs);
    println!("  wall time         {:.2} s (enqueue done after {:.2} s)", pipeline.seconds, pipeline.enqueue_seconds);
    println!("  throughput        {:.0} jobs/s", pipeline.jobs_per_second);
    println!("  enqueue-to-done   p50 {:.1} ms, p99 {:.1} ms", pipeline.latency_p50_ms, pipeline.latency_p99_ms);
    println!(
        "uploads (HTTP, {} concurrent clients, {} byte UBL invoice, replication {replication:?})",
        upload.clients, upload.document_bytes
    );
    println!("  uploads           {}", upload.uploads);
    println!("  throughput        {:.0} uploads/s", upload.uploads_per_second);
    println!("  latency           p50 {:.1} ms, p99 {:.1} ms", upload.latency_p50_ms, upload.latency_p99_ms);
    println!(
        "replication (async, two embedded regions, the same uploads at {:.0}/s, {} shipping loops)",
        mirrored.uploads_per_second,
        dispatcher::recovery::ship::SHIPPERS
    );
    println!("  changes shipped   {}", mirrored.changes_shipped);
    println!(
        "  lag               p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        mirrored.lag_p50_ms, mirrored.lag_p99_ms, mirrored.lag_max_ms
    );
    println!("  outbox empty      {:.2} s after the last upload", mirrored.drained_after_secs);
    println!(
        "replay (failover path: every unfinished job re-enqueued)\n  jobs              {}\n  throughput        {:.0} jobs/s ({:.2} s)",
        mirrored.replayed_jobs, mirrored.replay_jobs_per_second, mirrored.replay_seconds
    );
    Ok(())
}

/// A binary installed next to this one (cargo puts all of a workspace's binaries together).
fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot locate the surge executable")?;
    let path = me.parent().map(|dir| dir.join(name)).unwrap_or_else(|| Path::new(name).to_owned());
    anyhow::ensure!(
        path.exists(),
        "{} not found next to surge; build it (cargo build --bins) or set pool.worker_binary",
        path.display()
    );
    Ok(path)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every operator command speaks JSON for scripts; only the long-running server and the
    /// shell-completion generator do not.
    #[test]
    fn every_operator_command_has_json_output() {
        fn leaves(command: &clap::Command, path: String, out: &mut Vec<(String, bool)>) {
            if command.get_subcommands().next().is_none() {
                out.push((path, command.get_arguments().any(|a| a.get_id() == "json")));
                return;
            }
            for sub in command.get_subcommands() {
                leaves(sub, format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut found = Vec::new();
        leaves(&Cli::command(), "surge".into(), &mut found);
        let missing: Vec<&str> = found
            .iter()
            .filter(|(path, json)| !json && !["surge up", "surge completions"].contains(&path.as_str()))
            .map(|(path, _)| path.as_str())
            .collect();
        assert!(missing.is_empty(), "commands without --json: {missing:?}");
        assert!(found.len() > 15, "{found:?}");
    }
}
