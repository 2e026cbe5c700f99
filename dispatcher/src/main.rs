//! `surge`: runs Surge on one machine (`surge up`) and carries the operator commands.

#![allow(clippy::print_stdout)] // This is the CLI: stdout is its output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
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
enum AwsCommand {
    /// Create the configured region's queues (with dead-letter queue and redrive policies) and
    /// bucket if they are missing. Safe to run again.
    Bootstrap,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant (or add a key to an existing one) and print its new API key once.
    Add { name: String },
    /// List tenants.
    List,
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
            Command::Tenant { command: TenantCommand::Add { name } } => {
                let tenant: TenantId = name
                    .parse()
                    .with_context(|| format!("invalid tenant name {name:?}: use 1-64 of a-z, 0-9 and '-'"))?;
                let backends = Backends::open(&config).await?;
                let key = dispatcher::add_tenant(&backends, &tenant).await?;
                println!("{}", key.expose());
                eprintln!("tenant {tenant}: store this key now; it is not shown again");
                Ok(())
            }
            Command::Tenant { command: TenantCommand::List } => {
                let backends = Backends::open(&config).await?;
                for tenant in backends.tenants.list_tenants().await? {
                    println!("{tenant}");
                }
                Ok(())
            }
            Command::Aws { command: AwsCommand::Bootstrap } => {
                let shared::config::RegionConfig::Aws(settings) = config.primary_region() else {
                    anyhow::bail!("the primary region is not on AWS: set [primary] backend = \"aws\" in the config");
                };
                for line in shared::aws::bootstrap(&settings, config.worker.max_attempts).await? {
                    println!("{line}");
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
            Command::Bench { jobs, workers, worker_concurrency, uploads, clients, json } => {
                bench(jobs, workers, worker_concurrency, uploads, clients, json).await
            }
        }
    })
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
    dispatcher::up(config, options, metrics, shutdown, |ready| {
        if let Some(key) = ready.demo_key {
            println!("first start: created tenant 'demo' with API key {}", key.expose());
            println!("(store it now; it is not shown again. More keys: surge tenant add NAME)");
        }
        println!("data directory: {}", data_dir.display());
        println!("Surge is listening on http://{}", ready.address);
    })
    .await?;
    Ok(())
}

async fn bench(
    jobs: usize,
    workers: usize,
    worker_concurrency: usize,
    uploads: usize,
    clients: usize,
    json: bool,
) -> anyhow::Result<()> {
    let worker_binary = sibling_binary("surge-worker")?;
    let scratch = tempfile::tempdir()?;
    let pipeline =
        dispatcher::bench::pipeline(scratch.path().join("pipeline"), worker_binary, jobs, workers, worker_concurrency)
            .await?;
    let upload = dispatcher::bench::uploads(scratch.path().join("uploads"), uploads, clients).await?;
    if json {
        println!("{}", serde_json::json!({ "pipeline": pipeline, "uploads": upload }));
        return Ok(());
    }
    println!(
        "job pipeline (embedded backend, durable, {} surge-worker processes x {} in flight)",
        workers, worker_concurrency
    );
    println!("  jobs              {}", pipeline.jobs);
    println!("  wall time         {:.2} s (enqueue done after {:.2} s)", pipeline.seconds, pipeline.enqueue_seconds);
    println!("  throughput        {:.0} jobs/s", pipeline.jobs_per_second);
    println!("  enqueue-to-done   p50 {:.1} ms, p99 {:.1} ms", pipeline.latency_p50_ms, pipeline.latency_p99_ms);
    println!("uploads (HTTP, {} concurrent clients, {} byte UBL invoice)", upload.clients, upload.document_bytes);
    println!("  uploads           {}", upload.uploads);
    println!("  throughput        {:.0} uploads/s", upload.uploads_per_second);
    println!("  latency           p50 {:.1} ms, p99 {:.1} ms", upload.latency_p50_ms, upload.latency_p99_ms);
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
