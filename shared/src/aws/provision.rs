//! Creating the region's bucket and queues (`surge aws bootstrap`), and the queue lookups that
//! `open` shares with it.
//!
//! Bootstrapping is idempotent: what exists is kept, and an existing queue gets its attributes
//! set again, so a changed `max_attempts` reaches the redrive policy.

use std::collections::HashMap;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;

use super::objects::Bucket;
use super::service_error::CallError;
use super::{AwsError, Clients, connect};
use crate::config::AwsSettings;
use crate::domain::Lane;
use crate::ports::queue_names;

/// How long the dead-letter queue keeps a message: 14 days, the SQS maximum.
const DEAD_LETTER_RETENTION_SECS: u32 = 14 * 24 * 3600;

/// The SQS name of the queue `name`.
pub(super) fn queue_name(settings: &AwsSettings, name: &str) -> String {
    format!("{}{name}", settings.queue_prefix)
}

/// Deliveries after which SQS moves a message to the dead-letter queue. As in the embedded
/// backend: workers bury a job themselves after `max_attempts`, so this is only the safety net
/// for a message no worker survives.
pub(super) fn max_receives(max_attempts: u32) -> u32 {
    max_attempts.saturating_add(2)
}

/// The queue's URL, or `None` when it does not exist.
pub(super) async fn queue_url(sqs: &Client, name: &str) -> Result<Option<String>, CallError> {
    match sqs.get_queue_url().queue_name(name).send().await {
        Ok(output) => Ok(output.queue_url().map(str::to_owned)),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_queue_does_not_exist()) => Ok(None),
        Err(err) => Err(CallError::from_sdk("GetQueueUrl", err)),
    }
}

async fn queue_attribute(sqs: &Client, url: &str, name: QueueAttributeName) -> Result<Option<String>, CallError> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .map_err(|e| CallError::from_sdk("GetQueueAttributes", e))?;
    Ok(output.attributes().and_then(|attributes| attributes.get(&name)).cloned())
}

/// The queue's redrive threshold (`maxReceiveCount`), `None` without a redrive policy.
pub(super) async fn redrive_threshold(sqs: &Client, url: &str) -> Result<Option<u32>, CallError> {
    let policy = queue_attribute(sqs, url, QueueAttributeName::RedrivePolicy).await?;
    Ok(policy.as_deref().and_then(max_receive_count))
}

/// Logs when the queue's redrive threshold is not `expected` (bootstrapped for another
/// `max_attempts`, or not at all).
pub(super) async fn check_redrive(sqs: &Client, url: &str, name: &str, expected: u32) {
    match redrive_threshold(sqs, url).await {
        Ok(Some(actual)) if actual == expected => {}
        Ok(actual) => tracing::warn!(
            queue = name,
            expected,
            actual = ?actual,
            "redrive threshold differs from worker.max_attempts + 2; run `surge aws bootstrap` to update it"
        ),
        Err(err) => tracing::warn!(queue = name, error = %err, "cannot read the redrive policy"),
    }
}

fn max_receive_count(policy: &str) -> Option<u32> {
    let policy: serde_json::Value = serde_json::from_str(policy).ok()?;
    match &policy["maxReceiveCount"] {
        serde_json::Value::Number(n) => n.as_u64()?.try_into().ok(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn redrive_policy(dead_letter_arn: &str, max_receives: u32) -> String {
    serde_json::json!({ "deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receives.to_string() })
        .to_string()
}

/// Creates the queue with `attributes`, or sets them on the existing one. Returns its URL and a
/// line saying which.
async fn ensure_queue(
    sqs: &Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<(String, String), CallError> {
    if let Some(url) = queue_url(sqs, name).await? {
        sqs.set_queue_attributes()
            .queue_url(&url)
            .set_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| CallError::from_sdk("SetQueueAttributes", e))?;
        return Ok((url, format!("queue {name} exists; attributes updated")));
    }
    let output = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| CallError::from_sdk("CreateQueue", e))?;
    let url = output.queue_url().ok_or_else(|| CallError::local("CreateQueue", "no queue url"))?.to_owned();
    Ok((url, format!("created queue {name}")))
}

async fn ensure_bucket(bucket: &Bucket, region: &str) -> Result<String, AwsError> {
    let failed = |e| AwsError::failed(format!("create bucket {}", bucket.name()), e);
    if bucket.exists().await.map_err(failed)? {
        return Ok(format!("bucket {} exists", bucket.name()));
    }
    match bucket.create(region).await {
        Ok(()) => Ok(format!("created bucket {} in {region}", bucket.name())),
        // Created by a concurrent bootstrap.
        Err(err) if err.code() == Some("BucketAlreadyOwnedByYou") => Ok(format!("bucket {} exists", bucket.name())),
        Err(err) => Err(failed(err)),
    }
}

/// Creates what [`super::open`] needs, keeping what exists: the bucket, the dead-letter queue
/// (14 days retention), then the incoming and lane queues with a redrive policy to it after
/// `max_attempts + 2` deliveries, and the replication outbox (14 days retention). Returns one line per resource saying what was done.
pub async fn bootstrap(settings: &AwsSettings, max_attempts: u32) -> Result<Vec<String>, AwsError> {
    bootstrap_with(&connect(settings, None).await, settings, max_attempts).await
}

pub(super) async fn bootstrap_with(
    clients: &Clients,
    settings: &AwsSettings,
    max_attempts: u32,
) -> Result<Vec<String>, AwsError> {
    let bucket = Bucket::new(clients.s3.clone(), &settings.bucket);
    let mut lines = vec![ensure_bucket(&bucket, &settings.region).await?];
    let (dead_letter_arn, line) = ensure_dead_letter_queue(&clients.sqs, settings).await?;
    lines.push(line);
    let policy = redrive_policy(&dead_letter_arn, max_receives(max_attempts));
    for name in [queue_names::INCOMING, queue_names::lane(Lane::Small), queue_names::lane(Lane::Large)] {
        let name = queue_name(settings, name);
        let attributes = HashMap::from([(QueueAttributeName::RedrivePolicy, policy.clone())]);
        let (_, line) = ensure_queue(&clients.sqs, &name, attributes).await.map_err(|e| creating(&name, e))?;
        lines.push(line);
    }
    let name = queue_name(settings, queue_names::REPLICATION);
    let retention =
        HashMap::from([(QueueAttributeName::MessageRetentionPeriod, DEAD_LETTER_RETENTION_SECS.to_string())]);
    let (_, line) = ensure_queue(&clients.sqs, &name, retention).await.map_err(|e| creating(&name, e))?;
    lines.push(line);
    Ok(lines)
}

/// Creates the dead-letter queue; returns its ARN (for the redrive policies) and a line.
async fn ensure_dead_letter_queue(sqs: &Client, settings: &AwsSettings) -> Result<(String, String), AwsError> {
    let name = queue_name(settings, queue_names::DEAD_LETTER);
    let retention =
        HashMap::from([(QueueAttributeName::MessageRetentionPeriod, DEAD_LETTER_RETENTION_SECS.to_string())]);
    let (url, line) = ensure_queue(sqs, &name, retention).await.map_err(|e| creating(&name, e))?;
    let arn = queue_attribute(sqs, &url, QueueAttributeName::QueueArn)
        .await
        .and_then(|arn| arn.ok_or_else(|| CallError::local("GetQueueAttributes", "no QueueArn")))
        .map_err(|e| creating(&name, e))?;
    Ok((arn, line))
}

fn creating(queue: &str, err: CallError) -> AwsError {
    AwsError::failed(format!("create queue {queue}"), err)
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn redrive_policy_round_trips() {
        let policy = redrive_policy("arn:aws:sqs:eu-central-1:123:surge-dead-letter", 7);
        assert_eq!(max_receive_count(&policy), Some(7));
        assert_eq!(max_receive_count(r#"{"maxReceiveCount":5}"#), Some(5));
        assert_eq!(max_receive_count("not json"), None);
    }
}
