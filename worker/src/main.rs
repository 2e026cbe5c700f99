//! `surge-worker`: runs a worker process, extracts one local file for inspection, or measures
//! extraction accuracy over a folder of documents with ground truth.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use shared::config::Config;
use shared::domain::{DocumentType, Lane};
use shared::region::Topology;
use shared::telemetry::{self, LogFormat};
use tokio_util::sync::CancellationToken;
use worker::booking::Chart;
use worker::extract::{ExtractOptions, Limits};
use worker::protection::ProtectionSettings;
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

fn guess_type(path: &std::path::Path) -> Option<DocumentType> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    let media_type = match extension.as_str() {
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "tif" | "tiff" => "image/tiff",
        _ => return None,
    };
    DocumentType::from_media_type(media_type)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let env = Config::process_env();
    let filter = env.get("SURGE_LOG").cloned().unwrap_or_else(|| "info".to_owned());
    telemetry::init_tracing(cli.log_format, &filter);
    match cli.command {
        Command::Extract { file, content_type, reading } => {
            let document_type = match content_type {
                Some(media_type) => DocumentType::from_media_type(&media_type)
                    .with_context(|| format!("unsupported content type {media_type}"))?,
                None => guess_type(&file)
                    .with_context(|| format!("cannot tell the type of {}; pass --content-type", file.display()))?,
            };
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let proposal = worker::extract::extract_with(&bytes, document_type, &Chart::default(), &reading.options())
                .with_context(|| format!("cannot extract {}", file.display()))?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string_pretty(&proposal)?);
            }
            Ok(())
        }
        Command::Eval { dir, json, reading } => {
            let report = worker::eval::evaluate(&dir, &reading.options())?;
            let output = if json { serde_json::to_string_pretty(&report)? } else { report.table() };
            #[allow(clippy::print_stdout)]
            {
                println!("{output}");
            }
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
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(config.worker.cpu_threads + 8)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let topology = Topology::open(&config).await?;
                let backends = topology.backends();
                let shutdown = CancellationToken::new();
                tokio::spawn(telemetry::cancel_on_signal(shutdown.clone()));
                // A demoted region's worker stops taking jobs as soon as it sees the newer epoch.
                let fenced = topology.fence(Duration::from_millis(config.replication.check_every_ms), &shutdown);
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    fenced.cancelled().await;
                    stop.cancel();
                });
                let protection = std::env::var(worker::protection::AGENT_URI_VAR)
                    .ok()
                    .and_then(|uri| ProtectionSettings::new(uri, config.worker.scale_in_protection_minutes));
                let options = WorkerOptions {
                    lanes,
                    chart: Chart::default(),
                    debug_delay: Duration::from_millis(debug_delay_ms.max(config.worker.debug_delay_ms)),
                    protection,
                };
                worker::run::run(backends, config.worker.clone(), options, shutdown).await?;
                Ok(())
            })
        }
    }
}
