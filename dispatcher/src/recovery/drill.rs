//! `surge drill`: a disaster-recovery rehearsal in one command. It runs Surge (`surge up` child
//! processes), uploads a load, loses the primary in the middle (its processes SIGKILLed, its
//! storage made unreachable), fails over, finishes the load in the secondary, fails back, and
//! checks that every accepted job has exactly one result and every document and result is
//! byte-identical in both regions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use shared::backend::Backends;
use shared::config::{Config, RegionConfig};
use shared::domain::{JobId, JobStatus, TenantId};
use shared::ports::ApiKey;
use shared::region::{RegionName, Topology};
use tokio::process::{Child, Command};

use crate::running::RunningDeployment;

use super::{FailbackReport, FailoverReport, RecoveryError, Rpo, failback, failed, failover};

/// What to rehearse with.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub jobs: usize,
    pub tenants: Vec<TenantId>,
    /// The `surge` executable to run as the deployment.
    pub surge_binary: PathBuf,
    /// Longest wait for the load to finish in each region.
    pub timeout: Duration,
}

/// The drill's findings.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub passed: bool,
    pub data_dir: PathBuf,
    /// Which deployment lost its primary: one the drill started, or the one running there.
    pub deployment: String,
    pub tenants: usize,
    pub jobs_accepted: u64,
    /// Accepted before the primary was lost.
    pub accepted_before_loss: u64,
    /// Of those, finished in the primary before it was lost.
    pub completed_before_loss: u64,
    pub replication_mode: shared::config::ReplicationMode,
    pub jobs_completed: u64,
    pub jobs_lost: u64,
    pub jobs_duplicated: u64,
    pub checksum_mismatches: u64,
    /// The first mismatched keys: missing or different in the secondary, or a document whose
    /// checksum differs from its job record's.
    pub mismatched_keys: Vec<String>,
    pub rpo: Rpo,
    /// From the failover command to the first job completed in the secondary.
    pub rto_secs: Option<f64>,
    pub failover: FailoverReport,
    pub failback: FailbackReport,
    pub seconds: f64,
}

impl DrillReport {
    /// A readable summary.
    pub fn summary(&self) -> String {
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let rpo = match (self.rpo.changes, self.rpo.oldest_secs) {
            (Some(0), _) => "0 changes lost".to_owned(),
            (Some(n), Some(age)) => format!("{n} changes, oldest {age:.1} s ({})", self.rpo.source),
            (Some(n), None) => format!("{n} changes ({})", self.rpo.source),
            (None, _) => format!("unknown ({})", self.rpo.source),
        };
        let rto = self.rto_secs.map_or("no job completed".to_owned(), |s| format!("{s:.3} s"));
        format!(
            "drill {verdict} in {:.1} s ({})\n\
             deployment           {}\n\
             tenants              {}\n\
             replication          {:?}\n\
             jobs accepted        {} ({} before the primary was lost, {} of them done there)\n\
             jobs completed       {}\n\
             jobs lost            {}\n\
             jobs duplicated      {}\n\
             checksum mismatches  {}\n\
             RPO                  {rpo}\n\
             RTO                  {rto} (failover to first job completed in the secondary)\n\
             failover             epoch {}, {} jobs replayed, {} results adopted, old region fenced: {}\n\
             failback             epoch {}, {} jobs and {} objects copied back, {} jobs replayed, {:.1} s\n",
            self.seconds,
            self.data_dir.display(),
            self.deployment,
            self.tenants,
            self.replication_mode,
            self.jobs_accepted,
            self.accepted_before_loss,
            self.completed_before_loss,
            self.jobs_completed,
            self.jobs_lost,
            self.jobs_duplicated,
            self.checksum_mismatches,
            self.failover.epoch,
            self.failover.replay.replayed,
            self.failover.replay.adopted_results,
            self.failover.old_region_fenced,
            self.failback.epoch,
            self.failback.resync.jobs_copied + self.failback.catch_up.jobs_copied,
            self.failback.resync.blobs_copied + self.failback.catch_up.blobs_copied,
            self.failback.replay.replayed,
            self.failback.seconds,
        )
    }
}

/// One upload the deployment acknowledged.
#[derive(Debug, Clone)]
struct Accepted {
    id: JobId,
}

/// Runs the drill against the regions `config` names. With the default embedded regions the
/// data directory should be fresh or belong to no running deployment.
///
/// The drill is the one operator function that takes the configuration rather than open
/// regions: it starts deployments of its own and makes the primary unreachable by rewriting
/// where the configuration says it is.
pub async fn run(config: &Config, options: &DrillOptions) -> Result<DrillReport, RecoveryError> {
    let started = Instant::now();
    let (config, healthy_file) = prepare(config)?;
    let topology = Topology::open(&config).await?;
    if topology.active() != RegionName::Primary {
        return Err(RecoveryError::Failed(
            "the drill starts from the primary region; run `surge failback` first".into(),
        ));
    }
    let backends = topology.backends();
    let keys = add_tenants(&backends, &options.tenants).await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(failed)?;
    let documents: Vec<(usize, Bytes)> = (0..options.jobs).map(|i| (i, drill_invoice(&run_id, i))).collect();
    let (first, second) = documents.split_at(options.jobs / 2);

    // 1. Load on the primary: the deployment running on this data directory, or one of ours.
    let (running, mut own, url) = load_target(&client, &config, options, &healthy_file).await?;
    let mut accepted = upload(&client, &url, &keys, &run_id, first).await?;
    let accepted_before_loss = accepted.len() as u64;
    // Lose it in the middle of the work: once about a third of what it accepted is done.
    let completed_before_loss = wait_for(&backends, &accepted, accepted.len() / 3, options.timeout).await?;

    // 2. Lose the primary: processes killed, storage unreachable.
    match (&mut own, &running) {
        (Some(deployment), _) => deployment.kill(),
        (None, Some(running)) => kill_running(running, &backends).await,
        (None, None) => {}
    }
    drop(own);
    let lost = make_primary_unreachable(&config)?;

    // 3. Fail over and finish the load in the secondary.
    let load = Load { client: &client, keys: &keys, run_id: &run_id, documents: second };
    let (failover_report, rto_secs) = fail_over(&lost, &load, &mut accepted, options).await?;

    // 4. The primary comes back: fail back, finish there.
    lost.restore()?;
    let back = fail_back(&config, &healthy_file, running.as_ref(), &accepted, options).await?;

    // 5. Check.
    let checked = check(&back.primary, &back.secondary, &accepted).await?;
    let duplicated = duplicates(&back.primary, &options.tenants, &run_id).await?;
    Ok(DrillReport {
        passed: checked.lost == 0 && duplicated == 0 && checked.mismatches == 0,
        data_dir: config.data_dir.clone(),
        deployment: describe_deployment(running.as_ref(), back.restarted, &config.data_dir),
        tenants: options.tenants.len(),
        jobs_accepted: accepted.len() as u64,
        accepted_before_loss,
        completed_before_loss: completed_before_loss as u64,
        replication_mode: topology.effective_mode(),
        jobs_completed: checked.completed,
        jobs_lost: checked.lost,
        jobs_duplicated: duplicated,
        checksum_mismatches: checked.mismatches,
        mismatched_keys: checked.mismatched_keys,
        rpo: failover_report.rpo.clone(),
        rto_secs,
        failover: failover_report,
        failback: back.report,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The drill's configuration (no autoscaling, no scheduled backups), written where the
/// deployments it starts read it.
fn prepare(config: &Config) -> Result<(Config, PathBuf), RecoveryError> {
    if config.secondary_region().is_none() {
        return Err(super::RecoveryError::NoSecondRegion);
    }
    std::fs::create_dir_all(&config.data_dir).map_err(failed)?;
    let mut config = config.clone();
    config.pool.autoscale = false;
    config.backup.every_secs = 0;
    let file = write_config(&config, &config.data_dir.join("drill.toml"))?;
    Ok((config, file))
}

/// The second half of the load, uploaded after the failover.
struct Load<'a> {
    client: &'a reqwest::Client,
    keys: &'a [(TenantId, ApiKey)],
    run_id: &'a str,
    documents: &'a [(usize, Bytes)],
}

/// Fails over to the secondary, starts a deployment there, uploads the rest of the load and
/// waits for the secondary to finish what it has. Returns the failover and the RTO.
async fn fail_over(
    lost: &LostPrimary,
    load: &Load<'_>,
    accepted: &mut Vec<Accepted>,
    options: &DrillOptions,
) -> Result<(FailoverReport, Option<f64>), RecoveryError> {
    let lost_file = write_config(&lost.config, &lost.config.data_dir.join("drill-primary-lost.toml"))?;
    let failover_at = Utc::now();
    let topology = Topology::open_any(&lost.config).await?;
    let report = failover(&topology, RegionName::Secondary, "drill: primary lost", &|_| {}).await?;
    let mut deployment = Deployment::start(&options.surge_binary, &lost_file).await?;
    accepted.extend(upload(load.client, &deployment.url, load.keys, load.run_id, load.documents).await?);
    let secondary = topology.region(RegionName::Secondary).ok_or(RecoveryError::Unreachable(RegionName::Secondary))?;
    let rto_secs = finish_in_secondary(secondary, accepted, failover_at, options.timeout).await?;
    deployment.stop().await;
    Ok((report, rto_secs))
}

/// Where the failback left things.
struct Back {
    report: FailbackReport,
    /// The pid of the deployment that was running before the drill, started again.
    restarted: Option<u32>,
    primary: Backends,
    secondary: Backends,
}

/// Fails back to the primary, runs a deployment there (the one found at the start, or one of
/// ours until the checks) and waits for every accepted job to finish and be shipped.
async fn fail_back(
    config: &Config,
    healthy_file: &Path,
    running: Option<&RunningDeployment>,
    accepted: &[Accepted],
    options: &DrillOptions,
) -> Result<Back, RecoveryError> {
    let topology = Topology::open_any(config).await?;
    let report = failback(&topology, config.replication.settle(), "drill: primary back", &|_| {}).await?;
    let (mut deployment, restarted) = match running {
        Some(running) => (None, Some(restart(running, &config.data_dir).await?)),
        None => (Some(Deployment::start(&options.surge_binary, healthy_file).await?), None),
    };
    let primary = topology.region(RegionName::Primary).ok_or(RecoveryError::Unreachable(RegionName::Primary))?;
    let secondary = topology.region(RegionName::Secondary).ok_or(RecoveryError::Unreachable(RegionName::Secondary))?;
    wait_terminal(primary, accepted, options.timeout).await?;
    drain_outbox(primary, options.timeout).await;
    if let Some(deployment) = &mut deployment {
        deployment.stop().await;
    }
    Ok(Back { report, restarted, primary: primary.clone(), secondary: secondary.clone() })
}

/// Creates the drill's tenants, each with a fresh key.
async fn add_tenants(backends: &Backends, tenants: &[TenantId]) -> Result<Vec<(TenantId, ApiKey)>, RecoveryError> {
    let mut keys = Vec::new();
    for tenant in tenants {
        keys.push((tenant.clone(), crate::add_tenant(backends, tenant).await.map_err(failed)?));
    }
    Ok(keys)
}

/// Where the first half of the load goes: the deployment running on this data directory, or
/// one the drill starts. Returns the running one (if any), the drill's own (if any) and the URL.
async fn load_target(
    client: &reqwest::Client,
    config: &Config,
    options: &DrillOptions,
    healthy_file: &Path,
) -> Result<(Option<RunningDeployment>, Option<Deployment>, String), RecoveryError> {
    let running = match crate::running::find(&config.data_dir) {
        Some(found) if is_ready(client, &found.url).await => Some(found),
        _ => None,
    };
    if let Some(found) = running {
        let url = found.url.clone();
        return Ok((Some(found), None, url));
    }
    let own = Deployment::start(&options.surge_binary, healthy_file).await?;
    let url = own.url.clone();
    Ok((None, Some(own), url))
}

/// Waits for the secondary to finish the jobs it has and returns the RTO. In async mode, jobs
/// whose record had not been shipped are the RPO: they are late, not lost, and come back with
/// the failback.
async fn finish_in_secondary(
    secondary: &Backends,
    accepted: &[Accepted],
    failover_at: DateTime<Utc>,
    timeout: Duration,
) -> Result<Option<f64>, RecoveryError> {
    let mut present = Vec::new();
    for job in accepted {
        if secondary.jobs.get(job.id).await.map_err(failed)?.is_some() {
            present.push(job.clone());
        }
    }
    wait_terminal(secondary, &present, timeout).await?;
    first_completion_after(secondary, accepted, failover_at).await
}

/// Lets the shipper empty the outbox (async mode) before the regions are compared.
async fn drain_outbox(primary: &Backends, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while shared::replication::unshipped(primary).await.unwrap_or(0) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the final check found.
struct Checked {
    completed: u64,
    lost: u64,
    mismatches: u64,
    mismatched_keys: Vec<String>,
}

/// Every accepted job succeeded in the primary, and its document and result are the same in
/// both regions (the document also matching the checksum taken at upload).
async fn check(primary: &Backends, secondary: &Backends, accepted: &[Accepted]) -> Result<Checked, RecoveryError> {
    let (mut completed, mut lost, mut mismatches) = (0, 0, 0);
    let mut mismatched_keys = Vec::new();
    for job in accepted {
        let Some(record) = primary.jobs.get(job.id).await.map_err(failed)? else {
            lost += 1;
            continue;
        };
        if record.status != JobStatus::Succeeded {
            lost += 1;
            continue;
        }
        completed += 1;
        for key in [Some(record.blob_key.clone()), record.result_key.clone()].into_iter().flatten() {
            let here = primary.blobs.get(&key).await.map_err(failed)?;
            let there = secondary.blobs.get(&key).await.map_err(failed)?;
            let digest = |b: &Option<Bytes>| b.as_ref().map(|b| hex::encode(Sha256::digest(b)));
            let same = here.is_some() && digest(&here) == digest(&there);
            let document_intact = key != record.blob_key || digest(&here).as_deref() == Some(record.sha256.as_str());
            if !same || !document_intact {
                mismatches += 1;
                if mismatched_keys.len() < 20 {
                    mismatched_keys.push(key);
                }
            }
        }
    }
    Ok(Checked { completed, lost, mismatches, mismatched_keys })
}

/// Which deployment the drill ran against, for the report.
fn describe_deployment(running: Option<&RunningDeployment>, restarted: Option<u32>, data_dir: &Path) -> String {
    match (running, restarted) {
        (Some(running), Some(pid)) => format!(
            "the running deployment (pid {}, {}): killed, then started again as pid {pid} (log: {})",
            running.pid,
            running.url,
            data_dir.join(RESTART_LOG).display()
        ),
        _ => "started by the drill".to_owned(),
    }
}

/// A unique invoice per job (the drill's run id and number in the invoice id).
fn drill_invoice(run_id: &str, n: usize) -> Bytes {
    let text = std::str::from_utf8(crate::bench::SMALL_INVOICE).expect("utf-8");
    Bytes::from(text.replace("BENCH-1", &format!("DRILL-{run_id}-{n}")))
}

/// Uploads `documents` (round robin over the tenants, eight at a time), retrying each until the
/// deployment answers; returns what it acknowledged.
async fn upload(
    client: &reqwest::Client,
    url: &str,
    keys: &[(TenantId, shared::ports::ApiKey)],
    run_id: &str,
    documents: &[(usize, Bytes)],
) -> Result<Vec<Accepted>, RecoveryError> {
    let mut accepted = Vec::new();
    for chunk in documents.chunks(8) {
        let mut uploads = tokio::task::JoinSet::new();
        for (n, body) in chunk {
            let (_, key) = &keys[n % keys.len()];
            let request = client
                .post(format!("{url}/v1/documents"))
                .bearer_auth(key.expose())
                .header("content-type", "application/xml")
                .header("idempotency-key", format!("drill-{run_id}-{n}"))
                .body(body.clone());
            uploads.spawn(async move {
                for _ in 0..20 {
                    if let Ok(response) = request.try_clone().expect("plain body").send().await
                        && response.status().is_success()
                        && let Ok(body) = response.json::<serde_json::Value>().await
                        && let Some(id) = body["id"].as_str().and_then(|id| id.parse().ok())
                    {
                        return Ok(Accepted { id });
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(RecoveryError::Failed("an upload was refused 20 times".into()))
            });
        }
        while let Some(joined) = uploads.join_next().await {
            accepted.push(joined.map_err(failed)??);
        }
    }
    Ok(accepted)
}

async fn wait_terminal(backends: &Backends, jobs: &[Accepted], timeout: Duration) -> Result<usize, RecoveryError> {
    wait_for(backends, jobs, jobs.len(), timeout).await
}

/// Waits until at least `wanted` of `jobs` are finished (or `timeout`); returns how many are.
async fn wait_for(
    backends: &Backends,
    jobs: &[Accepted],
    wanted: usize,
    timeout: Duration,
) -> Result<usize, RecoveryError> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    while jobs.len() - pending.len() < wanted {
        let mut still = Vec::new();
        for id in pending {
            let done = backends.jobs.get(id).await.map_err(failed)?.is_some_and(|job| job.status.is_terminal());
            if !done {
                still.push(id);
            }
        }
        pending = still;
        if jobs.len() - pending.len() >= wanted || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(jobs.len() - pending.len())
}

/// Seconds from `since` to the earliest completion after it among `jobs`.
async fn first_completion_after(
    backends: &Backends,
    jobs: &[Accepted],
    since: DateTime<Utc>,
) -> Result<Option<f64>, RecoveryError> {
    let mut first: Option<DateTime<Utc>> = None;
    for job in jobs {
        if let Some(record) = backends.jobs.get(job.id).await.map_err(failed)?
            && let Some(finished) = record.finished_at
            && finished > since
        {
            first = Some(first.map_or(finished, |f| f.min(finished)));
        }
    }
    Ok(first.map(|f| (f - since).num_milliseconds() as f64 / 1000.0))
}

/// Jobs beyond one per upload (idempotency key) of this drill run.
async fn duplicates(backends: &Backends, tenants: &[TenantId], run_id: &str) -> Result<u64, RecoveryError> {
    let mut per_key: HashMap<String, u64> = HashMap::new();
    for tenant in tenants {
        let mut after = None;
        loop {
            let page = backends.jobs.list_by_tenant(tenant, None, after, 500).await.map_err(failed)?;
            for job in &page.jobs {
                if let Some(key) = job.idempotency_key.as_deref().filter(|k| k.contains(run_id)) {
                    *per_key.entry(key.to_owned()).or_default() += 1;
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    Ok(per_key.values().map(|n| n - 1).sum())
}

fn write_config(config: &Config, path: &Path) -> Result<PathBuf, RecoveryError> {
    let text = toml::to_string(config).map_err(failed)?;
    std::fs::write(path, text).map_err(failed)?;
    Ok(path.to_owned())
}

/// The primary made unreachable, and how to bring it back.
struct LostPrimary {
    /// The config as seen while the primary is lost.
    config: Config,
    /// An embedded primary moved aside: (where it was, where it is).
    moved: Option<(PathBuf, PathBuf)>,
}

impl LostPrimary {
    fn restore(&self) -> Result<(), RecoveryError> {
        if let Some((home, aside)) = &self.moved {
            std::fs::rename(aside, home).map_err(failed)?;
        }
        Ok(())
    }
}

/// Embedded: the primary's directory is moved aside. AWS: the primary's endpoint is pointed at
/// a closed port.
fn make_primary_unreachable(config: &Config) -> Result<LostPrimary, RecoveryError> {
    let mut lost = config.clone();
    match config.primary_region() {
        RegionConfig::Embedded { data_dir } => {
            let aside = data_dir.with_extension("unreachable");
            std::fs::rename(&data_dir, &aside).map_err(failed)?;
            Ok(LostPrimary { config: lost, moved: Some((data_dir, aside)) })
        }
        RegionConfig::Aws(mut settings) => {
            settings.endpoint_url = Some("http://127.0.0.1:9".to_owned());
            lost.primary = Some(RegionConfig::Aws(settings));
            Ok(LostPrimary { config: lost, moved: None })
        }
    }
}

/// Where a restarted deployment's output goes.
const RESTART_LOG: &str = "surge-up.log";

async fn is_ready(client: &reqwest::Client, url: &str) -> bool {
    client.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status().is_success())
}

/// SIGKILL to a running `surge up` and to every worker process of this machine in the
/// primary's registry: nothing of the primary's gets to finish cleanly.
async fn kill_running(running: &crate::running::RunningDeployment, backends: &Backends) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let workers = backends.workers.list().await.unwrap_or_default();
    let _ = kill(Pid::from_raw(running.pid as i32), Signal::SIGKILL);
    for worker in workers.iter().filter(|w| w.host == host) {
        let _ = kill(Pid::from_raw(worker.pid as i32), Signal::SIGKILL);
    }
    tracing::warn!(pid = running.pid, workers = workers.len(), "drill: killed the running deployment");
}

/// Starts a killed deployment again with its own command line, detached from the drill (it
/// keeps running after the drill), output appended to `<data_dir>/surge-up.log`; returns its
/// pid once it answers.
async fn restart(running: &crate::running::RunningDeployment, data_dir: &Path) -> Result<u32, RecoveryError> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join(RESTART_LOG)).map_err(failed)?;
    let child = Command::new(&running.exe)
        .args(running.argv.iter().skip(1))
        .current_dir(&running.cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(failed)?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| RecoveryError::Failed(format!("cannot start {} again: {e}", running.exe.display())))?;
    let pid = child.id().unwrap_or_default();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if is_ready(&client, &running.url).await {
            return Ok(pid);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(RecoveryError::Failed(format!(
        "the restarted deployment (pid {pid}) did not answer at {} within 60 s",
        running.url
    )))
}

/// A `surge up` child process group on a free local port.
struct Deployment {
    child: Child,
    url: String,
}

impl Deployment {
    async fn start(binary: &Path, config_file: &Path) -> Result<Deployment, RecoveryError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(failed)?.port();
        let mut command = Command::new(binary);
        command
            .args(["--config", &config_file.display().to_string(), "up", "--listen", &format!("127.0.0.1:{port}")])
            .env("SURGE_LOG", std::env::var("SURGE_LOG").unwrap_or_else(|_| "warn".to_owned()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let child =
            command.spawn().map_err(|e| RecoveryError::Failed(format!("cannot start {}: {e}", binary.display())))?;
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if is_ready(&client, &url).await {
                return Ok(Deployment { child, url });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(RecoveryError::Failed("the deployment did not become ready within 60 s".into()))
    }

    /// SIGKILL to the whole process group: the dispatcher and its workers die mid-work.
    fn kill(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// SIGTERM and wait: workers drain.
    async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await.is_err() {
            self.kill();
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.kill();
    }
}
