//! Chart loading: the chart of accounts a job is booked against, the tenant's own or the
//! worker's default.

use shared::chart::Chart;
use shared::domain::Job;
use tracing::warn;

use super::Context;
use super::outcome::WorkError;

/// The tenant's chart of accounts, or the worker's default when the tenant has not set one.
pub(super) async fn tenant_chart(context: &Context, job: &Job) -> Result<Chart, WorkError> {
    let stored =
        context.backends.blobs.get(&shared::chart::chart_key(&job.tenant)).await.map_err(WorkError::blob_store)?;
    match stored.map(|bytes| serde_json::from_slice::<Chart>(&bytes)) {
        Some(Ok(chart)) => Ok(chart),
        Some(Err(err)) => {
            // The API validates charts, so this is a stored chart from an older version.
            warn!(error = %err, "stored chart unreadable; using the default chart");
            Ok(context.options.chart.clone())
        }
        None => Ok(context.options.chart.clone()),
    }
}
