//! The operator dashboard end to end: `surge up` with a maintenance window, a burst of
//! uploads, and the page rendered by headless Chromium (Debian's `chromium`, which the test
//! command installs): the DOM after its scripts ran, and a screenshot in
//! `target/screenshots/dashboard.png`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;

use crate::support::{Options, Surge, samples};

fn chromium() -> PathBuf {
    let path =
        std::env::var_os("SURGE_TEST_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(path.exists(), "{} is missing: run scripts/test (it installs Debian's chromium)", path.display());
    path
}

/// Runs headless Chromium on `url` with `extra` arguments (`--dump-dom`, `--screenshot=…`) and
/// returns its stdout. Flags: no sandbox (root in CI), nothing that phones home.
fn run_chromium(url: &str, profile: &Path, extra: &[&str]) -> String {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,1300",
            // Lets the page's fetches and two-second refresh run before the DOM is taken.
            "--virtual-time-budget=6000",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_burst_live_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let (starts, ends) = (now - chrono::Duration::minutes(5), now + chrono::Duration::hours(1));
    std::fs::write(
        dir.path().join("surge.toml"),
        format!(
            "data_dir = {:?}\n[[maintenance]]\nstarts_at = {:?}\nends_at = {:?}\nmessage = \"Worker upgrade; uploads keep working\"\n",
            dir.path().display().to_string(),
            starts.to_rfc3339(),
            ends.to_rfc3339()
        ),
    )
    .unwrap();
    let mut options = Options { small_workers: 1, large_workers: 0, ..Options::default() };
    options.env.push(("SURGE_WORKER__DEBUG_DELAY_MS".into(), "300".into()));
    let surge = Surge::start_in(dir.path(), options).unwrap();
    let key = surge.demo_key.clone().unwrap();
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();

    // Tenants see the maintenance window; operators without the token see nothing else.
    let (code, status) = surge.get(&key, "/v1/status").await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(status["status"], "maintenance", "{status}");
    let anonymous = surge.client.get(format!("{}/admin/overview", surge.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let tenant_key = surge.client.get(format!("{}/admin/overview", surge.base)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(tenant_key.status(), 401, "a tenant's key is not the admin token");

    let invoice = std::fs::read(samples().join("peppol-bis3/base-example.xml")).unwrap();
    for _ in 0..30 {
        let (code, _) = surge.upload(&key, "application/xml", invoice.clone()).await.unwrap();
        assert_eq!(code, 202);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let overview: serde_json::Value = surge
        .client
        .get(format!("{}/admin/overview", surge.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(overview["status"]["epoch"]["active"], "primary", "{overview}");
    assert!(overview["latest"]["lanes"]["small"]["desired"].as_u64().unwrap() >= 1, "{overview}");
    assert_eq!(overview["maintenance"][0]["active"], true, "{overview}");

    let url = format!("{}/dashboard?token={}", surge.base, token);
    let profile = tempfile::tempdir().unwrap();
    let dom = run_chromium(&url, profile.path(), &["--dump-dom"]);
    assert!(dom.contains(r#"data-loaded="true""#), "the page's script rendered an overview: {dom}");
    assert!(dom.contains("active region: primary"), "{dom}");
    assert!(dom.contains("Worker upgrade; uploads keep working"), "maintenance banner: {dom}");
    assert!(dom.contains("/admin/charts/backlog.svg?t="), "charts are loaded: {dom}");
    assert!(dom.contains(">succeeded<"), "jobs by status are listed: {dom}");

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(&url, profile.path(), &[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a rendered page, {} bytes", png.len());
    surge.stop().unwrap();
}
