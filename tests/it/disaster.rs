//! Disaster recovery on the embedded default: the drill (load, primary lost, failover, replay,
//! failback) loses and duplicates nothing; backups verify; a demoted region's `surge up` stops.

use std::process::Command;

use crate::support::binary;

#[test]
fn drill_loses_and_duplicates_nothing_in_sync_mode() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(binary("surge"))
        .args(["--data-dir", &dir.path().display().to_string(), "drill", "--jobs", "60", "--json"])
        .env("SURGE_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "drill failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["jobs_accepted"], 60);
    assert_eq!(report["jobs_completed"], 60);
    assert_eq!(report["jobs_lost"], 0);
    assert_eq!(report["jobs_duplicated"], 0);
    assert_eq!(report["checksum_mismatches"], 0);
    assert_eq!(report["rpo"]["changes"], 0, "sync mode loses nothing: {report}");
    assert!(report["rto_secs"].as_f64().is_some(), "a job completed in the secondary: {report}");
    assert_eq!(report["failback"]["epoch"], 3);

    // Backups of what the drill left: create, list, verify (every checksum), replay idempotency.
    let surge = |args: &[&str]| {
        let output = Command::new(binary("surge"))
            .args(["--data-dir", &dir.path().display().to_string()])
            .args(args)
            .env("SURGE_LOG", "warn")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let manifest = surge(&["backup", "create", "--json"]);
    assert_eq!(manifest["jobs"], 60);
    let id = manifest["id"].as_str().unwrap().to_owned();
    let listed = surge(&["backup", "list", "--json"]);
    assert!(listed.as_array().unwrap().iter().any(|b| b["id"] == id.as_str()));
    let verified = surge(&["backup", "verify", &id, "--json"]);
    assert_eq!(verified["jobs"], 60);
    assert!(verified["objects_checked"].as_u64().unwrap() >= 120, "documents and results: {verified}");
    assert_eq!(verified["mismatched"].as_array().unwrap().len(), 0);
    let replay = surge(&["replay", "--status", "succeeded", "--json"]);
    assert_eq!(replay["replayed"], 0, "a job with a result is never replayed: {replay}");
    let status = surge(&["status", "--json"]);
    assert_eq!(status["epoch"]["active"], "primary");
    assert_eq!(status["epoch"]["epoch"], 3);
}
