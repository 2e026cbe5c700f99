//! `surge-worker`: runs a worker process, extracts one local file for inspection, or measures
//! extraction accuracy over a folder of documents with ground truth.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use shared::chart::Chart;
use shared::config::Config;
use shared::domain::Lane;
use shared::telemetry::{self, LogFormat};
use tokio_util::sync::CancellationToken;
use worker::extract::ExtractOptions;
use worker::limits::Limits;
use worker::local_file::extract_local_file;
use worker::protection::{AGENT_URI_VAR, ProtectionSettings};
use worker::run::WorkerOptions;

#[derive(Parser)]
#[command(name = "surge-worker", version, about = "Surge worker: turns invoices into booking proposals")]
struct Cli {
    /// Configuration file (TOML); `SURGE_*` environment variables override it.
    #[arg(long, global = true, env = "SURGE_CONFIG")]
    config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Process jobs from the lanes until SIGINT/SIGTERM, then drain.
    Run {
        /// Data directory of the embedded backend (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Lane to serve; repeat for several, highest priority first.
        #[arg(long = "lane", default_value = "small")]
        lanes: Vec<String>,
        /// Adds this many milliseconds to every job (demonstrations and crash tests).
        #[arg(long, default_value_t = 0, hide = true)]
        debug_delay_ms: u64,
        /// What a job does: `extract`, or `sleep:DURATION` (e.g. `sleep:200ms`), a synthetic
        /// job of a fixed duration for benchmarks and scaling tests (overrides
        /// `worker.processor`).
        #[arg(long)]
        processor: Option<shared::config::Processor>,
    },
    /// Print the booking proposal for a local file as JSON, through the worker's own code.
    Extract {
        file: PathBuf,
        /// Media type; guessed from the file extension when absent.
        #[arg(long)]
        content_type: Option<String>,
        #[command(flatten)]
        reading: ReadingArgs,
    },
    /// Extract every document under DIR that has a ground truth beside it (`X.cii.xml` or
    /// invoice2data's `X.json`) and print per-field and overall accuracy.
    Eval {
        dir: PathBuf,
        /// Print the full report as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reading: ReadingArgs,
    },
}

/// How documents are read by `extract` and `eval`.
#[derive(clap::Args)]
struct ReadingArgs {
    /// Read a PDF's visible text even when it embeds an e-invoice (Factur-X, ZUGFeRD).
    #[arg(long)]
    ignore_embedded: bool,
    /// Wall-clock budget per document, in seconds.
    #[arg(long, default_value_t = 110)]
    time_budget_secs: u64,
    /// Memory budget of each external tool (pdftotext, tesseract, ...), in MiB.
    #[arg(long, default_value_t = 1536)]
    memory_mib: u64,
}

impl ReadingArgs {
    fn options(&self) -> ExtractOptions {
        ExtractOptions {
            ignore_embedded: self.ignore_embedded,
            limits: Limits {
                time: Duration::from_secs(self.time_budget_secs),
                memory_bytes: self.memory_mib * 1024 * 1024,
                ..Limits::default()
            },
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let env = Config::process_env();
    let filter = env.get("SURGE_LOG").cloned().unwrap_or_else(|| "info".to_owned());
    telemetry::init_tracing(cli.log_format, &filter);
    match cli.command {
        Command::Extract { file, content_type, reading } => {
            let proposal = extract_local_file(&file, content_type.as_deref(), &reading.options())?;
            print(&serde_json::to_string_pretty(&proposal)?);
            Ok(())
        }
        Command::Eval { dir, json, reading } => {
            let report = worker::eval::evaluate(&dir, &reading.options())?;
            print(&if json { serde_json::to_string_pretty(&report)? } else { report.table() });
            Ok(())
        }
        Command::Run { data_dir, lanes, debug_delay_ms, processor } => {
            let mut config = Config::load(cli.config.as_deref(), &env)?;
            if let Some(data_dir) = data_dir {
                config.data_dir = data_dir;
            }
            if let Some(processor) = processor {
                config.worker.processor = processor;
            }
            let lanes = lanes
                .iter()
                .map(|l| l.parse::<Lane>().map_err(|_| anyhow::anyhow!("unknown lane {l:?}; expected small or large")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let protection = std::env::var(AGENT_URI_VAR)
                .ok()
                .and_then(|uri| ProtectionSettings::new(uri, config.worker.scale_in_protection_minutes));
            let options = WorkerOptions {
                lanes,
                chart: Chart::default(),
                debug_delay: Duration::from_millis(debug_delay_ms.max(config.worker.debug_delay_ms)),
                protection,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(config.worker.cpu_threads + 8)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let shutdown = CancellationToken::new();
                tokio::spawn(telemetry::cancel_on_signal(shutdown.clone()));
                worker::run::run_in_active_region(&config, options, shutdown).await
            })?;
            Ok(())
        }
    }
}

/// Prints a command's output.
#[allow(clippy::print_stdout)] // This is the CLI: stdout is its output.
fn print(output: &str) {
    println!("{output}");
}
