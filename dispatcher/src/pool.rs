//! The local scale target: `surge-worker` processes on this machine, started on demand, drained
//! (never killed) when no longer needed, restarted when they crash.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use shared::domain::Lane;
use shared::ports::{PoolSize, ScaleError, ScaleTarget, WorkerBeat, WorkerRegistry};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How to start the workers.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// The `surge-worker` executable.
    pub binary: PathBuf,
    /// Arguments every worker gets after `run` (data dir, config file).
    pub args: Vec<String>,
    /// Extra environment for the workers.
    pub env: Vec<(String, String)>,
    /// Worker processes per lane at start.
    pub sizes: Vec<(Lane, usize)>,
    /// How long a worker may take to drain after SIGTERM before it is killed on shutdown.
    pub drain_timeout: Duration,
}

struct Process {
    child: Child,
    pid: u32,
    /// Asked to drain: it exits on its own once its jobs are done or handed back.
    draining: bool,
}

/// Worker processes per lane. A std mutex: held only to start, signal or reap processes, never
/// across an await.
#[derive(Default)]
struct Processes {
    by_lane: BTreeMap<Lane, Vec<Process>>,
    desired: BTreeMap<Lane, usize>,
}

/// A pool of local `surge-worker` processes; a [`ScaleTarget`].
pub struct LocalPool {
    spec: PoolSpec,
    processes: Mutex<Processes>,
}

impl LocalPool {
    /// Creates the pool and starts the initial workers of `spec.sizes`.
    pub fn start(spec: PoolSpec) -> LocalPool {
        let pool = LocalPool { spec, processes: Mutex::default() };
        for &(lane, n) in &pool.spec.sizes {
            let mut processes = pool.lock();
            processes.desired.insert(lane, n);
            for _ in 0..n {
                pool.spawn_into(&mut processes, lane);
            }
        }
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Processes> {
        self.processes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a worker for `lane`; returns its pid.
    fn spawn_into(&self, processes: &mut Processes, lane: Lane) -> Option<u32> {
        let mut command = Command::new(&self.spec.binary);
        command
            .arg("run")
            .args(&self.spec.args)
            .args(["--lane", lane.as_str()])
            .envs(self.spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match command.spawn() {
            Ok(child) => {
                let pid = child.id().unwrap_or_default();
                info!(%lane, pid, "worker started");
                metrics::counter!(shared::series::WORKER_STARTS_TOTAL, "lane" => lane.as_str()).increment(1);
                processes.by_lane.entry(lane).or_default().push(Process { child, pid, draining: false });
                Some(pid)
            }
            Err(err) => {
                warn!(binary = %self.spec.binary.display(), error = %err, "cannot start worker");
                None
            }
        }
    }

    /// Reaps exited workers and replaces crashed ones (not drained ones) up to the desired count,
    /// every 250 ms until `shutdown`; then drains every worker: SIGTERM, wait, SIGKILL only after
    /// the drain timeout (a drained worker has handed its jobs back, so nothing is lost).
    pub async fn supervise(&self, shutdown: CancellationToken) {
        let mut checks = tokio::time::interval(Duration::from_millis(250));
        let mut restart_delay = Duration::ZERO;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = checks.tick() => {}
            }
            let crashed = self.reap();
            if crashed > 0 {
                warn!(crashed, delay_ms = restart_delay.as_millis() as u64, "workers exited unasked; replacing them");
                tokio::time::sleep(restart_delay).await;
                restart_delay = (restart_delay * 2).clamp(Duration::from_millis(500), Duration::from_secs(30));
            } else {
                restart_delay = Duration::ZERO;
            }
            self.top_up();
        }
        self.drain_all().await;
    }

    /// Forgets exited processes; returns how many exited without being asked to.
    fn reap(&self) -> usize {
        let mut processes = self.lock();
        let mut crashed = 0;
        for (lane, list) in processes.by_lane.iter_mut() {
            list.retain_mut(|process| match process.child.try_wait() {
                Ok(None) => true,
                Ok(Some(status)) => {
                    if !process.draining {
                        warn!(%lane, pid = process.pid, %status, "worker exited");
                        crashed += 1;
                    }
                    false
                }
                Err(_) => false,
            });
        }
        crashed
    }

    fn top_up(&self) {
        let mut processes = self.lock();
        let lanes: Vec<(Lane, usize)> = processes.desired.iter().map(|(&lane, &n)| (lane, n)).collect();
        for (lane, desired) in lanes {
            let active = active(&processes, lane);
            for _ in active..desired {
                self.spawn_into(&mut processes, lane);
            }
        }
    }

    async fn drain_all(&self) {
        let mut children: Vec<(Lane, Child)> = {
            let mut processes = self.lock();
            std::mem::take(&mut processes.by_lane)
                .into_iter()
                .flat_map(|(lane, list)| list.into_iter().map(move |p| (lane, p.child)))
                .collect()
        };
        for (_, child) in &children {
            terminate(child.id());
        }
        info!(workers = children.len(), "draining workers");
        for (lane, child) in &mut children {
            if tokio::time::timeout(self.spec.drain_timeout + Duration::from_secs(5), child.wait()).await.is_err() {
                warn!(%lane, "worker did not drain in time; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

/// How a roll went so far (`surge workers roll`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RollProgress {
    /// Workers to replace (those running when the roll started).
    pub total: usize,
    pub replaced: usize,
    pub batch: usize,
    /// What the roll is doing now.
    pub phase: RollPhase,
}

/// What a roll is doing now; operators read it as a sentence (`Display`), e.g. "batch 2/3:
/// waiting for 1 new worker(s) to beat".
#[derive(Debug, Clone, Default, PartialEq)]
pub enum RollPhase {
    #[default]
    Starting,
    /// New workers of batch `batch` (1-based) of `batches` started; waiting for their beats.
    WaitingForBeats {
        batch: usize,
        batches: usize,
        workers: usize,
    },
    /// The batch's new workers beat; its old ones are draining.
    Draining {
        batch: usize,
        batches: usize,
        workers: usize,
    },
    Done,
    /// A scale target that rolls itself (ECS) started new deployments.
    Redeploying {
        target: &'static str,
        started: Vec<String>,
    },
}

impl std::fmt::Display for RollPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollPhase::Starting => f.write_str("starting"),
            RollPhase::WaitingForBeats { batch, batches, workers } => {
                write!(f, "batch {batch}/{batches}: waiting for {workers} new worker(s) to beat")
            }
            RollPhase::Draining { batch, batches, workers } => {
                write!(f, "batch {batch}/{batches}: draining {workers} old worker(s)")
            }
            RollPhase::Done => f.write_str("done"),
            RollPhase::Redeploying { target, started } => write!(f, "{target} redeploying: {}", started.join("; ")),
        }
    }
}

impl Serialize for RollPhase {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why a roll stopped early. The workers it had not reached keep running.
#[derive(Debug, thiserror::Error)]
pub enum RollError {
    #[error("a new worker (pid {pid}) sent no heartbeat within {secs} s; the old ones were left running")]
    Unhealthy { pid: u32, secs: u64 },
    #[error("a new worker could not be started; the old ones were left running")]
    NotStarted,
    #[error("the worker registry is unavailable: {0}")]
    Registry(String),
}

/// How long a new worker has to send its first heartbeat.
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);

impl LocalPool {
    /// Replaces every running worker, `batch` at a time: starts as many new ones (from the
    /// binary on disk now, so a rebuilt `surge-worker` is picked up), waits until each has
    /// sent a heartbeat, then drains the old ones of the batch (SIGTERM: they stop receiving,
    /// finish or hand back their jobs, exit) and waits for them to go. Capacity never drops
    /// below what it was, and no busy worker is killed.
    pub async fn roll(
        &self,
        batch: usize,
        registry: &dyn WorkerRegistry,
        progress: &(dyn Fn(RollProgress) + Sync),
    ) -> Result<RollProgress, RollError> {
        let batch = batch.max(1);
        let old: Vec<(Lane, u32)> = {
            let processes = self.lock();
            processes
                .by_lane
                .iter()
                .flat_map(|(&lane, list)| list.iter().filter(|p| !p.draining).map(move |p| (lane, p.pid)))
                .collect()
        };
        let mut done = RollProgress { total: old.len(), batch, ..RollProgress::default() };
        let batches = old.len().div_ceil(batch);
        for (n, chunk) in old.chunks(batch).enumerate() {
            let started: Vec<u32> = {
                let mut processes = self.lock();
                let mut started = Vec::new();
                for &(lane, _) in chunk {
                    if let Some(pid) = self.spawn_into(&mut processes, lane) {
                        started.push(pid);
                    }
                }
                started
            };
            if started.len() < chunk.len() {
                return Err(RollError::NotStarted);
            }
            done.phase = RollPhase::WaitingForBeats { batch: n + 1, batches, workers: started.len() };
            progress(done.clone());
            let deadline = Instant::now() + HEALTHY_WITHIN;
            loop {
                let beating: Vec<u32> = registry
                    .list()
                    .await
                    .map_err(|e| RollError::Registry(e.to_string()))?
                    .into_iter()
                    .map(|beat| beat.pid)
                    .collect();
                match started.iter().find(|pid| !beating.contains(pid)) {
                    None => break,
                    Some(&pid) if Instant::now() > deadline => {
                        return Err(RollError::Unhealthy { pid, secs: HEALTHY_WITHIN.as_secs() });
                    }
                    Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            done.phase = RollPhase::Draining { batch: n + 1, batches, workers: chunk.len() };
            progress(done.clone());
            {
                let mut processes = self.lock();
                for &(lane, pid) in chunk {
                    let list = processes.by_lane.entry(lane).or_default();
                    if let Some(process) = list.iter_mut().find(|p| p.pid == pid && !p.draining) {
                        info!(%lane, pid, "rolling: draining old worker");
                        process.draining = true;
                        terminate(Some(pid));
                    }
                }
            }
            // The supervisor reaps them as they exit; wait until they are gone.
            let deadline = Instant::now() + self.spec.drain_timeout + Duration::from_secs(10);
            while chunk.iter().any(|&(lane, pid)| self.holds(lane, pid)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            done.replaced += chunk.len();
            progress(done.clone());
        }
        done.phase = RollPhase::Done;
        Ok(done)
    }

    fn holds(&self, lane: Lane, pid: u32) -> bool {
        self.lock().by_lane.get(&lane).is_some_and(|list| list.iter().any(|p| p.pid == pid))
    }
}

fn active(processes: &Processes, lane: Lane) -> usize {
    processes.by_lane.get(&lane).map_or(0, |list| list.iter().filter(|p| !p.draining).count())
}

/// Scales in by draining idle workers only (SIGTERM: the worker stops receiving and exits); a
/// busy worker is never asked to go. If fewer are idle than asked for, the rest go as they run
/// out of work ([`ScaleTarget::retire_idle`] on later decisions).
fn retire(processes: &mut Processes, lane: Lane, desired: usize, idle: &[WorkerBeat]) {
    let mut excess = active(processes, lane).saturating_sub(desired);
    let list = processes.by_lane.entry(lane).or_default();
    for beat in idle {
        if excess == 0 {
            break;
        }
        if let Some(process) = list.iter_mut().find(|p| p.pid == beat.pid && !p.draining) {
            info!(%lane, pid = process.pid, "draining idle worker");
            process.draining = true;
            terminate(Some(process.pid));
            excess -= 1;
        }
    }
}

fn terminate(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|pid| i32::try_from(pid).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

#[async_trait]
impl ScaleTarget for LocalPool {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn observe(&self, lane: Lane) -> Result<PoolSize, ScaleError> {
        let processes = self.lock();
        Ok(PoolSize {
            desired: processes.desired.get(&lane).copied().unwrap_or(0),
            running: active(&processes, lane),
            pending: 0,
        })
    }

    async fn set_desired(&self, lane: Lane, desired: usize, idle: &[WorkerBeat]) -> Result<(), ScaleError> {
        let mut processes = self.lock();
        processes.desired.insert(lane, desired);
        let running = active(&processes, lane);
        if desired > running {
            for _ in running..desired {
                self.spawn_into(&mut processes, lane);
            }
            return Ok(());
        }
        retire(&mut processes, lane, desired, idle);
        Ok(())
    }

    async fn retire_idle(&self, lane: Lane, desired: usize, idle: &[WorkerBeat]) -> Result<(), ScaleError> {
        retire(&mut self.lock(), lane, desired, idle);
        Ok(())
    }
}
