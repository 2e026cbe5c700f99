//! The AWS backend: SQS standard queues and one S3 bucket behind the four ports. The only module
//! in the workspace that imports `aws_sdk_*` or `aws_config`; no SDK type leaves it.
//!
//! Bucket layout: blobs at their own keys (`documents/…`, `results/…`); job records and their
//! indexes under `jobs/` (see `s3_jobs`); tenants under `tenants/` and `api-keys/`; claim-checked
//! queue payloads under `queue-payloads/`. Queues are named `{queue_prefix}{name}` for the names
//! in [`crate::ports::queue_names`].
//!
//! [`bootstrap`] creates the bucket and the queues; [`open`] only connects to them and fails,
//! naming `surge aws bootstrap`, when something is missing. Both use one shared `SdkConfig` with
//! the standard credential chain (environment, profile, SSO, container or instance role).

mod ecs;
mod objects;
mod provision;
mod s3_blobs;
mod s3_jobs;
mod s3_tenants;
mod s3_workers;
mod service_error;
mod sqs;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;
use aws_smithy_http_client::tls;

use crate::config::AwsSettings;
use crate::domain::Lane;
use crate::ports::Queue;
use crate::ports::{Backends, queue_names};
pub use ecs::EcsScaleTarget;
use objects::Bucket;
pub use provision::bootstrap;
use service_error::CallError;

/// First key segments owned by the adapters other than the blob store; blob keys may not use them.
const RESERVED_PREFIXES: [&str; 5] = ["jobs/", "tenants/", "api-keys/", "workers/", sqs::PAYLOAD_PREFIX];

/// Why the AWS backend could not be opened or bootstrapped.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// A queue or the bucket does not exist yet.
    #[error("{what} does not exist; run `surge aws bootstrap` to create it")]
    Missing { what: String },
    /// A call to SQS or S3 failed (credentials, permissions, network).
    #[error("cannot {action}: {message}")]
    Failed { action: String, message: String },
}

impl AwsError {
    fn failed(action: impl Into<String>, err: CallError) -> AwsError {
        AwsError::Failed { action: action.into(), message: err.to_string() }
    }
}

/// The SDK clients of one region, built from one shared `SdkConfig`.
#[derive(Clone)]
struct Clients {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
}

/// Builds the clients for `settings`. `credentials` overrides the standard chain (tests only).
async fn connect(settings: &AwsSettings, credentials: Option<Credentials>) -> Clients {
    let mut loader = sdk_loader(&settings.region);
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    let shared = loader.load().await;
    let path_style = settings.force_path_style.unwrap_or(settings.endpoint_url.is_some());
    let s3_config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(path_style).build();
    Clients { s3: aws_sdk_s3::Client::from_conf(s3_config), sqs: aws_sdk_sqs::Client::new(&shared) }
}

/// The standard credential chain for `region`, over an HTTPS client on rustls with ring (the
/// SDK's default, aws-lc, takes minutes of C compilation and brings nothing Surge uses).
fn sdk_loader(region: &str) -> aws_config::ConfigLoader {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned())).http_client(http_client)
}

/// Opens every port on the bucket and queues that [`bootstrap`] created. Creates nothing; a
/// missing queue or bucket is an [`AwsError::Missing`]. `max_attempts` is the worker setting the
/// queues' redrive policy was made for; a queue set up for another value is logged.
pub async fn open(settings: &AwsSettings, max_attempts: u32) -> Result<Backends, AwsError> {
    open_with(&connect(settings, None).await, settings, max_attempts).await
}

async fn open_with(clients: &Clients, settings: &AwsSettings, max_attempts: u32) -> Result<Backends, AwsError> {
    let bucket = Bucket::new(clients.s3.clone(), &settings.bucket);
    match bucket.exists().await {
        Ok(true) => {}
        Ok(false) => return Err(AwsError::Missing { what: format!("bucket {}", settings.bucket) }),
        Err(err) => return Err(AwsError::failed(format!("reach bucket {}", settings.bucket), err)),
    }
    let max_receives = Some(provision::max_receives(max_attempts));
    let queue = |name, max_receives| open_queue(clients, settings, &bucket, name, max_receives);
    Ok(Backends {
        jobs: Arc::new(s3_jobs::S3JobStore::new(bucket.clone())),
        tenants: Arc::new(s3_tenants::S3TenantDirectory::new(bucket.clone())),
        workers: Arc::new(s3_workers::S3WorkerRegistry::new(bucket.clone())),
        blobs: Arc::new(s3_blobs::S3BlobStore::new(bucket.clone())),
        incoming: queue(queue_names::INCOMING, max_receives).await?,
        small_lane: queue(queue_names::lane(Lane::Small), max_receives).await?,
        large_lane: queue(queue_names::lane(Lane::Large), max_receives).await?,
        dead_letter: queue(queue_names::DEAD_LETTER, None).await?,
        replication: queue(queue_names::REPLICATION, None).await?,
    })
}

/// Finds the queue `name` and checks its redrive threshold against `max_receives`.
async fn open_queue(
    clients: &Clients,
    settings: &AwsSettings,
    bucket: &Bucket,
    name: &str,
    max_receives: Option<u32>,
) -> Result<Arc<dyn Queue>, AwsError> {
    let full_name = provision::queue_name(settings, name);
    let url = provision::queue_url(&clients.sqs, &full_name)
        .await
        .map_err(|e| AwsError::failed(format!("look up queue {full_name}"), e))?
        .ok_or_else(|| AwsError::Missing { what: format!("queue {full_name}") })?;
    if let Some(expected) = max_receives {
        provision::check_redrive(&clients.sqs, &url, &full_name, expected).await;
    }
    Ok(Arc::new(sqs::SqsQueue::new(clients.sqs.clone(), name, url, bucket.clone())))
}
