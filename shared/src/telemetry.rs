//! Process set-up shared by every binary: tracing, metrics, and the shutdown signal.

use std::str::FromStr;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}; expected text or json")),
        }
    }
}

/// Installs the global tracing subscriber, writing to stderr. `filter` uses `RUST_LOG` syntax.
pub fn init_tracing(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Installs the global Prometheus metrics recorder and returns the handle that renders
/// `/metrics`. Returns `None` when a recorder is already installed (tests in one process).
pub fn init_metrics() -> Option<PrometheusHandle> {
    let buckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
    // Gauges nobody sets any more (a tenant no longer among the busiest) leave `/metrics`.
    let recorder = PrometheusBuilder::new()
        .set_buckets(&buckets)
        .ok()?
        .idle_timeout(MetricKindMask::GAUGE, Some(std::time::Duration::from_secs(120)))
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).ok()?;
    crate::series::describe();
    Some(handle)
}

/// Cancels `shutdown` on SIGINT (Ctrl-C) or SIGTERM, the root of every graceful stop.
pub async fn cancel_on_signal(shutdown: tokio_util::sync::CancellationToken) {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
