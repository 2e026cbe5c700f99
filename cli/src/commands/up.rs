//! `surge up`: the API, the dispatcher and a pool of worker processes on this machine.

use std::net::SocketAddr;
use std::path::PathBuf;

use shared::config::Config;
use shared::telemetry;
use tokio_util::sync::CancellationToken;

use crate::binaries::sibling_binary;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (overrides `api.listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Worker processes for the small lane (overrides `pool.small_workers`).
    #[arg(long)]
    small_workers: Option<usize>,
    /// Worker processes for the large lane (overrides `pool.large_workers`).
    #[arg(long)]
    large_workers: Option<usize>,
}

pub(crate) async fn run(args: Args, mut config: Config, config_file: Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(listen) = args.listen {
        config.api.listen = listen;
    }
    if let Some(n) = args.small_workers {
        config.pool.small_workers = n;
    }
    if let Some(n) = args.large_workers {
        config.pool.large_workers = n;
    }
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
