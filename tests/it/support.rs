//! Test harness: starts the real `surge` and `surge-worker` binaries on a scratch data
//! directory, talks to them over HTTP, and stops them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// Directory holding the workspace's binaries: `target/<profile>/`, the parent of `deps/`.
pub(crate) fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SURGE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target dir").to_owned()
}

pub(crate) fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --bins`, which the README's test command does)",
        path.display()
    );
    path
}

/// The public sample invoices, read in place (never copied into the repository).
pub(crate) fn samples() -> PathBuf {
    let dir = std::env::var_os("SURGE_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/samples"));
    assert!(
        dir.join("README.md").exists(),
        "sample invoices not found at {}; set SURGE_SAMPLES to the shared/samples directory",
        dir.display()
    );
    dir
}

/// Which backend a test instance runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// SQLite and files in the instance's scratch directory.
    Embedded,
    /// SQS and S3 on the test server (moto) that `scripts/test` starts; a fresh bucket and
    /// queue prefix per instance.
    Aws,
}

/// The SQS/S3-compatible test server's URL, which `scripts/test` exports.
pub(crate) fn aws_endpoint() -> String {
    std::env::var("SURGE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "SQS/S3 test server not running: run scripts/test, or `scripts/moto start /tmp/moto.url` and \
             export SURGE_TEST_AWS_ENDPOINT=$(cat /tmp/moto.url) AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test"
        )
    })
}

/// Runs each named scenario `async fn name(backend: Backend)` once per backend, as
/// `name::embedded` and `name::aws`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name(crate::support::Backend::Embedded).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn aws() {
                super::$name(crate::support::Backend::Aws).await
            }
        }
    )*};
}
pub(crate) use on_both_backends;

/// Settings for a test instance.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) backend: Backend,
    pub(crate) small_workers: usize,
    pub(crate) large_workers: usize,
    /// Extra `SURGE_*` environment for `surge` and its workers.
    pub(crate) env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            backend: Backend::Embedded,
            small_workers: 2,
            large_workers: 1,
            env: vec![
                ("SURGE_WORKER__VISIBILITY_TIMEOUT_SECS".into(), "3".into()),
                ("SURGE_WORKER__RETRY_BASE_DELAY_MS".into(), "100".into()),
                ("SURGE_WORKER__DRAIN_TIMEOUT_SECS".into(), "5".into()),
                ("SURGE_LOG".into(), "warn".into()),
            ],
        }
    }
}

/// A running `surge up`.
pub(crate) struct Surge {
    child: Child,
    pub(crate) base: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) demo_key: Option<String>,
    pub(crate) client: reqwest::Client,
    options: Options,
}

impl Surge {
    /// Starts `surge up` on `data_dir` and waits until it listens.
    pub(crate) fn start_in(data_dir: &Path, options: Options) -> anyhow::Result<Surge> {
        let config_file = data_dir.join("surge.toml");
        if !config_file.exists() {
            write_config(&config_file, data_dir, &options)?;
        }
        let mut command = Command::new(binary("surge"));
        command
            .args(["up", "--listen", "127.0.0.1:0"])
            .args(common_args(data_dir))
            .args(["--small-workers", &options.small_workers.to_string()])
            .args(["--large-workers", &options.large_workers.to_string()])
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().context("spawn surge up")?;
        let stdout = child.stdout.take().context("surge stdout")?;
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut base = None;
        let mut demo_key = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while base.is_none() {
            let line = received
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .context("surge up did not report its address in time")?;
            if let Some(rest) = line.split("API key ").nth(1) {
                demo_key = Some(rest.trim().to_owned());
            }
            if let Some(address) = line.strip_prefix("Surge is listening on ") {
                base = Some(address.trim().to_owned());
            }
        }
        let base = base.context("no address")?;
        Ok(Surge { child, base, data_dir: data_dir.to_owned(), demo_key, client: reqwest::Client::new(), options })
    }

    /// Creates a tenant through `surge tenant add` and returns its key.
    pub(crate) fn add_tenant(&self, name: &str) -> anyhow::Result<String> {
        let output = Command::new(binary("surge"))
            .args(["tenant", "add", name])
            .args(common_args(&self.data_dir))
            .env("SURGE_LOG", "warn")
            .output()?;
        if !output.status.success() {
            bail!("surge tenant add failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    }

    /// Starts one extra `surge-worker` process on this instance's data directory.
    pub(crate) fn start_worker(&self, lane: &str, extra: &[&str]) -> anyhow::Result<Worker> {
        let child = Command::new(binary("surge-worker"))
            .args(["run", "--lane", lane])
            .args(common_args(&self.data_dir))
            .args(extra)
            .envs(self.options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .spawn()?;
        Ok(Worker(child))
    }

    pub(crate) async fn upload(&self, key: &str, content_type: &str, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        self.upload_with(key, content_type, body, None).await
    }

    pub(crate) async fn upload_with(
        &self,
        key: &str,
        content_type: &str,
        body: Vec<u8>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .client
            .post(format!("{}/v1/documents", self.base))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body);
        if let Some(idempotency_key) = idempotency_key {
            request = request.header("idempotency-key", idempotency_key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    pub(crate) async fn get(&self, key: &str, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = self.client.get(format!("{}{}", self.base, path)).bearer_auth(key).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// Polls a document until it is finished (succeeded, failed or dead).
    pub(crate) async fn wait_finished(&self, key: &str, id: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, body) = self.get(key, &format!("/v1/documents/{id}")).await?;
            if status != 200 {
                bail!("status of {id} answered {status}: {body}");
            }
            if matches!(body["status"].as_str(), Some("succeeded" | "failed" | "dead")) {
                return Ok(body);
            }
            if Instant::now() > deadline {
                bail!("document {id} did not finish in {timeout:?}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops gracefully (SIGTERM, as Ctrl-C would) and waits.
    pub(crate) fn stop(mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Ok(status);
        }
        let pid = Pid::from_raw(i32::try_from(self.child.id())?);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("surge did not stop within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Surge {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// Arguments every `surge` and `surge-worker` command of an instance gets.
fn common_args(data_dir: &Path) -> Vec<String> {
    let config = data_dir.join("surge.toml").display().to_string();
    vec!["--config".into(), config, "--data-dir".into(), data_dir.display().to_string()]
}

/// Writes the instance's config file; for AWS a fresh bucket and queue prefix, bootstrapped.
fn write_config(path: &Path, data_dir: &Path, options: &Options) -> anyhow::Result<()> {
    let backend = options.backend;
    let text = match backend {
        Backend::Embedded => format!("data_dir = {:?}\n", data_dir.display().to_string()),
        Backend::Aws => {
            let suffix = &uuid::Uuid::new_v4().simple().to_string()[..16];
            format!(
                "data_dir = {:?}\n[primary]\nbackend = \"aws\"\nregion = \"us-east-1\"\nendpoint_url = {:?}\n\
                 bucket = \"surge-test-{suffix}\"\nqueue_prefix = \"t{suffix}-\"\n",
                data_dir.display().to_string(),
                aws_endpoint(),
            )
        }
    };
    std::fs::write(path, text)?;
    if backend == Backend::Aws {
        let output = Command::new(binary("surge"))
            .args(["aws", "bootstrap"])
            .args(common_args(data_dir))
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()?;
        if !output.status.success() {
            bail!("surge aws bootstrap failed: {}", String::from_utf8_lossy(&output.stderr));
        }
    }
    Ok(())
}

impl Surge {
    /// The instance's backends, opened from its config file as the binaries open them.
    pub(crate) async fn backends(&self) -> shared::backend::Backends {
        let env: std::collections::BTreeMap<String, String> = self.options.env.iter().cloned().collect();
        let config = shared::config::Config::load(Some(&self.data_dir.join("surge.toml")), &env).expect("config");
        shared::backend::Backends::open(&config).await.expect("open backends")
    }
}

/// A `surge-worker` process a test started; killed when dropped, so a failing test leaves no
/// process behind.
pub(crate) struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        sigkill(self);
    }
}

/// Kills a worker without letting it clean up, as a crash or a lost machine would.
pub(crate) fn sigkill(worker: &mut Worker) {
    if let Ok(None) = worker.0.try_wait() {
        let _ = kill(Pid::from_raw(worker.0.id() as i32), Signal::SIGKILL);
    }
    let _ = worker.0.wait();
}
