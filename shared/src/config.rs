//! Typed configuration: a TOML file, then `SURGE_*` environment overrides, validated once.
//!
//! Environment variables map onto keys with `__` between levels: `SURGE_API__LISTEN` sets
//! `api.listen`, `SURGE_DATA_DIR` sets `data_dir`. Values are read as TOML (so numbers and
//! booleans work) and fall back to plain strings. The loader takes the environment as a map so
//! tests never touch the process environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use scaling::{LaneConfig, LaneScalingConfig, ScalingConfig};

/// Everything a Surge process needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Root of the embedded backend: `state.db`, `queue.db` and `blobs/` live here. Used when
    /// `primary` is not set, and by commands that only make sense locally.
    pub data_dir: PathBuf,
    /// Where the primary region's queues, documents and job state live. Default: the embedded
    /// backend in `data_dir`.
    pub primary: Option<RegionConfig>,
    /// The second region that documents, job state and backups are mirrored to. Defaults to
    /// `<data_dir>/region-2` when the primary is the default embedded one.
    pub secondary: Option<RegionConfig>,
    pub replication: ReplicationConfig,
    pub backup: BackupConfig,
    pub api: ApiConfig,
    pub lanes: LaneConfig,
    pub worker: WorkerConfig,
    pub dispatcher: DispatcherConfig,
    pub pool: PoolConfig,
    /// The autoscaler's settings per lane (`[scaling.small]`, `[scaling.large]`). A key left
    /// out keeps its lane's default (the large lane's defaults differ from the small one's).
    pub scaling: ScalingConfig,
    /// Planned work (`[[maintenance]]`): announced on `/v1/status` and the dashboard, and
    /// `surge_maintenance_active` is 1 while one is on, so alert rules can stay quiet.
    pub maintenance: Vec<MaintenanceWindow>,
}

/// A maintenance window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub starts_at: chrono::DateTime<chrono::Utc>,
    pub ends_at: chrono::DateTime<chrono::Utc>,
    /// What operators and tenants are told, e.g. "Worker upgrade; uploads keep working".
    pub message: String,
}

impl MaintenanceWindow {
    pub fn is_active(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at
    }
}

/// The backend of one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum RegionConfig {
    /// SQLite and local files under `data_dir`.
    Embedded { data_dir: PathBuf },
    /// SQS queues and an S3 bucket.
    Aws(AwsSettings),
}

/// Where a region lives on AWS (or an SQS/S3-compatible server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// AWS region name, e.g. `eu-central-1`.
    pub region: String,
    /// Endpoint of an SQS/S3-compatible server (e.g. `http://127.0.0.1:5000`); `None` for AWS.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Prefix of every queue name, e.g. `surge-prod-` gives `surge-prod-incoming`.
    #[serde(default = "default_queue_prefix")]
    pub queue_prefix: String,
    /// Bucket holding documents, results and job state.
    pub bucket: String,
    /// Path-style S3 addressing, needed by most local servers; default: on when
    /// `endpoint_url` is set.
    #[serde(default)]
    pub force_path_style: Option<bool>,
}

/// An ECS service per lane, resized by the dispatcher's scaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsSettings {
    /// AWS region name of the cluster.
    pub region: String,
    /// Endpoint of an ECS-compatible server; `None` for AWS.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    pub cluster: String,
    /// Service running `surge-worker run --lane small`.
    pub small_service: String,
    /// Service running `surge-worker run --lane large`.
    pub large_service: String,
}

fn default_queue_prefix() -> String {
    "surge-".to_owned()
}

/// How changes reach the second region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationMode {
    /// Every write reaches both regions before it is acknowledged: nothing accepted is lost.
    Sync,
    /// Writes are acknowledged by the active region and shipped from a durable outbox.
    Async,
    /// No second region.
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    pub mode: ReplicationMode,
    /// How often each process checks the region epoch (fencing) and the shipper reports.
    pub check_every_ms: u64,
}

/// Scheduled backups into the second region, with their retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Seconds between scheduled backups taken by `surge up`; 0 turns them off.
    pub every_secs: u64,
    /// Every backup younger than this is kept.
    pub keep_all_secs: u64,
    /// Beyond that, the newest backup of each day is kept for this many days.
    pub keep_daily_days: u64,
}

impl ReplicationConfig {
    /// How long until every process of a region has seen a new epoch and stopped: two checks
    /// and a margin.
    pub fn settle(&self) -> Duration {
        Duration::from_millis(2 * self.check_every_ms + 500)
    }
}

impl Default for ReplicationConfig {
    fn default() -> ReplicationConfig {
        ReplicationConfig { mode: ReplicationMode::Sync, check_every_ms: 1000 }
    }
}

impl Default for BackupConfig {
    fn default() -> BackupConfig {
        BackupConfig { every_secs: 7200, keep_all_secs: 2 * 86_400, keep_daily_days: 30 }
    }
}

impl Config {
    /// The primary region: `[primary]`, or the embedded backend under `<data_dir>/region-1`.
    pub fn primary_region(&self) -> RegionConfig {
        self.primary.clone().unwrap_or_else(|| RegionConfig::Embedded { data_dir: self.data_dir.join("region-1") })
    }

    /// The secondary region, unless replication is off: `[secondary]`, or `<data_dir>/region-2`
    /// when the primary is the default embedded one.
    pub fn secondary_region(&self) -> Option<RegionConfig> {
        if self.replication.mode == ReplicationMode::Off {
            return None;
        }
        match (&self.primary, &self.secondary) {
            (_, Some(secondary)) => Some(secondary.clone()),
            (None, None) => Some(RegionConfig::Embedded { data_dir: self.data_dir.join("region-2") }),
            (Some(_), None) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Largest accepted upload; larger ones get 413 before their body is read.
    pub max_upload_bytes: u64,
    /// At most this many uploads are stored at once; others wait (backpressure, bounded memory).
    pub max_concurrent_uploads: usize,
    /// At most this many of those are one tenant's; its next upload gets `429` with
    /// `Retry-After`, so one tenant's flood or trickle never takes every slot.
    pub max_concurrent_uploads_per_tenant: usize,
    /// An upload body that sends nothing for this long is cut off with `408`.
    pub body_idle_timeout_secs: u64,
    /// After its first `body_idle_timeout_secs`, an upload body must average at least this many
    /// bytes a second, or it is cut off with `408` (a trickling client holds no slot for long).
    pub body_min_bytes_per_sec: u64,
    /// The longest any request may take from its headers to its answer; `408` after.
    pub request_timeout_secs: u64,
    /// Operator token for `/dashboard` and `/admin`. `surge up` creates one in the data
    /// directory (`admin-token`) when it is not set.
    pub admin_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Jobs a worker process holds at once (received and not yet acked).
    pub concurrency: usize,
    /// Threads doing CPU work per worker process.
    pub cpu_threads: usize,
    /// How long a received job stays hidden from other workers without a heartbeat.
    pub visibility_timeout_secs: u64,
    /// A job that failed transiently this many times is moved to the dead-letter queue.
    pub max_attempts: u32,
    /// First retry delay; doubles with each attempt up to `retry_max_delay_secs`.
    pub retry_base_delay_ms: u64,
    pub retry_max_delay_secs: u64,
    /// How long a job keeps being retried while the infrastructure fails it (store, queue, disk),
    /// counted from the first such fault; these retries do not use up `max_attempts`.
    pub transient_retry_window_secs: u64,
    /// Time budget for one document; a document over it fails.
    pub job_timeout_secs: u64,
    /// Memory limit of each extraction tool (PDF text, rasteriser, OCR) in MiB.
    pub job_memory_mib: u64,
    /// How long a stopping worker waits for its in-flight jobs before handing them back.
    pub drain_timeout_secs: u64,
    /// Extra time spent on every job, to demonstrate scaling and crash recovery; 0 in production.
    pub debug_delay_ms: u64,
    /// What a job does: `extract` (the booking proposal), or `sleep:200ms`, a synthetic job of a
    /// fixed duration for benchmarks and scaling tests.
    pub processor: Processor,
    /// On ECS (`ECS_AGENT_URI` set), a worker holding jobs protects its task from scale-in and
    /// deployments, for at most this many minutes per busy spell; 0 turns protection off.
    pub scale_in_protection_minutes: u32,
}

/// What a worker does with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Processor {
    /// Extracts the booking proposal from the document.
    #[default]
    Extract,
    /// Waits this long, then stores a synthetic result that says so: a job of a fixed cost,
    /// without reading the document.
    Sleep(std::time::Duration),
    /// Finishes every job at once, reading and storing nothing: `surge bench` measures the
    /// pipeline itself with it.
    Noop,
}

/// A processor that is neither `extract` nor `sleep:DURATION`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown processor `{0}`: expected `extract`, `noop` or `sleep:DURATION` (e.g. `sleep:200ms`)")]
pub struct UnknownProcessor(pub String);

impl std::str::FromStr for Processor {
    type Err = UnknownProcessor;

    fn from_str(s: &str) -> Result<Processor, UnknownProcessor> {
        match s.split_once(':') {
            None if s == "extract" => Ok(Processor::Extract),
            None if s == "noop" => Ok(Processor::Noop),
            Some(("sleep", duration)) => humantime::parse_duration(duration.trim())
                .map(Processor::Sleep)
                .map_err(|_| UnknownProcessor(s.to_owned())),
            _ => Err(UnknownProcessor(s.to_owned())),
        }
    }
}

impl std::fmt::Display for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Processor::Extract => f.write_str("extract"),
            Processor::Noop => f.write_str("noop"),
            Processor::Sleep(duration) => write!(f, "sleep:{}", humantime::format_duration(*duration)),
        }
    }
}

impl TryFrom<String> for Processor {
    type Error = UnknownProcessor;

    fn try_from(s: String) -> Result<Processor, UnknownProcessor> {
        s.parse()
    }
}

impl From<Processor> for String {
    fn from(processor: Processor) -> String {
        processor.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatcherConfig {
    /// Upper bound of jobs held by the dispatcher for fair scheduling (memory bound).
    pub buffer_limit: usize,
    /// How far ahead (in seconds of work) a lane queue is kept filled; smaller is fairer.
    pub lane_lookahead_ms: u64,
    /// A `queued` job untouched for this long is sent again, in case its first send was lost.
    pub orphan_after_secs: u64,
    /// A worker silent for this long is written off and its jobs are handed back at once.
    pub worker_lost_after_secs: u64,
    /// While the large lane has no worker at all (scaled to zero), hand its jobs to idle
    /// small-lane workers, one small worker always staying idle, instead of waking the lane.
    /// Turn off if small-lane workers cannot take large documents (e.g. less memory).
    pub lend_small_workers: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Let the autoscaler resize the pool (within `[scaling]` limits); otherwise it stays at
    /// the sizes below.
    pub autoscale: bool,
    /// Worker processes started by `surge up` for the `small` lane.
    pub small_workers: usize,
    /// Worker processes started by `surge up` for the `large` lane.
    pub large_workers: usize,
    /// Path of the `surge-worker` binary; default: next to `surge`.
    pub worker_binary: Option<PathBuf>,
    /// Resize these ECS services instead of starting local worker processes (the dispatcher
    /// on AWS). `small_workers` and `large_workers` are then ignored.
    pub ecs: Option<EcsSettings>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("./surge-data"),
            primary: None,
            api: ApiConfig::default(),
            lanes: LaneConfig::default(),
            worker: WorkerConfig::default(),
            dispatcher: DispatcherConfig::default(),
            pool: PoolConfig::default(),
            scaling: ScalingConfig::default(),
            secondary: None,
            replication: ReplicationConfig::default(),
            backup: BackupConfig::default(),
            maintenance: Vec::new(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_upload_bytes: 25 * 1024 * 1024,
            max_concurrent_uploads: 64,
            max_concurrent_uploads_per_tenant: 8,
            body_idle_timeout_secs: 10,
            body_min_bytes_per_sec: 4096,
            request_timeout_secs: 300,
            admin_token: None,
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            concurrency: 4,
            cpu_threads: 1,
            visibility_timeout_secs: 30,
            max_attempts: 5,
            retry_base_delay_ms: 1000,
            retry_max_delay_secs: 300,
            transient_retry_window_secs: 24 * 3600,
            job_timeout_secs: 120,
            job_memory_mib: 1536,
            drain_timeout_secs: 30,
            debug_delay_ms: 0,
            processor: Processor::Extract,
            scale_in_protection_minutes: 60,
        }
    }
}

impl Default for DispatcherConfig {
    fn default() -> DispatcherConfig {
        DispatcherConfig {
            buffer_limit: 100_000,
            lane_lookahead_ms: 250,
            orphan_after_secs: 900,
            worker_lost_after_secs: 5,
            lend_small_workers: true,
        }
    }
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig { autoscale: true, small_workers: 2, large_workers: 1, worker_binary: None, ecs: None }
    }
}

impl WorkerConfig {
    pub fn visibility_timeout(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout_secs)
    }

    /// Delay before retry number `attempt` (1-based): base × 2^(attempt-1), capped.
    /// How long a job keeps being retried through infrastructure faults.
    pub fn transient_retry_window(&self) -> Duration {
        Duration::from_secs(self.transient_retry_window_secs)
    }

    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let factor = 2u64.saturating_pow(attempt.saturating_sub(1));
        Duration::from_millis(self.retry_base_delay_ms.saturating_mul(factor))
            .min(Duration::from_secs(self.retry_max_delay_secs))
    }
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid config: `{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("invalid config: `scaling.{}` {}", .0.key, .0.problem)]
    Scaling(scaling::ScalingConfigError),
}

impl Config {
    /// Loads `file` (if given), applies `SURGE_*` overrides from `env` and validates.
    pub fn load(file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                text.parse::<toml::Table>().map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(path) = name.strip_prefix("SURGE_") else { continue };
            if is_reserved_env(path) {
                continue;
            }
            let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
            set_path(&mut table, &keys, parse_env_value(value));
        }
        if let Some(toml::Value::Table(scaling)) = table.get_mut("scaling") {
            over_lane_defaults(scaling)?;
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |key: &'static str, value: u64| {
            if value == 0 {
                Err(ConfigError::Invalid { key, problem: "must be greater than zero".into() })
            } else {
                Ok(())
            }
        };
        positive("api.max_upload_bytes", self.api.max_upload_bytes)?;
        positive("api.max_concurrent_uploads", self.api.max_concurrent_uploads as u64)?;
        positive("api.max_concurrent_uploads_per_tenant", self.api.max_concurrent_uploads_per_tenant as u64)?;
        positive("api.body_idle_timeout_secs", self.api.body_idle_timeout_secs)?;
        positive("api.request_timeout_secs", self.api.request_timeout_secs)?;
        positive("worker.concurrency", self.worker.concurrency as u64)?;
        positive("worker.cpu_threads", self.worker.cpu_threads as u64)?;
        positive("worker.visibility_timeout_secs", self.worker.visibility_timeout_secs)?;
        positive("worker.max_attempts", u64::from(self.worker.max_attempts))?;
        positive("worker.transient_retry_window_secs", self.worker.transient_retry_window_secs)?;
        positive("worker.job_timeout_secs", self.worker.job_timeout_secs)?;
        positive("worker.job_memory_mib", self.worker.job_memory_mib)?;
        positive("dispatcher.buffer_limit", self.dispatcher.buffer_limit as u64)?;
        if self.worker.visibility_timeout_secs > 12 * 3600 {
            return Err(ConfigError::Invalid {
                key: "worker.visibility_timeout_secs",
                problem: "must be at most 43200 (12 hours, the SQS limit)".into(),
            });
        }
        for (section, region) in [("primary", &self.primary), ("secondary", &self.secondary)] {
            if let Some(RegionConfig::Aws(aws)) = region {
                validate_aws(section, aws)?;
            }
        }
        if let (Some(RegionConfig::Aws(a)), Some(RegionConfig::Aws(b))) = (&self.primary, &self.secondary)
            && a.region == b.region
            && a.bucket == b.bucket
            && a.endpoint_url == b.endpoint_url
        {
            return Err(ConfigError::Invalid {
                key: "secondary",
                problem: "must name another region or bucket than the primary".into(),
            });
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid { key: "data_dir", problem: "must not be empty".into() });
        }
        positive("replication.check_every_ms", self.replication.check_every_ms)?;
        if self.maintenance.iter().any(|w| w.ends_at <= w.starts_at) {
            return Err(ConfigError::Invalid {
                key: "maintenance",
                problem: "a window must end after it starts".into(),
            });
        }
        self.scaling.validate().map_err(ConfigError::Scaling)?;
        if self.api.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid {
                key: "api.admin_token",
                problem: "must be at least 16 characters".into(),
            });
        }
        Ok(())
    }

    /// The process environment as the map [`Config::load`] takes; call once, in `main`.
    pub fn process_env() -> BTreeMap<String, String> {
        std::env::vars().filter(|(k, _)| k.starts_with("SURGE_")).collect()
    }
}

/// Lays a partial `[scaling.<lane>]` table over that lane's defaults, so a key left out keeps
/// its own lane's default rather than the small lane's (what serde's `default` would give).
fn over_lane_defaults(scaling: &mut toml::Table) -> Result<(), ConfigError> {
    let invalid = |e: toml::ser::Error| ConfigError::Parse(format!("[scaling]: {e}"));
    let toml::Value::Table(defaults) = toml::Value::try_from(ScalingConfig::default()).map_err(invalid)? else {
        return Err(ConfigError::Parse("[scaling]: defaults are not a table".into()));
    };
    for (lane, lane_defaults) in defaults {
        if let (Some(toml::Value::Table(given)), toml::Value::Table(mut merged)) = (scaling.get(&lane), lane_defaults) {
            merged.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
            scaling.insert(lane, toml::Value::Table(merged));
        }
    }
    Ok(())
}

fn validate_aws(section: &'static str, aws: &AwsSettings) -> Result<(), ConfigError> {
    let key = |field: &str| -> &'static str {
        match (section, field) {
            ("primary", "region") => "primary.region",
            ("primary", "bucket") => "primary.bucket",
            ("primary", "queue_prefix") => "primary.queue_prefix",
            ("primary", _) => "primary.endpoint_url",
            (_, "region") => "secondary.region",
            (_, "bucket") => "secondary.bucket",
            (_, "queue_prefix") => "secondary.queue_prefix",
            _ => "secondary.endpoint_url",
        }
    };
    let invalid =
        |field: &str, problem: &str| Err(ConfigError::Invalid { key: key(field), problem: problem.to_owned() });
    if aws.region.is_empty() {
        return invalid("region", "must name an AWS region, e.g. eu-central-1");
    }
    let bucket_ok = (3..=63).contains(&aws.bucket.len())
        && aws.bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !bucket_ok {
        return invalid("bucket", "must be a valid S3 bucket name (3-63 of a-z, 0-9, '-', '.')");
    }
    let prefix_ok = aws.queue_prefix.len() <= 40
        && aws.queue_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !prefix_ok {
        return invalid("queue_prefix", "must be at most 40 of A-Z, a-z, 0-9, '-', '_'");
    }
    if let Some(url) = &aws.endpoint_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return invalid("endpoint_url", "must be an http:// or https:// URL");
    }
    Ok(())
}

/// `SURGE_*` variables that are not config keys: read by the CLI (`SURGE_CONFIG`, `SURGE_LOG`)
/// or by the test suite (`SURGE_SAMPLES`, `SURGE_BIN_DIR`, `SURGE_TEST_*`).
fn is_reserved_env(name_after_prefix: &str) -> bool {
    matches!(name_after_prefix, "CONFIG" | "LOG" | "SAMPLES" | "BIN_DIR") || name_after_prefix.starts_with("TEST_")
}

fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) {
    match keys {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                set_path(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let config = Config::load(None, &BTreeMap::new()).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn file_then_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("surge.toml");
        std::fs::write(&path, "data_dir = \"/srv/surge\"\n[api]\nlisten = \"0.0.0.0:9000\"\n").unwrap();
        let config =
            Config::load(Some(&path), &env(&[("SURGE_WORKER__MAX_ATTEMPTS", "3"), ("SURGE_DATA_DIR", "/data")]))
                .unwrap();
        assert_eq!(config.api.listen.port(), 9000);
        assert_eq!(config.worker.max_attempts, 3);
        assert_eq!(config.data_dir, PathBuf::from("/data"));
    }

    #[test]
    fn processors_parse_print_and_come_from_the_environment() {
        assert_eq!("extract".parse::<Processor>(), Ok(Processor::Extract));
        assert_eq!("sleep:200ms".parse::<Processor>(), Ok(Processor::Sleep(Duration::from_millis(200))));
        assert_eq!("sleep:1.5s".parse::<Processor>(), Ok(Processor::Sleep(Duration::from_millis(1500))));
        assert_eq!(Processor::Sleep(Duration::from_millis(200)).to_string(), "sleep:200ms");
        for bad in ["sleep", "sleep:soon", "ocr", ""] {
            let err = bad.parse::<Processor>().unwrap_err().to_string();
            assert!(err.contains("sleep:DURATION"), "{err}");
        }
        let config = Config::load(None, &env(&[("SURGE_WORKER__PROCESSOR", "sleep:250ms")])).unwrap();
        assert_eq!(config.worker.processor, Processor::Sleep(Duration::from_millis(250)));
        let err = Config::load(None, &env(&[("SURGE_WORKER__PROCESSOR", "nap")])).unwrap_err().to_string();
        assert!(err.contains("nap"), "{err}");
    }

    #[test]
    fn unknown_and_bad_keys_are_named() {
        let err = Config::load(None, &env(&[("SURGE_API__LISTN", "x")])).unwrap_err().to_string();
        assert!(err.contains("listn"), "{err}");
        let err = Config::load(None, &env(&[("SURGE_WORKER__CONCURRENCY", "0")])).unwrap_err().to_string();
        assert!(err.contains("worker.concurrency"), "{err}");
        let err = Config::load(None, &env(&[("SURGE_API__LISTEN", "nowhere")])).unwrap_err().to_string();
        assert!(err.contains("listen") || err.contains("address"), "{err}");
    }

    #[test]
    fn aws_primary_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("surge.toml");
        std::fs::write(&path, "[primary]\nbackend = \"aws\"\nregion = \"eu-central-1\"\nbucket = \"surge-docs\"\n")
            .unwrap();
        let config =
            Config::load(Some(&path), &env(&[("SURGE_PRIMARY__ENDPOINT_URL", "http://127.0.0.1:5000")])).unwrap();
        let RegionConfig::Aws(aws) = config.primary_region() else { panic!("aws expected") };
        assert_eq!(aws.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(aws.queue_prefix, "surge-");

        std::fs::write(&path, "[primary]\nbackend = \"aws\"\nregion = \"eu-central-1\"\nbucket = \"No_Such\"\n")
            .unwrap();
        let err = Config::load(Some(&path), &BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("primary.bucket"), "{err}");
        std::fs::write(&path, "[primary]\nbackend = \"aws\"\nregion = \"eu-central-1\"\n").unwrap();
        let err = Config::load(Some(&path), &BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("bucket"), "missing key is named: {err}");
        std::fs::write(&path, "[primary]\nbackend = \"cloud\"\n").unwrap();
        let err = Config::load(Some(&path), &BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("cloud") || err.contains("backend"), "{err}");
    }

    #[test]
    fn default_regions_are_two_directories_in_data_dir() {
        let config = Config::load(None, &env(&[("SURGE_DATA_DIR", "/tmp/x")])).unwrap();
        assert_eq!(config.primary_region(), RegionConfig::Embedded { data_dir: PathBuf::from("/tmp/x/region-1") });
        assert_eq!(
            config.secondary_region(),
            Some(RegionConfig::Embedded { data_dir: PathBuf::from("/tmp/x/region-2") })
        );
        let off = Config::load(None, &env(&[("SURGE_REPLICATION__MODE", "off")])).unwrap();
        assert_eq!(off.secondary_region(), None);
    }

    #[test]
    fn retry_delay_doubles_and_caps() {
        let worker = WorkerConfig { retry_base_delay_ms: 100, retry_max_delay_secs: 1, ..WorkerConfig::default() };
        assert_eq!(worker.retry_delay(1), Duration::from_millis(100));
        assert_eq!(worker.retry_delay(3), Duration::from_millis(400));
        assert_eq!(worker.retry_delay(30), Duration::from_secs(1));
    }

    #[test]
    fn a_partial_lane_table_keeps_that_lanes_other_defaults() {
        let env = BTreeMap::from([("SURGE_SCALING__LARGE__IDLE_BEFORE_ZERO_SECS".to_owned(), "300".to_owned())]);
        let scaling = Config::load(None, &env).unwrap().scaling;
        assert_eq!(scaling.large.idle_before_zero_secs, 300);
        assert!(scaling.large.scale_to_zero, "the large lane's own default survives");
        assert_eq!(scaling.large.latency_target_secs, ScalingConfig::default().large.latency_target_secs);
        assert_eq!(scaling.small, ScalingConfig::default().small);
    }

    #[test]
    fn an_unknown_scaling_key_is_named() {
        let env = BTreeMap::from([("SURGE_SCALING__SMALL__MAX_WROKERS".to_owned(), "3".to_owned())]);
        let error = Config::load(None, &env).unwrap_err().to_string();
        assert!(error.contains("max_wrokers"), "{error}");
    }

    #[test]
    fn an_invalid_scaling_value_names_its_key() {
        let env = BTreeMap::from([("SURGE_SCALING__LARGE__MIN_WORKERS".to_owned(), "500".to_owned())]);
        let error = Config::load(None, &env).unwrap_err().to_string();
        assert!(error.contains("scaling.large.min_workers"), "{error}");
    }
}
