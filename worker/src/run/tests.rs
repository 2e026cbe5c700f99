//! The worker loop end to end on the embedded backend: duplicate deliveries, a missing
//! document, a blob store that fails for a while, deregistration after the last beat, and ECS
//! task protection while busy.

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use shared::backend::Backends;
use shared::chart::Chart;
use shared::config::{Processor, WorkerConfig};
use shared::domain::{DocumentType, ErrorCode, Job, JobId, JobMessage, JobStatus, Lane, NewJob};
use shared::ports::WorkerBeat;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{WorkerOptions, run};
use crate::protection::ProtectionSettings;

async fn run_until_settled(backends: &Backends, id: shared::domain::JobId) -> Job {
    // A short lease, so a duplicate delivery deferred behind a live lease comes back soon.
    let config = WorkerConfig { drain_timeout_secs: 1, visibility_timeout_secs: 2, ..WorkerConfig::default() };
    run_until_settled_with(backends, id, config).await
}

async fn run_until_settled_with(backends: &Backends, id: shared::domain::JobId, config: WorkerConfig) -> Job {
    let shutdown = CancellationToken::new();
    let options = WorkerOptions {
        lanes: vec![Lane::Small],
        chart: Chart::default(),
        debug_delay: Duration::ZERO,
        protection: None,
    };
    let worker = tokio::spawn(run(backends.clone(), config, options, shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = backends.jobs.get(id).await.unwrap().unwrap();
        let depth = backends.small_lane.depth().await.unwrap();
        if job.status.is_terminal() && depth.visible + depth.in_flight == 0 {
            shutdown.cancel();
            worker.await.unwrap().unwrap();
            return job;
        }
        assert!(Instant::now() < deadline, "job did not settle: {job:?} {depth:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_delivered_twice_yields_one_result_and_both_messages_are_acked() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::open_embedded(dir.path(), 3).unwrap();
    let tenant: shared::domain::TenantId = "acme".parse().unwrap();
    let samples = std::env::var_os("SURGE_SAMPLES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/samples").into());
    let path = samples.join("peppol-bis3/base-example.xml");
    let invoice = Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("sample {}: {e}", path.display())));

    let id = JobId::new();
    let blob_key = format!("documents/acme/{id}");
    backends.blobs.put(&blob_key, invoice.clone()).await.unwrap();
    let new = NewJob {
        id,
        tenant,
        idempotency_key: None,
        blob_key,
        document_type: DocumentType::Xml,
        size: invoice.len() as u64,
        sha256: String::new(),
        page_estimate: 1,
    };
    let job = Job::new(new, Utc::now());
    backends.jobs.create(job.clone()).await.unwrap();
    let body = Bytes::from(serde_json::to_vec(&JobMessage::for_job(&job)).unwrap());
    backends.small_lane.send_batch(vec![body.clone(), body], Duration::ZERO).await.unwrap();

    let done = run_until_settled(&backends, id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 1, "the duplicate delivery did no work");
    let results = backends.blobs.list("results/acme/").await.unwrap();
    assert_eq!(results, vec![format!("results/acme/{id}.json")]);
}

/// Creates a one-page XML job of acme whose document is at `blob_key` (not written), and
/// queues it on the small lane.
async fn queue_job(backends: &Backends, blob_key: &str) -> Job {
    let new = NewJob {
        id: JobId::new(),
        tenant: "acme".parse().unwrap(),
        idempotency_key: None,
        blob_key: blob_key.into(),
        document_type: DocumentType::Xml,
        size: 1,
        sha256: String::new(),
        page_estimate: 1,
    };
    let job = Job::new(new, Utc::now());
    backends.jobs.create(job.clone()).await.unwrap();
    let body = Bytes::from(serde_json::to_vec(&JobMessage::for_job(&job)).unwrap());
    backends.small_lane.send_batch(vec![body], Duration::ZERO).await.unwrap();
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_document_fails_the_job_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::open_embedded(dir.path(), 3).unwrap();
    let job = queue_job(&backends, "documents/acme/gone").await;
    let done = run_until_settled(&backends, job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.last_error.unwrap().code, ErrorCode::DocumentMissing);
}

/// A blob store that refuses to store results the first `failures` times, the way a store that
/// is down for a while does.
struct FlakyResults {
    inner: Arc<dyn shared::ports::BlobStore>,
    failures: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl shared::ports::BlobStore for FlakyResults {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<shared::ports::BlobMeta, shared::ports::BlobError> {
        let failing = key.starts_with("results/")
            && self.failures.fetch_update(SeqCst, SeqCst, |left| left.checked_sub(1)).is_ok();
        if failing {
            let cause = std::io::Error::from_raw_os_error(17);
            return Err(shared::ports::BlobError::Unavailable(shared::ports::Fault::caused_by("/srv/blobs/x", cause)));
        }
        self.inner.put(key, bytes).await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        bytes: Bytes,
    ) -> Result<Option<shared::ports::BlobMeta>, shared::ports::BlobError> {
        self.inner.put_if_absent(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, shared::ports::BlobError> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> Result<Option<shared::ports::BlobMeta>, shared::ports::BlobError> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), shared::ports::BlobError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, shared::ports::BlobError> {
        self.inner.list(prefix).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_fault_longer_than_the_attempts_neither_kills_the_job_nor_shows_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut backends = Backends::open_embedded(dir.path(), 3).unwrap();
    let path = crate::test_samples::samples_dir().join("peppol-bis3/base-example.xml");
    let invoice = Bytes::from(std::fs::read(&path).unwrap());
    backends.blobs.put("documents/acme/flaky", invoice).await.unwrap();
    // Twice as many faults as attempts: each used to cost an attempt, and the job went dead.
    let flaky = FlakyResults { inner: backends.blobs.clone(), failures: 6.into() };
    backends.blobs = Arc::new(flaky);
    let job = queue_job(&backends, "documents/acme/flaky").await;
    let config = WorkerConfig {
        max_attempts: 3,
        retry_base_delay_ms: 10,
        retry_max_delay_secs: 1,
        drain_timeout_secs: 1,
        visibility_timeout_secs: 2,
        ..WorkerConfig::default()
    };
    let done = run_until_settled_with(&backends, job.id, config).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{:?}", done.last_error);
    assert_eq!(done.attempts, 1, "faults of the store use up no attempts");
    assert_eq!(done.transient_since, None);
}

#[test]
fn a_store_fault_shows_the_tenant_a_stable_message() {
    let cause = std::io::Error::from_raw_os_error(17);
    let fault = shared::ports::BlobError::Unavailable(shared::ports::Fault::caused_by("/srv/blobs/x", cause));
    let super::outcome::WorkError::Transient(error) = super::outcome::WorkError::blob_store(fault) else {
        panic!("a store fault is transient");
    };
    assert_eq!(error.code, ErrorCode::BlobStoreUnavailable);
    assert!(!error.message.contains("/srv") && !error.message.contains("os error"), "{}", error.message);
}

/// A registry whose beats are written late, by a task of their own, the way the embedded
/// backend's writer thread or an HTTP request already sent completes after its caller went.
struct LateBeats(Arc<dyn shared::ports::WorkerRegistry>);

#[async_trait::async_trait]
impl shared::ports::WorkerRegistry for LateBeats {
    async fn beat(&self, beat: &WorkerBeat) -> Result<shared::ports::WorkerOrders, shared::ports::RegistryError> {
        let (registry, beat) = (Arc::clone(&self.0), beat.clone());
        let write = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            registry.beat(&beat).await
        });
        write.await.expect("the write task")
    }

    async fn list(&self) -> Result<Vec<WorkerBeat>, shared::ports::RegistryError> {
        self.0.list().await
    }

    async fn request_drain(&self, worker_id: Uuid) -> Result<(), shared::ports::RegistryError> {
        self.0.request_drain(worker_id).await
    }

    async fn remove(&self, worker_id: Uuid) -> Result<(), shared::ports::RegistryError> {
        self.0.remove(worker_id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_is_not_registered_again_by_its_last_beat() {
    let dir = tempfile::tempdir().unwrap();
    let mut backends = Backends::open_embedded(dir.path(), 3).unwrap();
    let registry = Arc::clone(&backends.workers);
    backends.workers = Arc::new(LateBeats(Arc::clone(&registry)));
    let options = WorkerOptions {
        lanes: vec![Lane::Small],
        chart: Chart::default(),
        debug_delay: Duration::ZERO,
        protection: None,
    };
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(run(backends, WorkerConfig::default(), options, shutdown.clone()));
    // Each beat takes 1.5 s to land and the next is due after 1 s: one is always on its way.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(registry.list().await.unwrap().len(), 1, "the worker beats");
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let left = registry.list().await.unwrap();
    assert!(left.is_empty(), "a beat landed after the worker deregistered: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_protects_its_ecs_task_and_releases_it_when_idle() {
    use crate::protection::tests::{Agent, serve_agent};

    let agent = Arc::new(Agent::default());
    let mut protection = ProtectionSettings::new(serve_agent(Arc::clone(&agent)).await, 60).unwrap();
    protection.release_after = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::open_embedded(dir.path(), 3).unwrap();
    let job = queue_job(&backends, "documents/acme/synthetic").await;

    let config = WorkerConfig { processor: Processor::Sleep(Duration::from_millis(800)), ..WorkerConfig::default() };
    let options = WorkerOptions {
        lanes: vec![Lane::Small],
        chart: Chart::default(),
        debug_delay: Duration::ZERO,
        protection: Some(protection),
    };
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(run(backends.clone(), config, options, shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let finished = loop {
        if backends.jobs.get(job.id).await.unwrap().unwrap().status == JobStatus::Succeeded {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "the job did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    while agent.calls.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    let calls = agent.calls.lock().unwrap().clone();
    let times = agent.times.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            serde_json::json!({"ProtectionEnabled": true, "ExpiresInMinutes": 60}),
            serde_json::json!({"ProtectionEnabled": false}),
        ],
        "protected once while busy, released once idle"
    );
    assert!(times[0] < finished, "protected while the job ran");
    assert!(times[1] >= finished, "released after it");
}
