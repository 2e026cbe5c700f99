//! Rolling maintenance: `surge workers roll` replaces every worker of a running `surge up`
//! batch by batch while uploads keep arriving, and no job is lost or done twice.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::{Options, Surge, binary, samples};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_the_workers_during_uploads_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options { small_workers: 2, large_workers: 1, ..Options::default() };
    options.env.extend(
        [("SURGE_POOL__AUTOSCALE", "false"), ("SURGE_WORKER__DEBUG_DELAY_MS", "200")]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let surge = Arc::new(Surge::start_in(dir.path(), options).unwrap());
    let key = surge.demo_key.clone().unwrap();
    let workers = surge.backends().await.workers;
    let deadline = Instant::now() + Duration::from_secs(30);
    let old: HashSet<u32> = loop {
        let beats = workers.list().await.unwrap();
        if beats.len() == 3 {
            break beats.iter().map(|b| b.pid).collect();
        }
        assert!(Instant::now() < deadline, "three workers did not start: {beats:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Uploads keep coming for the whole roll.
    let invoice = std::fs::read(samples().join("peppol-bis3/base-example.xml")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let uploader = {
        let (surge, key, stop) = (Arc::clone(&surge), key.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = surge.upload(&key, "application/xml", invoice.clone()).await.unwrap();
                assert_eq!(status, 202, "an upload during the roll was refused: {body}");
                ids.push(body["id"].as_str().unwrap().to_owned());
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            ids
        })
    };

    let config = dir.path().join("surge.toml").display().to_string();
    let data_dir = dir.path().display().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(binary("surge"))
            .args(["--config", &config, "--data-dir", &data_dir, "workers", "roll", "--batch", "1", "--json"])
            .env("SURGE_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let ids = uploader.await.unwrap();
    assert!(output.status.success(), "roll failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["state"], "done", "{report}");
    assert_eq!(report["replaced"], 3, "{report}");
    assert!(ids.len() >= 10, "uploads went on during the roll: {}", ids.len());

    for id in &ids {
        let job = surge.wait_finished(&key, id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let (_, listing) = surge.get(&key, "/v1/documents?limit=500").await.unwrap();
    assert_eq!(listing["documents"].as_array().unwrap().len(), ids.len(), "one job per upload");

    let beats = workers.list().await.unwrap();
    let now: HashSet<u32> = beats.iter().filter(|b| !b.draining).map(|b| b.pid).collect();
    assert_eq!(now.len(), 3, "the pool has its size again: {beats:?}");
    assert!(now.is_disjoint(&old), "every worker was replaced: old {old:?}, now {now:?}");
    Arc::into_inner(surge).unwrap().stop().unwrap();
}
