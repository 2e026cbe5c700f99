//! Disaster recovery on both backends (embedded: two data directories; AWS: two regions on the
//! test server): the drill (load, primary lost, failover, replay, failback) loses and duplicates
//! nothing in sync and async mode; backups verify and restore; replay is idempotent; a primary
//! that is still running when the secondary is promoted stops.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::config::Config;
use shared::region::{RegionName, Topology};

use crate::support::{Backend, aws_endpoint, binary, on_both_backends};

on_both_backends!(drill_in_sync_mode_then_backup_restore_and_replay, drill_in_async_mode, a_running_primary_is_fenced);

/// A scratch deployment with two regions: its data directory and config file.
struct TwoRegions {
    /// Kept for its lifetime: the scratch data directory.
    _dir: tempfile::TempDir,
    config_file: PathBuf,
}

impl TwoRegions {
    /// Embedded: `region-1` and `region-2` under the data directory. AWS: eu-central-1 and
    /// eu-west-1 on the test server, each with a fresh bucket and queue prefix, bootstrapped.
    fn new(backend: Backend, mode: &str) -> TwoRegions {
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("surge.toml");
        let mut text = format!("data_dir = {:?}\n[replication]\nmode = {mode:?}\n", dir.path().display().to_string());
        if backend == Backend::Aws {
            let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
            for (table, region, letter) in [("primary", "eu-central-1", "p"), ("secondary", "eu-west-1", "s")] {
                text.push_str(&format!(
                    "[{table}]\nbackend = \"aws\"\nregion = \"{region}\"\nendpoint_url = {:?}\n\
                     bucket = \"surge-{letter}-{suffix}\"\nqueue_prefix = \"{letter}{suffix}-\"\n",
                    aws_endpoint()
                ));
            }
        }
        std::fs::write(&config_file, text).unwrap();
        let regions = TwoRegions { _dir: dir, config_file };
        if backend == Backend::Aws {
            let output = regions.command(&["aws", "bootstrap"]).output().unwrap();
            assert!(output.status.success(), "bootstrap: {}", String::from_utf8_lossy(&output.stderr));
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                stdout.contains("primary: created bucket") && stdout.contains("secondary: created bucket"),
                "{stdout}"
            );
        }
        regions
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary("surge"));
        command.args(["--config", &self.config_file.display().to_string()]).args(args).env("SURGE_LOG", "warn");
        command
    }

    /// Runs an operator command with `--json` and returns what it printed.
    fn json(&self, args: &[&str]) -> Value {
        let output = self.command(args).arg("--json").output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn config(&self) -> Config {
        Config::load(Some(&self.config_file), &Default::default()).unwrap()
    }

    async fn topology(&self) -> Topology {
        Topology::open_any(&self.config()).await.unwrap()
    }
}

/// A `surge up` of a test: killed with its process group if the test ends early.
struct Up(std::process::Child);

impl Up {
    fn spawn(regions: &TwoRegions, port: u16) -> Up {
        let listen = format!("127.0.0.1:{port}");
        let child = regions
            .command(&["up", "--listen", &listen, "--small-workers", "1", "--large-workers", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        Up(child)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        killpg(self.0.id());
    }
}

fn killpg(pid: u32) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
}

async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "surge up did not become ready at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_drill_passed(report: &Value, jobs: u64) {
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["jobs_accepted"], jobs, "{report}");
    assert_eq!(report["jobs_completed"], jobs, "{report}");
    assert_eq!(report["jobs_lost"], 0, "{report}");
    assert_eq!(report["jobs_duplicated"], 0, "{report}");
    assert_eq!(report["checksum_mismatches"], 0, "{report}");
    assert!(report["rto_secs"].as_f64().is_some(), "a job completed in the secondary: {report}");
    assert_eq!(report["failback"]["epoch"], 3, "{report}");
}

async fn drill_in_sync_mode_then_backup_restore_and_replay(backend: Backend) {
    let regions = TwoRegions::new(backend, "sync");
    let jobs = 40;
    let report = regions.json(&["drill", "--jobs", &jobs.to_string(), "--tenants", "acme,globex"]);
    assert_drill_passed(&report, jobs);
    assert_eq!(report["rpo"]["changes"], 0, "sync mode loses nothing: {report}");

    // A backup of what the drill left: create, list, verify every checksum in a scratch place.
    let manifest = regions.json(&["backup", "create"]);
    assert_eq!(manifest["jobs"], jobs);
    let id = manifest["id"].as_str().unwrap().to_owned();
    let listed = regions.json(&["backup", "list"]);
    assert!(listed.as_array().unwrap().iter().any(|b| b["id"] == id.as_str()), "{listed}");
    let verified = regions.json(&["backup", "verify", &id]);
    assert_eq!(verified["jobs"], jobs);
    assert!(verified["objects_checked"].as_u64().unwrap() >= 2 * jobs, "documents and results: {verified}");
    assert_eq!(verified["mismatched"].as_array().unwrap().len(), 0, "{verified}");
    assert_eq!(verified["missing"].as_array().unwrap().len(), 0, "{verified}");

    // Lose a document in the primary; restoring the backup brings it back, byte for byte.
    let topology = regions.topology().await;
    let primary = topology.region(RegionName::Primary).unwrap();
    let document = primary.blobs.list("documents/").await.unwrap().into_iter().next().expect("a document");
    let original = primary.blobs.get(&document).await.unwrap().unwrap();
    primary.blobs.delete(&document).await.unwrap();
    let restored = regions.json(&["backup", "restore", &id, "--to", "primary"]);
    assert_eq!(restored["jobs"], jobs, "{restored}");
    assert_eq!(primary.blobs.get(&document).await.unwrap(), Some(original), "{document} restored");

    // Replay is idempotent: finished jobs are never replayed, and a dry run changes nothing.
    let replay = regions.json(&["replay", "--status", "succeeded"]);
    assert_eq!(replay["replayed"], 0, "a job with a result is never replayed: {replay}");
    let dry = regions.json(&["replay", "--tenant", "acme", "--dry-run"]);
    assert_eq!(dry["replayed"], 0, "{dry}");
    let status = regions.json(&["status"]);
    assert_eq!(status["epoch"]["active"], "primary", "{status}");
    assert_eq!(status["epoch"]["epoch"], 3, "{status}");
}

async fn drill_in_async_mode(backend: Backend) {
    let regions = TwoRegions::new(backend, "async");
    let jobs = 30;
    let report = regions.json(&["drill", "--jobs", &jobs.to_string()]);
    assert_drill_passed(&report, jobs);
    assert_eq!(report["replication_mode"], "async", "{report}");
    assert!(report["rpo"]["changes"].as_u64().is_some(), "async mode measures what had not shipped: {report}");
}

/// A `surge up` that keeps running on the primary while an operator promotes the secondary
/// (a partition healed, or a failover while the old primary is still alive) stops serving as
/// soon as it sees the newer epoch; uploads go nowhere near the demoted region afterwards.
async fn a_running_primary_is_fenced(backend: Backend) {
    let regions = TwoRegions::new(backend, "sync");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut up = Up::spawn(&regions, port);
    wait_ready(&format!("http://127.0.0.1:{port}")).await;

    let failover = regions.json(&["failover", "--to", "secondary", "--wait-secs", "0"]);
    assert_eq!(failover["failover"]["old_region_fenced"], true, "{failover}");
    assert_eq!(failover["failover"]["epoch"], 2, "{failover}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = up.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the demoted surge up is still running 30 s after the failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut up.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "a demoted deployment exits with an error");
    assert!(stderr.contains("epoch"), "says why it stopped: {stderr}");

    let topology = regions.topology().await;
    assert_eq!(topology.active(), RegionName::Secondary);
    let status = regions.json(&["status"]);
    assert_eq!(status["epoch"]["active"], "secondary", "{status}");
}

/// `surge drill` next to a running `surge up` rehearses on that deployment: it loads it, kills
/// it and its workers, fails over, fails back and starts it again as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_against_a_running_deployment() {
    let regions = TwoRegions::new(Backend::Embedded, "sync");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut up = Up::spawn(&regions, port);
    wait_ready(&url).await;
    let original = up.0.id();
    let record = regions.config().data_dir.join("surge-up.json");
    // Whatever happens below, the deployment the drill starts again does not outlive the test.
    struct Restarted(PathBuf);
    impl Drop for Restarted {
        fn drop(&mut self) {
            let running = std::fs::read(&self.0).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            if let Some(pid) = running.and_then(|r| r["pid"].as_u64()) {
                killpg(pid as u32);
            }
        }
    }
    let _restarted = Restarted(record.clone());

    let output = regions.command(&["drill", "--jobs", "40", "--json"]).output().unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    });
    assert_drill_passed(&report, 40);
    let deployment = report["deployment"].as_str().unwrap();
    assert!(deployment.starts_with(&format!("the running deployment (pid {original}")), "{deployment}");
    assert!(up.0.wait().unwrap().code().is_none(), "the original surge up was killed by a signal");

    // The deployment runs again, on the primary.
    let client = reqwest::Client::new();
    let status = client.get(format!("{url}/readyz")).send().await.unwrap().status();
    assert!(status.is_success(), "restarted deployment answers: {status}");
    let running: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let pid = running["pid"].as_u64().unwrap() as i32;
    assert_ne!(pid as u32, original);
    assert_eq!(regions.json(&["status"])["epoch"]["active"], "primary");
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while record.exists() {
        assert!(Instant::now() < deadline, "the restarted deployment did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
