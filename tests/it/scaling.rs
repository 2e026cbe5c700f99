//! The elastic pool of `surge up`: a burst scales the pool up within seconds, quiet scales it
//! back down after the stabilisation window, and no busy worker is ever stopped.

use std::time::{Duration, Instant};

use crate::support::{Backend, Options, Surge, samples};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_scales_the_pool_up_and_quiet_scales_it_down_without_interrupting_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options { backend: Backend::Embedded, small_workers: 1, large_workers: 0, ..Options::default() };
    options.env.extend(
        [
            // Every job takes a second, so a burst is many seconds of work.
            ("SURGE_WORKER__DEBUG_DELAY_MS", "1000"),
            ("SURGE_WORKER__CONCURRENCY", "1"),
            ("SURGE_SCALING__SMALL__MIN_WORKERS", "1"),
            ("SURGE_SCALING__SMALL__MAX_WORKERS", "3"),
            ("SURGE_SCALING__SMALL__LATENCY_TARGET_SECS", "3"),
            ("SURGE_SCALING__SMALL__STARTUP_DELAY_SECS", "1"),
            ("SURGE_SCALING__SMALL__SCALE_DOWN_STABILISATION_SECS", "3"),
            ("SURGE_SCALING__SMALL__SCALE_DOWN_MIN_SAVING_WORKER_SECS", "2"),
            ("SURGE_SCALING__SMALL__INITIAL_COST_SECS_PER_UNIT", "1.0"),
            ("SURGE_SCALING__LARGE__MAX_WORKERS", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let surge = Surge::start_in(dir.path(), options).unwrap();
    let key = surge.demo_key.clone().unwrap();
    let workers = surge.backends().await.workers;
    let invoice = std::fs::read(samples().join("peppol-bis3/base-example.xml")).unwrap();
    let mut ids = Vec::new();
    for _ in 0..24 {
        let (status, body) = surge.upload(&key, "application/xml", invoice.clone()).await.unwrap();
        assert_eq!(status, 202);
        ids.push(body["id"].as_str().unwrap().to_owned());
    }

    let live_small = || async {
        let beats = workers.list().await.unwrap();
        beats.iter().filter(|b| b.lanes.first() == Some(&shared::domain::Lane::Small) && !b.draining).count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut peak = 0;
    while peak < 3 {
        peak = peak.max(live_small().await);
        assert!(Instant::now() < deadline, "the pool never grew to 3 workers (peak {peak})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for id in &ids {
        let done = surge.wait_finished(&key, id, Duration::from_secs(90)).await.unwrap();
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["attempts"], 1, "no job was interrupted by scaling: {done}");
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    while live_small().await > 1 {
        assert!(Instant::now() < deadline, "the pool never shrank back to its minimum");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    surge.stop().unwrap();
}
