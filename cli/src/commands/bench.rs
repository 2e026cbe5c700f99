//! `surge bench`: measures the job pipeline, the upload path, replication and replay on a
//! scratch embedded backend, and prints the figures (no thresholds: machines are noisy).

use std::fmt;

use dispatcher::bench::{self, PipelineReport, ReplicationReport, UploadReport};
use serde::Serialize;
use shared::config::{Config, ReplicationMode};

use crate::binaries::sibling_binary;

#[derive(clap::Args)]
pub(crate) struct Args {
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
}

/// Everything one `surge bench` measured.
#[derive(Serialize)]
struct Figures {
    pipeline: PipelineReport,
    uploads: UploadReport,
    replication: ReplicationReport,
    #[serde(skip)]
    mode: ReplicationMode,
    #[serde(skip)]
    workers: usize,
    #[serde(skip)]
    worker_concurrency: usize,
}

pub(crate) async fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    let worker_binary = sibling_binary("surge-worker")?;
    let mode = config.replication.mode;
    let scratch = tempfile::tempdir()?;
    let pipeline = bench::pipeline(
        scratch.path().join("pipeline"),
        worker_binary,
        args.jobs,
        args.workers,
        args.worker_concurrency,
        mode,
    )
    .await?;
    let uploads = bench::uploads(scratch.path().join("uploads"), args.uploads, args.clients, mode).await?;
    let replication = bench::replication(scratch.path().join("replication"), args.uploads, args.clients).await?;
    let figures = Figures {
        pipeline,
        uploads,
        replication,
        mode,
        workers: args.workers,
        worker_concurrency: args.worker_concurrency,
    };
    if args.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        print!("{figures}");
    }
    Ok(())
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (pipeline, upload, mirrored, mode) = (&self.pipeline, &self.uploads, &self.replication, self.mode);
        writeln!(
            f,
            "job pipeline (embedded backend, durable, replication {mode:?}, {} surge-worker processes x {} in flight)",
            self.workers, self.worker_concurrency
        )?;
        writeln!(f, "  jobs              {}", pipeline.jobs)?;
        writeln!(
            f,
            "  wall time         {:.2} s (enqueue done after {:.2} s)",
            pipeline.seconds, pipeline.enqueue_seconds
        )?;
        writeln!(f, "  throughput        {:.0} jobs/s", pipeline.jobs_per_second)?;
        writeln!(
            f,
            "  enqueue-to-done   p50 {:.1} ms, p99 {:.1} ms",
            pipeline.latency_p50_ms, pipeline.latency_p99_ms
        )?;
        writeln!(
            f,
            "uploads (HTTP, {} concurrent clients, {} byte UBL invoice, replication {mode:?})",
            upload.clients, upload.document_bytes
        )?;
        writeln!(f, "  uploads           {}", upload.uploads)?;
        writeln!(f, "  throughput        {:.0} uploads/s", upload.uploads_per_second)?;
        writeln!(f, "  latency           p50 {:.1} ms, p99 {:.1} ms", upload.latency_p50_ms, upload.latency_p99_ms)?;
        writeln!(
            f,
            "replication (async, two embedded regions, the same uploads at {:.0}/s, {} shipping loops)",
            mirrored.uploads_per_second,
            dispatcher::recovery::ship::SHIPPERS
        )?;
        writeln!(f, "  changes shipped   {}", mirrored.changes_shipped)?;
        writeln!(
            f,
            "  lag               p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            mirrored.lag_p50_ms, mirrored.lag_p99_ms, mirrored.lag_max_ms
        )?;
        writeln!(f, "  outbox empty      {:.2} s after the last upload", mirrored.drained_after_secs)?;
        writeln!(
            f,
            "replay (failover path: every unfinished job re-enqueued)\n  jobs              {}\n  throughput        {:.0} jobs/s ({:.2} s)",
            mirrored.replayed_jobs, mirrored.replay_jobs_per_second, mirrored.replay_seconds
        )
    }
}
