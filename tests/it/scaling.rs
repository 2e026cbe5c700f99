//! The elastic pool of `surge up` under a real burst: the pool grows to its maximum within
//! seconds and shrinks back when the burst is done, every job ends with exactly one result while
//! workers start and drain, and workers killed at random in the middle of the burst lose nothing.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::seq::IndexedRandom;
use shared::domain::Lane;
use shared::ports::{WorkerBeat, WorkerRegistry};

use crate::support::{Backend, Options, Surge, samples};

/// Small-lane workers at most.
const MAX_WORKERS: usize = 4;

/// A `surge up` whose workers run the synthetic 200 ms processor one job at a time, with a small
/// lane of 1 to [`MAX_WORKERS`] workers and a 3 s latency target.
fn start(dir: &std::path::Path) -> Surge {
    let mut options = Options { backend: Backend::Embedded, small_workers: 1, large_workers: 0, ..Options::default() };
    options.env.extend(
        [
            ("SURGE_WORKER__PROCESSOR", "sleep:200ms"),
            ("SURGE_WORKER__CONCURRENCY", "1"),
            ("SURGE_SCALING__SMALL__MIN_WORKERS", "1"),
            ("SURGE_SCALING__SMALL__MAX_WORKERS", &MAX_WORKERS.to_string()),
            ("SURGE_SCALING__SMALL__LATENCY_TARGET_SECS", "3"),
            ("SURGE_SCALING__SMALL__STARTUP_DELAY_SECS", "1"),
            ("SURGE_SCALING__SMALL__SCALE_DOWN_STABILISATION_SECS", "3"),
            ("SURGE_SCALING__SMALL__SCALE_DOWN_MIN_SAVING_WORKER_SECS", "2"),
            ("SURGE_SCALING__SMALL__INITIAL_COST_SECS_PER_UNIT", "0.2"),
            ("SURGE_SCALING__LARGE__MAX_WORKERS", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Surge::start_in(dir, options).unwrap()
}

/// Uploads `n` invoices; returns their ids.
async fn burst(surge: &Surge, key: &str, n: usize) -> Vec<String> {
    let invoice = std::fs::read(samples().join("peppol-bis3/base-example.xml")).unwrap();
    let mut ids = Vec::new();
    for _ in 0..n {
        let (status, body) = surge.upload(key, "application/xml", invoice.clone()).await.unwrap();
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Small-lane workers alive now (a beat within the last 2 s), draining or not.
async fn small_workers(registry: &dyn WorkerRegistry) -> Vec<WorkerBeat> {
    let now = Utc::now();
    let beats = registry.list().await.unwrap();
    beats
        .into_iter()
        .filter(|b| b.lanes.first() == Some(&Lane::Small) && (now - b.last_seen).num_milliseconds() < 2000)
        .collect()
}

/// Waits for every job, checks each has exactly one result (its own), and that the tenant has
/// exactly these jobs; returns the jobs that needed more than one attempt.
async fn every_job_has_one_result(surge: &Surge, key: &str, ids: &[String]) -> usize {
    let mut retried = 0;
    for id in ids {
        let done = surge.wait_finished(key, id, Duration::from_secs(180)).await.unwrap();
        assert_eq!(done["status"], "succeeded", "{done}");
        if done["attempts"].as_u64().unwrap_or(0) > 1 {
            retried += 1;
        }
        let (status, result) = surge.get(key, &format!("/v1/documents/{id}/result")).await.unwrap();
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["synthetic"], true, "{result}");
        assert_eq!(result["job_id"].as_str(), Some(id.as_str()), "each job's own result: {result}");
    }
    let mut listed = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/documents?limit=500&cursor={c}"),
            None => "/v1/documents?limit=500".to_owned(),
        };
        let (status, page) = surge.get(key, &path).await.unwrap();
        assert_eq!(status, 200, "{page}");
        for doc in page["documents"].as_array().unwrap() {
            assert!(listed.insert(doc["id"].as_str().unwrap().to_owned()), "listed twice: {doc}");
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let uploaded: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(listed, uploaded, "one job per upload, no more, no fewer");
    retried
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_grows_the_pool_to_its_maximum_and_quiet_shrinks_it_without_interrupting_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let surge = start(dir.path());
    let key = surge.demo_key.clone().unwrap();
    let registry = surge.backends().await.workers;

    // 300 jobs of 200 ms: 60 s of work for a 3 s target. Watch the pool while they run.
    let watch = {
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            loop {
                peak = peak.max(small_workers(registry.as_ref()).await.iter().filter(|b| !b.draining).count());
                if peak >= MAX_WORKERS {
                    return peak;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let ids = burst(&surge, &key, 300).await;
    let peak = tokio::time::timeout(Duration::from_secs(60), watch).await.expect("the pool never grew to its maximum");
    assert_eq!(peak.unwrap(), MAX_WORKERS);

    let retried = every_job_has_one_result(&surge, &key, &ids).await;
    assert_eq!(retried, 0, "scaling interrupted no job");

    let deadline = Instant::now() + Duration::from_secs(120);
    while small_workers(registry.as_ref()).await.len() > 1 {
        assert!(Instant::now() < deadline, "the pool never shrank back to its minimum");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    surge.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_at_random_during_a_burst_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let surge = start(dir.path());
    let key = surge.demo_key.clone().unwrap();
    let registry = surge.backends().await.workers;

    let ids = burst(&surge, &key, 200).await;
    // SIGKILL a random busy worker six times while the burst runs: the pool replaces it, the
    // dispatcher writes it off within seconds and its job goes back to the queue.
    let mut killed = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while killed.len() < 6 {
        assert!(Instant::now() < deadline, "only {} workers killed: the burst ended too soon", killed.len());
        tokio::time::sleep(Duration::from_millis(700)).await;
        let busy: Vec<WorkerBeat> = small_workers(registry.as_ref())
            .await
            .into_iter()
            .filter(|b| !b.in_flight.is_empty() && !killed.contains(&b.pid))
            .collect();
        if let Some(victim) = busy.choose(&mut rand::rng()) {
            let _ = kill(Pid::from_raw(victim.pid as i32), Signal::SIGKILL);
            killed.insert(victim.pid);
        }
    }

    let retried = every_job_has_one_result(&surge, &key, &ids).await;
    assert!(retried >= 1, "a killed worker's job was run again");
    surge.stop().unwrap();
}

/// A large document while the large lane sleeps (no worker, woken only by 6 waiting documents
/// or one that waited 675 s) goes to an idle small-lane worker, and the large lane stays asleep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_document_borrows_an_idle_small_worker_while_the_large_lane_sleeps() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options { backend: Backend::Embedded, small_workers: 3, large_workers: 0, ..Options::default() };
    options.env.extend(
        [
            // Every document counts as large.
            ("SURGE_LANES__LARGE_FROM_BYTES", "1"),
            ("SURGE_SCALING__SMALL__MIN_WORKERS", "3"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let surge = Surge::start_in(dir.path(), options).unwrap();
    let key = surge.demo_key.clone().unwrap();
    let registry = surge.backends().await.workers;

    let invoice = std::fs::read(samples().join("peppol-bis3/base-example.xml")).unwrap();
    let (status, body) = surge.upload(&key, "application/xml", invoice).await.unwrap();
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap();
    let done = surge.wait_finished(&key, id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    let (status, result) = surge.get(&key, &format!("/v1/documents/{id}/result")).await.unwrap();
    assert_eq!(status, 200, "{result}");

    let beats = registry.list().await.unwrap();
    assert!(beats.iter().all(|b| b.lanes.first() == Some(&Lane::Small)), "no large-lane worker: {beats:?}");
    let metrics = surge.client.get(format!("{}/metrics", surge.base)).send().await.unwrap().text().await.unwrap();
    let lent = metrics.lines().find(|l| l.starts_with("surge_lent_jobs_total{")).unwrap_or_default().to_owned();
    assert!(lent.contains("from=\"large\"") && lent.ends_with(" 1"), "one job lent: {lent}\n{metrics}");
    surge.stop().unwrap();
}
