//! Crashes and restarts: a worker killed mid-job, a graceful restart with work outstanding.

use std::time::Duration;

use crate::support::{Backend, Options, Surge, on_both_backends, samples, sigkill};

on_both_backends!(
    a_worker_killed_mid_job_leaves_exactly_one_result,
    a_restart_resumes_unfinished_jobs,
    one_tenants_burst_does_not_starve_another,
    a_job_that_keeps_killing_its_workers_ends_dead,
    a_long_job_outlives_its_visibility_timeout,
);

/// No managed workers (and no autoscaler): the test starts and kills its own.
fn no_workers(backend: Backend) -> Options {
    let mut options = Options { backend, small_workers: 0, large_workers: 0, ..Options::default() };
    options.env.push(("SURGE_POOL__AUTOSCALE".into(), "false".into()));
    options
}

async fn a_worker_killed_mid_job_leaves_exactly_one_result(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = no_workers(backend);
    // A visibility timeout far longer than the test may take: the job can only come back in
    // time because the dispatcher notices the silent worker and hands the job back.
    options.env.push(("SURGE_WORKER__VISIBILITY_TIMEOUT_SECS".into(), "600".into()));
    let surge = Surge::start_in(dir.path(), options).unwrap();
    let key = surge.demo_key.clone().unwrap();
    let mut slow = surge.start_worker("small", &["--debug-delay-ms", "60000"]).unwrap();

    let invoice = std::fs::read(samples().join("xrechnung/01.01a-INVOICE_ubl.xml")).unwrap();
    let (status, body) = surge.upload(&key, "application/xml", invoice).await.unwrap();
    assert_eq!(status, 202);
    let id = body["id"].as_str().unwrap().to_owned();

    // Wait until the slow worker holds the job and has reported it, then kill it without warning.
    let workers = surge.backends().await.workers;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let beats = workers.list().await.unwrap();
        if beats.iter().any(|beat| beat.in_flight.iter().any(|job| job.job_id.to_string() == id)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the worker never reported the job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigkill(&mut slow);

    let mut healthy = surge.start_worker("small", &[]).unwrap();
    let done = surge.wait_finished(&key, &id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "the killed attempt and the one that finished: {done}");
    let (status, _) = surge.get(&key, &format!("/v1/documents/{id}/result")).await.unwrap();
    assert_eq!(status, 200);
    let results = surge.backends().await.blobs.list("results/demo/").await.unwrap();
    assert_eq!(results, vec![format!("results/demo/{id}.json")], "exactly one result");
    sigkill(&mut healthy);
    surge.stop().unwrap();
}

async fn a_restart_resumes_unfinished_jobs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let surge = Surge::start_in(dir.path(), no_workers(backend)).unwrap();
    let key = surge.demo_key.clone().unwrap();
    let invoice = std::fs::read(samples().join("peppol-bis3/base-example.xml")).unwrap();
    let mut ids = Vec::new();
    for _ in 0..10 {
        let (status, body) = surge.upload(&key, "application/xml", invoice.clone()).await.unwrap();
        assert_eq!(status, 202);
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    // Let the dispatcher take some of them into its hands before stopping.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = surge.stop().unwrap();
    assert!(status.success(), "graceful stop exits cleanly: {status}");

    let surge = Surge::start_in(dir.path(), Options { backend, ..Options::default() }).unwrap();
    assert!(surge.demo_key.is_none(), "the demo tenant is created only once");
    for id in &ids {
        let done = surge.wait_finished(&key, id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    surge.stop().unwrap();
}

async fn one_tenants_burst_does_not_starve_another(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = no_workers(backend);
    options.env.push(("SURGE_WORKER__CONCURRENCY".into(), "1".into()));
    let surge = Surge::start_in(dir.path(), options).unwrap();
    let burst = surge.add_tenant("burst").unwrap();
    let quiet = surge.add_tenant("quiet").unwrap();
    let invoice = std::fs::read(samples().join("peppol-bis3/base-example.xml")).unwrap();
    let mut burst_ids = Vec::new();
    for _ in 0..150 {
        let (status, body) = surge.upload(&burst, "application/xml", invoice.clone()).await.unwrap();
        assert_eq!(status, 202);
        burst_ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let (status, body) = surge.upload(&quiet, "application/xml", invoice.clone()).await.unwrap();
    assert_eq!(status, 202);
    let quiet_id = body["id"].as_str().unwrap().to_owned();
    // Give the dispatcher a moment to see the quiet tenant's upload, then start one worker.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut worker = surge.start_worker("small", &[]).unwrap();

    let quiet_job = surge.wait_finished(&quiet, &quiet_id, Duration::from_secs(60)).await.unwrap();
    let started =
        |job: &serde_json::Value| job["started_at"].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    let quiet_started = started(&quiet_job).unwrap();
    let mut started_before = 0;
    for id in &burst_ids {
        let (_, job) = surge.get(&burst, &format!("/v1/documents/{id}")).await.unwrap();
        if started(&job).is_some_and(|s| s < quiet_started) {
            started_before += 1;
        }
    }
    assert!(
        started_before <= 8,
        "the quiet tenant's single document started after {started_before} of the burst's 150"
    );
    sigkill(&mut worker);
    surge.stop().unwrap();
}

async fn a_job_that_keeps_killing_its_workers_ends_dead(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = no_workers(backend);
    options.env.push(("SURGE_WORKER__MAX_ATTEMPTS".into(), "1".into()));
    let surge = Surge::start_in(dir.path(), options).unwrap();
    let key = surge.demo_key.clone().unwrap();
    let mut slow = surge.start_worker("small", &["--debug-delay-ms", "60000"]).unwrap();
    let invoice = std::fs::read(samples().join("peppol-bis3/base-example.xml")).unwrap();
    let (_, body) = surge.upload(&key, "application/xml", invoice).await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while surge.get(&key, &format!("/v1/documents/{id}")).await.unwrap().1["status"] != "processing" {
        assert!(std::time::Instant::now() < deadline, "job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigkill(&mut slow);

    let mut healthy = surge.start_worker("small", &[]).unwrap();
    let done = surge.wait_finished(&key, &id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done["status"], "dead", "out of attempts: {done}");
    assert_eq!(done["error"]["code"], "attempts_exhausted", "{done}");
    let (status, body) = surge.get(&key, &format!("/v1/documents/{id}/result")).await.unwrap();
    assert_eq!((status, body["code"].as_str()), (422, Some("processing_failed")));
    // The message waits in the dead-letter queue for an operator. The worker moves it there
    // right after it buried the job, so it may arrive a moment after the status says `dead`.
    let backends = surge.backends().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut depth = backends.dead_letter.depth().await.unwrap();
    while depth.visible == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        depth = backends.dead_letter.depth().await.unwrap();
    }
    assert_eq!(depth.visible, 1, "one message in the dead-letter queue");
    sigkill(&mut healthy);
    surge.stop().unwrap();
}

async fn a_long_job_outlives_its_visibility_timeout(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let surge = Surge::start_in(dir.path(), no_workers(backend)).unwrap();
    let key = surge.demo_key.clone().unwrap();
    // Each job takes 5 s, longer than the 3 s visibility timeout: the heartbeat must keep the
    // message hidden and the lease alive, so no second worker starts on it.
    let mut slow = surge.start_worker("small", &["--debug-delay-ms", "5000"]).unwrap();
    let mut other = surge.start_worker("small", &[]).unwrap();
    let invoice = std::fs::read(samples().join("peppol-bis3/base-example.xml")).unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (_, body) = surge.upload(&key, "application/xml", invoice.clone()).await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let done = surge.wait_finished(&key, id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["attempts"], 1, "no job was taken over while its worker was alive: {done}");
    }
    sigkill(&mut slow);
    sigkill(&mut other);
    surge.stop().unwrap();
}
