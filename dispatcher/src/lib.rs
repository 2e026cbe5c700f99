//! Surge's decision server: the HTTP API, the dispatcher that moves jobs into lanes fairly, and
//! the local worker pool behind `surge up`.
//!
//! [`serve`] runs the API and the dispatcher on given backends; [`up`] adds the worker pool and
//! the first-start conveniences. Both are library functions so tests can start them.

mod admin;
mod api;
mod autoscale;
pub mod bench;
mod board;
mod doors;
mod error;
mod intake;
mod lifecycle;
mod openapi;
mod pool;
pub mod recovery;
pub mod running;
mod schedule;

pub use admin::{RollState, RollStatus};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use shared::backend::Backends;
use shared::config::Config;
use shared::domain::{Lane, TenantId};
use shared::ports::{ApiKey, ScaleTarget, TenantError};
use shared::region::Topology;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use scaling::ScalingConfig;

/// A pool the dispatcher resizes, and how.
pub struct Autoscaling {
    pub target: Arc<dyn ScaleTarget>,
    pub config: ScalingConfig,
}

/// Runs the API on `listener`, the dispatcher, the lost-worker watch and (when given) the
/// autoscaler until `shutdown`. The API stops accepting first; requests in progress finish.
pub async fn serve(
    config: &Config,
    topology: Topology,
    metrics: Option<PrometheusHandle>,
    listener: TcpListener,
    autoscaling: Option<Autoscaling>,
    pool: Option<Arc<pool::LocalPool>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let backends = topology.backends();
    let tasks = TaskTracker::new();
    let dispatcher_stop = shutdown.child_token();
    let lost_after = Duration::from_secs(config.dispatcher.worker_lost_after_secs);
    let load = schedule::LoadBoard::default();
    let workers_seen = schedule::WorkerBoard::default();
    let (alive_sender, alive) = tokio::sync::watch::channel(Vec::new());
    tasks.spawn(lifecycle::watch(backends.clone(), lost_after, alive_sender, dispatcher_stop.clone()));
    tasks.spawn(schedule::run(
        backends.clone(),
        config.lanes.clone(),
        config.dispatcher.clone(),
        load.clone(),
        workers_seen.clone(),
        dispatcher_stop.clone(),
    ));
    let board = board::SharedBoard::default();
    let workers = match (pool, &autoscaling) {
        (Some(pool), _) => admin::Workers::Local(pool),
        (None, Some(autoscaling)) => admin::Workers::Target(Arc::clone(&autoscaling.target)),
        (None, None) => admin::Workers::Elsewhere,
    };
    if let Some(Autoscaling { target, config: scaling }) = autoscaling {
        let boards = autoscale::Boards { load, workers: workers_seen, dashboard: board.clone() };
        let settings = autoscale::Settings { scaling, lanes: config.lanes.clone() };
        tasks.spawn(autoscale::run(target, settings, boards, alive, dispatcher_stop.clone()));
    }
    tasks.spawn(admin::export_maintenance(config.maintenance.clone(), dispatcher_stop.clone()));
    tasks.spawn(admin::export_queue_depths(backends.clone(), dispatcher_stop.clone()));
    let admin = admin::router(admin::AdminState::new(config.clone(), topology, backends.clone(), board, workers));
    let app = api::router(api::ApiState::new(backends, config.api.clone(), metrics)).merge(admin);
    let api_stop = shutdown.clone();
    let served = axum::serve(listener, app).with_graceful_shutdown(async move { api_stop.cancelled().await }).await;
    dispatcher_stop.cancel();
    tasks.close();
    tasks.wait().await;
    served
}

/// Creates `tenant` (if new) and a fresh API key for it.
pub async fn add_tenant(backends: &Backends, tenant: &TenantId) -> Result<ApiKey, TenantError> {
    backends.tenants.add_tenant(tenant).await?;
    let key = ApiKey::generate();
    backends.tenants.add_key(tenant, &key.hash()).await?;
    Ok(key)
}

/// What `surge up` needs beyond the config.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The `surge-worker` executable.
    pub worker_binary: PathBuf,
    /// Config file to hand to the workers, if any.
    pub config_file: Option<PathBuf>,
}

/// What `surge up` reports once it is listening.
pub struct Ready {
    pub address: std::net::SocketAddr,
    /// The key of the demo tenant created on first start.
    pub demo_key: Option<ApiKey>,
    /// The operator token for `/dashboard` and `/admin`.
    pub admin_token: String,
}

/// The admin token in `data_dir/admin-token`, if `surge up` created one there.
pub fn read_admin_token(data_dir: &std::path::Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(data_dir.join("admin-token")) {
        Ok(token) if token.trim().len() >= 16 => Ok(Some(token.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// The admin token kept in `data_dir/admin-token` (readable by its owner only), created on
/// first use: what `surge up` uses when `api.admin_token` is not set.
pub fn admin_token_in(data_dir: &std::path::Path) -> std::io::Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(token) = read_admin_token(data_dir)? {
        return Ok(token);
    }
    let path = data_dir.join("admin-token");
    std::fs::create_dir_all(data_dir)?;
    let token = format!("sa_{}", uuid::Uuid::new_v4().simple());
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
    file.write_all(token.as_bytes())?;
    Ok(token)
}

/// A local pool shares one machine: unless `[scaling.<lane>] max_workers` is set,
/// a lane may grow to twice the CPU count (at least its starting size), not to the cloud
/// default.
fn fit_to_this_machine(scaling: &mut ScalingConfig, config: &Config) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    for (lane, start) in [(Lane::Small, config.pool.small_workers), (Lane::Large, config.pool.large_workers)] {
        let lane_config = scaling.lane_mut(lane);
        if lane_config.max_workers.is_none() {
            lane_config.max_workers =
                Some(lane_config.ceiling().min((2 * cores).max(start)).max(lane_config.min_workers));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("invalid config: {0}")]
    Config(String),
    #[error(transparent)]
    Open(#[from] shared::backend::OpenError),
    #[error(transparent)]
    Region(#[from] shared::region::TopologyError),
    #[error("this region was demoted by a newer region epoch (a failover); restart to follow the active region")]
    Demoted,
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error("cannot listen on {address}: {source}")]
    Listen { address: std::net::SocketAddr, source: std::io::Error },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs everything on one machine: API, dispatcher and a pool of worker processes. On first
/// start (no tenants yet) it creates the `demo` tenant and reports its key through `on_ready`.
pub async fn up(
    mut config: Config,
    options: UpOptions,
    metrics: Option<PrometheusHandle>,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(Ready),
) -> Result<(), UpError> {
    let admin_token = match &config.api.admin_token {
        Some(token) => token.clone(),
        None => admin_token_in(&config.data_dir).map_err(|e| UpError::Config(format!("admin token: {e}")))?,
    };
    config.api.admin_token = Some(admin_token.clone());
    let topology = Topology::open(&config).await?;
    tracing::info!(
        active = %topology.active(),
        epoch = topology.epoch.epoch,
        replication = ?topology.effective_mode(),
        "regions resolved"
    );
    let demo_key = first_start(&topology.backends()).await?;
    let listener = TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| UpError::Listen { address: config.api.listen, source })?;
    let address = listener.local_addr().map_err(UpError::Serve)?;
    on_ready(Ready { address, demo_key, admin_token });

    // The pool stops with everything else: on a terminal's Ctrl-C the workers got SIGINT too and
    // are already draining; they must not be restarted.
    let pool_stop = shutdown.child_token();
    let pool = Arc::new(pool::LocalPool::start(pool_spec(&config, options)));
    let supervisor = {
        let pool = Arc::clone(&pool);
        let stop = pool_stop.clone();
        tokio::spawn(async move { pool.supervise(stop).await })
    };
    let autoscaling = autoscaling(&config, &pool).await;
    let check_every = Duration::from_millis(config.replication.check_every_ms);
    let fenced = topology.fence(check_every, &shutdown);
    let serving = shutdown.child_token();
    let background = TaskTracker::new();
    background.spawn(recovery::ship::run(topology.clone(), check_every, serving.clone()));
    background.spawn(backup_schedule(config.clone(), topology.clone(), serving.clone()));
    background.spawn(stop_when_fenced(fenced.clone(), serving.clone()));
    let local_pool = config.pool.ecs.is_none().then(|| Arc::clone(&pool));
    let served = serve(&config, topology, metrics, listener, autoscaling, local_pool, serving.clone()).await;
    serving.cancel();
    pool_stop.cancel();
    let _ = supervisor.await;
    background.close();
    background.wait().await;
    served.map_err(UpError::Serve)?;
    if fenced.is_cancelled() && !shutdown.is_cancelled() {
        return Err(UpError::Demoted);
    }
    Ok(())
}

/// On first start (no tenants yet) creates the `demo` tenant and returns its key.
async fn first_start(backends: &Backends) -> Result<Option<ApiKey>, UpError> {
    if !backends.tenants.list_tenants().await?.is_empty() {
        return Ok(None);
    }
    let demo: TenantId = "demo".parse().map_err(|_| UpError::Config("the demo tenant's name".into()))?;
    Ok(Some(add_tenant(backends, &demo).await?))
}

/// The local pool of `surge-worker` processes: empty on ECS, where the workers are the
/// services' tasks.
fn pool_spec(config: &Config, options: UpOptions) -> pool::PoolSpec {
    let mut args = vec!["--data-dir".to_owned(), config.data_dir.display().to_string()];
    if let Some(file) = &options.config_file {
        args.extend(["--config".to_owned(), file.display().to_string()]);
    }
    let (small, large) = match config.pool.ecs {
        Some(_) => (0, 0),
        None => (config.pool.small_workers, config.pool.large_workers),
    };
    pool::PoolSpec {
        binary: options.worker_binary,
        args,
        env: Vec::new(),
        sizes: vec![(Lane::Small, small), (Lane::Large, large)],
        drain_timeout: Duration::from_secs(config.worker.drain_timeout_secs),
    }
}

/// What the autoscaler resizes, if it is on: the ECS services, or the local pool (capped to
/// this machine).
async fn autoscaling(config: &Config, pool: &Arc<pool::LocalPool>) -> Option<Autoscaling> {
    if !config.pool.autoscale {
        return None;
    }
    let mut scaling = config.scaling.clone();
    let target: Arc<dyn ScaleTarget> = match &config.pool.ecs {
        Some(ecs) => {
            tracing::info!(cluster = %ecs.cluster, small = %ecs.small_service, large = %ecs.large_service, "scaling ECS services");
            Arc::new(shared::aws::EcsScaleTarget::connect(ecs).await)
        }
        None => {
            fit_to_this_machine(&mut scaling, config);
            pool.clone()
        }
    };
    Some(Autoscaling { target, config: scaling })
}

/// Stops serving as soon as this region is fenced by a newer epoch.
async fn stop_when_fenced(fenced: CancellationToken, serving: CancellationToken) {
    tokio::select! {
        _ = fenced.cancelled() => serving.cancel(),
        _ = serving.cancelled() => {}
    }
}

/// Takes a backup every `backup.every_secs` (the first one after one period), of the regions
/// the server already has open.
async fn backup_schedule(config: Config, topology: Topology, stop: CancellationToken) {
    if config.backup.every_secs == 0 || config.secondary_region().is_none() {
        return;
    }
    let period = Duration::from_secs(config.backup.every_secs);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        match recovery::backup::create(&topology, &config.backup).await {
            Ok(manifest) => tracing::info!(backup = %manifest.id, jobs = manifest.jobs, "backup created"),
            Err(err) => {
                metrics::counter!(shared::series::BACKUP_FAILURES_TOTAL).increment(1);
                tracing::error!(error = %err, "scheduled backup failed");
            }
        }
    }
}
