//! `surge bench`: measures the durable job pipeline and the upload path on the embedded backend
//! and reports figures. It asserts nothing about time; it only measures.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use shared::backend::Backends;
use shared::config::{Config, ReplicationMode};
use shared::domain::{DocumentType, Job, JobId, JobStatus, Lane, NewJob, TenantId};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{api, intake, pool, schedule};

/// Figures of the pipeline benchmark.
#[derive(Debug, Serialize)]
pub struct PipelineReport {
    pub jobs: usize,
    pub workers: usize,
    pub worker_concurrency: usize,
    pub seconds: f64,
    pub jobs_per_second: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub enqueue_seconds: f64,
}

/// Figures of the upload benchmark.
#[derive(Debug, Serialize)]
pub struct UploadReport {
    pub uploads: usize,
    pub clients: usize,
    pub document_bytes: usize,
    pub seconds: f64,
    pub uploads_per_second: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
}

/// Figures of the replication benchmark: async mirroring under a sustained upload load, then a
/// replay of every job.
#[derive(Debug, Serialize)]
pub struct ReplicationReport {
    pub uploads: usize,
    pub clients: usize,
    pub uploads_per_second: f64,
    pub changes_shipped: usize,
    /// From a change in the primary to its arrival in the secondary.
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    /// From the last upload's answer until the outbox was empty.
    pub drained_after_secs: f64,
    pub replayed_jobs: u64,
    pub replay_seconds: f64,
    pub replay_jobs_per_second: f64,
}

#[derive(Debug, thiserror::Error)]
#[error("benchmark failed: {0}")]
pub struct BenchError(String);

fn failed(err: impl std::fmt::Display) -> BenchError {
    BenchError(err.to_string())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// (a) N no-op jobs enqueued in batches through the API's enqueue path, dispatched and completed
/// by real `surge-worker` processes, every state change durable.
pub async fn pipeline(
    data_dir: PathBuf,
    worker_binary: PathBuf,
    jobs: usize,
    workers: usize,
    worker_concurrency: usize,
    replication: ReplicationMode,
) -> Result<PipelineReport, BenchError> {
    let mut config = Config { data_dir: data_dir.clone(), ..Config::default() };
    config.replication.mode = replication;
    config.dispatcher.lane_lookahead_ms = 100;
    let backends = Backends::open(&config).await.map_err(failed)?;
    let tenant: TenantId = "bench".parse().map_err(failed)?;

    let stop = CancellationToken::new();
    let dispatcher = tokio::spawn(schedule::run(
        backends.clone(),
        config.lanes.clone(),
        config.dispatcher.clone(),
        schedule::LoadBoard::default(),
        schedule::WorkerBoard::default(),
        stop.clone(),
    ));
    let spec = pool::PoolSpec {
        binary: worker_binary,
        args: vec!["--data-dir".to_owned(), data_dir.display().to_string()],
        env: vec![
            ("SURGE_WORKER__CONCURRENCY".to_owned(), worker_concurrency.to_string()),
            ("SURGE_WORKER__PROCESSOR".to_owned(), "noop".to_owned()),
            ("SURGE_LOG".to_owned(), "warn".to_owned()),
            ("SURGE_REPLICATION__MODE".to_owned(), format!("{replication:?}").to_ascii_lowercase()),
        ],
        sizes: vec![(Lane::Small, workers)],
        drain_timeout: Duration::from_secs(5),
    };
    let pool = std::sync::Arc::new(pool::LocalPool::start(spec));
    let supervisor = {
        let pool = std::sync::Arc::clone(&pool);
        let stop = stop.clone();
        tokio::spawn(async move { pool.supervise(stop).await })
    };
    // Let the workers start before the clock runs.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    create_noop_jobs(&backends, &tenant, jobs).await?;
    let enqueue_seconds = started.elapsed().as_secs_f64();

    wait_until_finished(&backends, jobs).await?;
    let seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = supervisor.await;
    let _ = dispatcher.await;

    let mut latencies = enqueue_to_done_ms(&backends, &tenant, jobs).await?;
    latencies.sort_by(f64::total_cmp);
    Ok(PipelineReport {
        jobs,
        workers,
        worker_concurrency,
        seconds,
        jobs_per_second: jobs as f64 / seconds,
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p99_ms: percentile(&latencies, 99.0),
        enqueue_seconds,
    })
}

/// Creates `jobs` jobs without a document (the workers run the `noop` processor) and enqueues
/// them, 500 at a time.
async fn create_noop_jobs(backends: &Backends, tenant: &TenantId, jobs: usize) -> Result<(), BenchError> {
    const BATCH: usize = 500;
    let mut created = 0;
    while created < jobs {
        let n = BATCH.min(jobs - created);
        let mut creates = JoinSet::new();
        for _ in 0..n {
            let backends = backends.clone();
            let job = Job::new(
                NewJob {
                    id: JobId::new(),
                    tenant: tenant.clone(),
                    idempotency_key: None,
                    blob_key: "bench/none".to_owned(),
                    document_type: DocumentType::Xml,
                    size: 0,
                    sha256: String::new(),
                    page_estimate: 1,
                },
                Utc::now(),
            );
            creates.spawn(async move { backends.jobs.create(job).await });
        }
        let mut batch = Vec::with_capacity(n);
        while let Some(result) = creates.join_next().await {
            match result.map_err(failed)?.map_err(failed)? {
                shared::ports::CreateOutcome::Created(job) => batch.push(job),
                shared::ports::CreateOutcome::Existing(_) => return Err(BenchError("unexpected duplicate".into())),
            }
        }
        intake::enqueue(backends, &batch).await.map_err(failed)?;
        created += n;
    }
    Ok(())
}

/// Polls the job counts until `jobs` jobs are finished.
async fn wait_until_finished(backends: &Backends, jobs: usize) -> Result<(), BenchError> {
    loop {
        let counts = backends.jobs.count_by_status().await.map_err(failed)?;
        let done: u64 = counts.iter().filter(|(s, _)| s.is_terminal()).map(|(_, n)| *n).sum();
        if done as usize >= jobs {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every job's time from creation to its end, in milliseconds; an error if one did not succeed.
async fn enqueue_to_done_ms(backends: &Backends, tenant: &TenantId, jobs: usize) -> Result<Vec<f64>, BenchError> {
    let mut latencies = Vec::with_capacity(jobs);
    let mut cursor = None;
    loop {
        let page = backends.jobs.list_by_tenant(tenant, None, cursor, 500).await.map_err(failed)?;
        for job in &page.jobs {
            if job.status != JobStatus::Succeeded {
                return Err(BenchError(format!("job {} ended {}", job.id, job.status)));
            }
            if let Some(finished) = job.finished_at {
                latencies.push((finished - job.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(latencies)
}

/// (b) Small documents posted over HTTP by concurrent clients.
pub async fn uploads(
    data_dir: PathBuf,
    uploads: usize,
    clients: usize,
    replication: ReplicationMode,
) -> Result<UploadReport, BenchError> {
    let mut config = Config { data_dir, ..Config::default() };
    config.replication.mode = replication;
    let backends = Backends::open(&config).await.map_err(failed)?;
    let tenant: TenantId = "bench".parse().map_err(failed)?;
    let key = crate::add_tenant(&backends, &tenant).await.map_err(failed)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(failed)?;
    let address = listener.local_addr().map_err(failed)?;
    let app = api::router(api::ApiState::new(backends, config.api.clone(), None));
    let stop = CancellationToken::new();
    let server_stop = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { server_stop.cancelled().await }).await
    });

    let (seconds, latencies) = post_load(address, &key, uploads, clients).await?;
    stop.cancel();
    let _ = server.await;
    Ok(UploadReport {
        uploads,
        clients,
        document_bytes: SMALL_INVOICE.len(),
        seconds,
        uploads_per_second: uploads as f64 / seconds,
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p99_ms: percentile(&latencies, 99.0),
    })
}

/// (c) Async mirroring under a sustained upload load (two embedded regions, the shippers that
/// `surge up` runs), then a replay of every (still queued) job as a failover would do it.
pub async fn replication(data_dir: PathBuf, uploads: usize, clients: usize) -> Result<ReplicationReport, BenchError> {
    let mut config = Config { data_dir, ..Config::default() };
    config.replication.mode = ReplicationMode::Async;
    let topology = shared::region::Topology::open(&config).await.map_err(failed)?;
    let active = topology.active();
    let local = topology.region(active).cloned().ok_or_else(|| BenchError("no active region".into()))?;
    let peer = topology.region(active.other()).cloned().ok_or_else(|| BenchError("no second region".into()))?;
    let backends = topology.backends();
    let tenant: TenantId = "bench".parse().map_err(failed)?;
    let key = crate::add_tenant(&backends, &tenant).await.map_err(failed)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(failed)?;
    let address = listener.local_addr().map_err(failed)?;
    let app = api::router(api::ApiState::new(backends.clone(), config.api.clone(), None));
    let stop = CancellationToken::new();
    let server_stop = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { server_stop.cancelled().await }).await
    });

    let lags = Arc::new(std::sync::Mutex::new(Vec::new()));
    let loaded = CancellationToken::new();
    let mut shippers = JoinSet::new();
    for _ in 0..crate::recovery::ship::SHIPPERS {
        let (local, peer, lags, loaded) = (local.clone(), peer.clone(), Arc::clone(&lags), loaded.clone());
        shippers.spawn(async move {
            loop {
                let shipped = shared::replication::ship_once(&local, &peer, Duration::from_millis(100)).await?;
                let idle = shipped.lags_secs.is_empty();
                lags.lock().expect("not poisoned").extend(shipped.lags_secs);
                if idle && loaded.is_cancelled() && shared::replication::unshipped(&local).await? == 0 {
                    return Ok::<_, shared::ports::QueueError>(Instant::now());
                }
            }
        });
    }
    let (seconds, _) = post_load(address, &key, uploads, clients).await?;
    let load_done = Instant::now();
    loaded.cancel();
    let mut drained = load_done;
    while let Some(joined) = shippers.join_next().await {
        drained = drained.max(joined.map_err(failed)?.map_err(failed)?);
    }
    stop.cancel();
    let _ = server.await;
    let mut lags: Vec<f64> = std::mem::take(&mut *lags.lock().expect("not poisoned"));
    lags.iter_mut().for_each(|lag| *lag *= 1000.0);
    lags.sort_by(f64::total_cmp);

    let started = Instant::now();
    let selection = crate::recovery::replay::Selection::unfinished();
    let replay = crate::recovery::replay::replay_jobs(&local, &selection, false, &|_| {}).await.map_err(failed)?;
    let replay_seconds = started.elapsed().as_secs_f64();
    Ok(ReplicationReport {
        uploads,
        clients,
        uploads_per_second: uploads as f64 / seconds,
        changes_shipped: lags.len(),
        lag_p50_ms: percentile(&lags, 50.0),
        lag_p99_ms: percentile(&lags, 99.0),
        lag_max_ms: lags.last().copied().unwrap_or(0.0),
        drained_after_secs: (drained - load_done).as_secs_f64(),
        replayed_jobs: replay.replayed,
        replay_seconds,
        replay_jobs_per_second: replay.replayed as f64 / replay_seconds,
    })
}

/// Posts `uploads` copies of [`SMALL_INVOICE`] from `clients` concurrent clients to the API at
/// `address`; returns the wall time and the sorted latencies in milliseconds.
async fn post_load(
    address: std::net::SocketAddr,
    key: &shared::ports::ApiKey,
    uploads: usize,
    clients: usize,
) -> Result<(f64, Vec<f64>), BenchError> {
    let document = Bytes::from_static(SMALL_INVOICE);
    let client = reqwest::Client::new();
    let url = format!("http://{address}/v1/documents");
    let auth = format!("Bearer {}", key.expose());
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(uploads));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let (client, url, auth, document, remaining) =
            (client.clone(), url.clone(), auth.clone(), document.clone(), Arc::clone(&remaining));
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while remaining
                .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |n| {
                    n.checked_sub(1)
                })
                .is_ok()
            {
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/xml")
                    .body(document.clone())
                    .send()
                    .await
                    .map_err(failed)?;
                if response.status() != reqwest::StatusCode::ACCEPTED {
                    return Err(BenchError(format!("upload answered {}", response.status())));
                }
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, BenchError>(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(uploads);
    while let Some(result) = tasks.join_next().await {
        latencies.extend(result.map_err(failed)??);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok((seconds, latencies))
}

/// A minimal UBL invoice, about 1.5 KiB, so the upload benchmark needs no sample files.
pub(crate) const SMALL_INVOICE: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
  xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:ID>BENCH-1</cbc:ID>
  <cbc:IssueDate>2026-11-01</cbc:IssueDate>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cac:AccountingSupplierParty><cac:Party><cac:PartyLegalEntity><cbc:RegistrationName>Bench Supplier</cbc:RegistrationName></cac:PartyLegalEntity></cac:Party></cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty><cac:Party><cac:PartyLegalEntity><cbc:RegistrationName>Bench Customer</cbc:RegistrationName></cac:PartyLegalEntity></cac:Party></cac:AccountingCustomerParty>
  <cac:TaxTotal><cbc:TaxAmount currencyID="EUR">21.00</cbc:TaxAmount>
    <cac:TaxSubtotal><cbc:TaxableAmount currencyID="EUR">100.00</cbc:TaxableAmount><cbc:TaxAmount currencyID="EUR">21.00</cbc:TaxAmount>
      <cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>21</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory></cac:TaxSubtotal>
  </cac:TaxTotal>
  <cac:LegalMonetaryTotal><cbc:LineExtensionAmount currencyID="EUR">100.00</cbc:LineExtensionAmount><cbc:TaxExclusiveAmount currencyID="EUR">100.00</cbc:TaxExclusiveAmount><cbc:TaxInclusiveAmount currencyID="EUR">121.00</cbc:TaxInclusiveAmount><cbc:PayableAmount currencyID="EUR">121.00</cbc:PayableAmount></cac:LegalMonetaryTotal>
  <cac:InvoiceLine><cbc:ID>1</cbc:ID><cbc:InvoicedQuantity unitCode="C62">1</cbc:InvoicedQuantity><cbc:LineExtensionAmount currencyID="EUR">100.00</cbc:LineExtensionAmount>
    <cac:Item><cbc:Name>Benchmark item</cbc:Name><cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>21</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory></cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">100.00</cbc:PriceAmount></cac:Price></cac:InvoiceLine>
</Invoice>
"#;
