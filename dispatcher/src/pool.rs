//! A pool of local `surge-worker` processes: started, restarted when they die, drained on stop.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use shared::domain::Lane;
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
    /// Worker processes per lane.
    pub sizes: Vec<(Lane, usize)>,
    /// How long a worker may take to drain after SIGTERM before it is killed.
    pub drain_timeout: Duration,
}

struct Slot {
    lane: Lane,
    child: Option<Child>,
    /// Restarts back off so a worker that dies at start does not spin.
    restart_delay: Duration,
}

/// Runs the pool until `shutdown`, then drains every worker: SIGTERM, wait, SIGKILL only after
/// the drain timeout (a drained worker has handed its jobs back, so nothing is lost).
pub async fn run(spec: PoolSpec, shutdown: CancellationToken) {
    let mut slots: Vec<Slot> = spec
        .sizes
        .iter()
        .flat_map(|&(lane, n)| (0..n).map(move |_| Slot { lane, child: None, restart_delay: Duration::ZERO }))
        .collect();
    if slots.is_empty() {
        shutdown.cancelled().await;
        return;
    }
    for slot in &mut slots {
        slot.child = start(&spec, slot.lane);
    }
    let mut checks = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = checks.tick() => {}
        }
        for slot in &mut slots {
            if shutdown.is_cancelled() {
                break;
            }
            let exited = match slot.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(err)) => Some(err.to_string()),
                None => Some("not running".to_owned()),
            };
            if let Some(status) = exited {
                warn!(lane = %slot.lane, %status, delay_ms = slot.restart_delay.as_millis() as u64, "worker exited; restarting");
                tokio::time::sleep(slot.restart_delay).await;
                slot.restart_delay =
                    (slot.restart_delay * 2).clamp(Duration::from_millis(500), Duration::from_secs(30));
                slot.child = start(&spec, slot.lane);
            }
        }
    }
    drain(&mut slots, spec.drain_timeout).await;
}

fn start(spec: &PoolSpec, lane: Lane) -> Option<Child> {
    let mut command = Command::new(&spec.binary);
    command
        .arg("run")
        .args(&spec.args)
        .args(["--lane", lane.as_str()])
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    match command.spawn() {
        Ok(child) => {
            info!(%lane, pid = child.id(), "worker started");
            metrics::counter!("surge_worker_starts_total", "lane" => lane.as_str()).increment(1);
            Some(child)
        }
        Err(err) => {
            warn!(binary = %spec.binary.display(), error = %err, "cannot start worker");
            None
        }
    }
}

async fn drain(slots: &mut [Slot], timeout: Duration) {
    for slot in slots.iter() {
        if let Some(pid) = slot.child.as_ref().and_then(Child::id)
            && let Ok(pid) = i32::try_from(pid)
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    info!(workers = slots.len(), "draining workers");
    for slot in slots.iter_mut() {
        let Some(child) = slot.child.as_mut() else { continue };
        match tokio::time::timeout(timeout + Duration::from_secs(5), child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                warn!(lane = %slot.lane, "worker did not drain in time; killing it");
                let _ = child.kill().await;
            }
        }
    }
}
