//! The queue port over an SQS standard queue.
//!
//! SQS already has the port's semantics (visibility timeouts, receive counts, redrive to a
//! dead-letter queue, long polling); this adapter enforces SQS's limits (10 messages a call,
//! 20 s long poll, 12 h visibility, 15 min delay, whole seconds) and adds a **claim check**: a
//! body SQS cannot carry (over [`MAX_INLINE_BODY`] bytes, or not SQS-safe text) is stored in
//! the bucket under `queue-payloads/<uuid>` and the message carries only that key, in the
//! message attribute [`CLAIM_CHECK_ATTRIBUTE`] (so no ordinary body can be mistaken for a
//! pointer). `receive` fetches payloads transparently; `ack` deletes them after the message.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use bytes::Bytes;

use super::objects::{Bucket, Condition, ObjectError};
use super::service_error::CallError;
use crate::ports::Fault;
use crate::ports::{Queue, QueueDepth, QueueError, Receipt, ReceivedMessage};

/// Largest body sent inline: SQS's classic limit for a whole message (bodies and attributes).
pub(crate) const MAX_INLINE_BODY: usize = 256 * 1024;
/// SQS's limit for the sum of the bodies in one `SendMessageBatch`.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// SQS's limit of entries per batch call and of messages per receive.
const MAX_BATCH: usize = 10;
const MAX_WAIT: Duration = Duration::from_secs(20);
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Message attribute naming the payload object of a claim-checked message.
pub(crate) const CLAIM_CHECK_ATTRIBUTE: &str = "surge-claim-check";
/// Where claim-checked payloads live in the bucket.
pub(crate) const PAYLOAD_PREFIX: &str = crate::keys::QUEUE_PAYLOADS;

/// A [`Queue`] over one SQS queue.
pub(crate) struct SqsQueue {
    client: Client,
    /// The port-level name (`incoming`), for logs and metrics.
    name: String,
    url: String,
    /// Holds the payloads of claim-checked messages.
    payloads: Bucket,
}

/// A message ready to send: its SQS body and, when claim-checked, its payload's key.
struct Outgoing {
    body: String,
    payload_key: Option<String>,
}

impl SqsQueue {
    pub(crate) fn new(client: Client, name: &str, url: String, payloads: Bucket) -> SqsQueue {
        SqsQueue { client, name: name.to_owned(), url, payloads }
    }

    /// Turns a body into what SQS can carry, storing it in the bucket when it must.
    async fn outgoing(&self, body: Bytes) -> Result<Outgoing, QueueError> {
        if body.len() <= MAX_INLINE_BODY
            && let Some(text) = sqs_text(&body)
        {
            return Ok(Outgoing { body: text.to_owned(), payload_key: None });
        }
        let key = format!("{PAYLOAD_PREFIX}{}", uuid::Uuid::new_v4());
        self.payloads.put(&key, body, &Condition::Always).await?;
        Ok(Outgoing { body: key.clone(), payload_key: Some(key) })
    }

    async fn send_chunk(&self, chunk: &[Outgoing], delay_seconds: i32) -> Result<(), QueueError> {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(index, message)| {
                let attributes = message.payload_key.as_deref().map(claim_check_attribute).transpose()?;
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(&message.body)
                    .delay_seconds(delay_seconds)
                    .set_message_attributes(attributes)
                    .build()
                    .map_err(CallError::from)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| CallError::from_sdk("SendMessageBatch", e))?;
        match output.failed().first() {
            // The caller sends the whole batch again; duplicates are part of at-least-once.
            Some(failed) => Err(QueueError::Unavailable(Fault::new(format!(
                "SendMessageBatch refused {} of {} messages: {}",
                output.failed().len(),
                chunk.len(),
                describe(failed)
            )))),
            None => Ok(()),
        }
    }

    /// One delivery, with a claim-checked payload fetched. `None` when the payload is gone.
    async fn delivery(&self, message: Message) -> Result<Option<ReceivedMessage>, QueueError> {
        let receive_count = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        let payload_key = message
            .message_attributes()
            .and_then(|a| a.get(CLAIM_CHECK_ATTRIBUTE))
            .and_then(|value| value.string_value())
            .map(str::to_owned);
        let message_id = message.message_id().unwrap_or_default().to_owned();
        let handle = message.receipt_handle().unwrap_or_default().to_owned();
        let body = match &payload_key {
            None => Bytes::from(message.body.unwrap_or_default()),
            Some(key) => match self.fetch_payload(key, &message_id).await? {
                Some(body) => body,
                None => return Ok(None),
            },
        };
        let receipt = encode_receipt(&handle, payload_key.as_deref());
        Ok(Some(ReceivedMessage { message_id, body, receive_count, receipt }))
    }

    /// A missing or corrupt payload cannot be delivered; the message is left to the redrive
    /// policy, which moves it to the dead-letter queue. A pointer outside [`PAYLOAD_PREFIX`] is
    /// refused: a crafted message must not make `ack` delete a job record.
    async fn fetch_payload(&self, key: &str, message_id: &str) -> Result<Option<Bytes>, QueueError> {
        if !key.starts_with(PAYLOAD_PREFIX) {
            tracing::error!(queue = %self.name, message_id, key, "claim check points outside the payloads; message skipped");
            return Ok(None);
        }
        match self.payloads.get(key).await {
            Ok(Some(fetched)) => Ok(Some(fetched.bytes)),
            Ok(None) => {
                tracing::error!(queue = %self.name, message_id, key, "claim-check payload missing; message skipped");
                Ok(None)
            }
            Err(ObjectError::Corrupt(_)) => {
                tracing::error!(queue = %self.name, message_id, key, "claim-check payload corrupt; message skipped");
                Ok(None)
            }
            Err(ObjectError::Call(err)) => Err(err.into()),
        }
    }

    async fn change_visibility_chunk(
        &self,
        chunk: &[Receipt],
        visibility_seconds: i32,
    ) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(index, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(decode_receipt(receipt).0)
                    .visibility_timeout(visibility_seconds)
                    .build()
                    .map_err(CallError::from)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| CallError::from_sdk("ChangeMessageVisibilityBatch", e))?;
        let mut results: Vec<Result<(), QueueError>> = vec![Ok(()); chunk.len()];
        for failed in output.failed() {
            if let Some(result) = failed.id().parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                *result = Err(entry_error(failed));
            }
        }
        Ok(results)
    }

    /// Deletes one chunk of messages, then the payloads of those that were claim-checked.
    async fn ack_chunk(&self, chunk: &[Receipt]) -> Result<(), QueueError> {
        let decoded: Vec<(&str, Option<&str>)> = chunk.iter().map(decode_receipt).collect();
        let entries = decoded
            .iter()
            .enumerate()
            .map(|(index, (handle, _))| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(*handle)
                    .build()
                    .map_err(CallError::from)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| CallError::from_sdk("DeleteMessageBatch", e))?;
        for entry in output.successful() {
            if let Some((_, Some(key))) = entry.id().parse::<usize>().ok().and_then(|i| decoded.get(i)) {
                self.delete_payload(key).await;
            }
        }
        // An invalid receipt means the message is already gone: acks are idempotent.
        match output.failed().iter().find(|f| !matches!(entry_error(f), QueueError::ReceiptExpired)) {
            Some(failed) => {
                Err(QueueError::Unavailable(Fault::new(format!("DeleteMessageBatch: {}", describe(failed)))))
            }
            None => Ok(()),
        }
    }

    /// Best effort: an orphaned payload only costs storage.
    async fn delete_payload(&self, key: &str) {
        if let Err(err) = self.payloads.delete(key).await {
            tracing::warn!(queue = %self.name, key, error = %err, "claim-check payload left behind");
        }
    }
}

/// The body as SQS-safe text: valid UTF-8 of the characters SQS accepts (`#x9 | #xA | #xD |
/// #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`).
fn sqs_text(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}');
    text.chars().all(allowed).then_some(text)
}

fn claim_check_attribute(key: &str) -> Result<std::collections::HashMap<String, MessageAttributeValue>, CallError> {
    let value = MessageAttributeValue::builder().data_type("String").string_value(key).build()?;
    Ok(std::iter::once((CLAIM_CHECK_ATTRIBUTE.to_owned(), value)).collect())
}

/// Splits messages into batches SQS accepts: at most [`MAX_BATCH`] entries and
/// [`MAX_BATCH_BYTES`] of bodies each.
fn batches(messages: &[Outgoing]) -> Vec<&[Outgoing]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, message) in messages.iter().enumerate() {
        let full = index - start == MAX_BATCH || bytes + message.body.len() > MAX_BATCH_BYTES;
        if full && index > start {
            batches.push(&messages[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += message.body.len();
    }
    if start < messages.len() {
        batches.push(&messages[start..]);
    }
    batches
}

/// A receipt carries the SQS receipt handle and, for a claim-checked message, the payload's key
/// after a space (receipt handles never contain one).
fn encode_receipt(handle: &str, payload_key: Option<&str>) -> Receipt {
    match payload_key {
        Some(key) => Receipt(format!("{handle} {key}")),
        None => Receipt(handle.to_owned()),
    }
}

fn decode_receipt(receipt: &Receipt) -> (&str, Option<&str>) {
    match receipt.0.split_once(' ') {
        Some((handle, key)) if key.starts_with(PAYLOAD_PREFIX) => (handle, Some(key)),
        _ => (&receipt.0, None),
    }
}

/// Whole seconds for an SQS parameter, rounded up and capped at `max`.
fn whole_seconds(duration: Duration, max: Duration) -> i32 {
    let capped = duration.min(max);
    let seconds = capped.as_secs() + u64::from(capped.subsec_nanos() > 0);
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

fn describe(failed: &BatchResultErrorEntry) -> String {
    format!("{}: {}", failed.code(), failed.message().unwrap_or_default())
}

/// A receipt that no longer designates an in-flight delivery (SQS reports it under several
/// codes) is [`QueueError::ReceiptExpired`]; anything else is the service failing.
fn entry_error(failed: &BatchResultErrorEntry) -> QueueError {
    let message = failed.message().unwrap_or_default();
    let stale = match failed.code() {
        "ReceiptHandleIsInvalid" | "MessageNotInflight" | "AWS.SimpleQueueService.MessageNotInflight" => true,
        "InvalidParameterValue" => message.contains("ReceiptHandle") || message.contains("receipt handle"),
        _ => false,
    };
    if stale { QueueError::ReceiptExpired } else { QueueError::Unavailable(Fault::new(describe(failed))) }
}

#[async_trait]
impl Queue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send_batch(&self, bodies: Vec<Bytes>, delay: Duration) -> Result<(), QueueError> {
        let mut messages = Vec::with_capacity(bodies.len());
        for body in bodies {
            messages.push(self.outgoing(body).await?);
        }
        let delay_seconds = whole_seconds(delay, MAX_DELAY);
        for batch in batches(&messages) {
            self.send_chunk(batch, delay_seconds).await?;
        }
        Ok(())
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max.min(MAX_BATCH)).unwrap_or(1))
            .visibility_timeout(whole_seconds(visibility, MAX_VISIBILITY))
            .wait_time_seconds(whole_seconds(wait, MAX_WAIT))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names(CLAIM_CHECK_ATTRIBUTE)
            .send()
            .await
            .map_err(|e| CallError::from_sdk("ReceiveMessage", e))?;
        let mut received = Vec::new();
        for message in output.messages.unwrap_or_default() {
            received.extend(self.delivery(message).await?);
        }
        Ok(received)
    }

    async fn extend_visibility(
        &self,
        receipts: &[Receipt],
        visibility: Duration,
    ) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        let seconds = whole_seconds(visibility, MAX_VISIBILITY);
        let mut results = Vec::with_capacity(receipts.len());
        for chunk in receipts.chunks(MAX_BATCH) {
            results.extend(self.change_visibility_chunk(chunk, seconds).await?);
        }
        Ok(results)
    }

    async fn ack(&self, receipts: &[Receipt]) -> Result<(), QueueError> {
        // Every chunk is tried; the first failure is reported (not retried: the message comes
        // back and the job's idempotency absorbs it).
        let mut failure = None;
        for chunk in receipts.chunks(MAX_BATCH) {
            if let Err(err) = self.ack_chunk(chunk).await {
                failure.get_or_insert(err);
            }
        }
        failure.map_or(Ok(()), Err)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| CallError::from_sdk("GetQueueAttributes", e))?;
        let count = |name: QueueAttributeName| {
            output.attributes().and_then(|a| a.get(&name)).and_then(|n| n.parse().ok()).unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    fn outgoing(len: usize) -> Outgoing {
        Outgoing { body: "x".repeat(len), payload_key: None }
    }

    #[test]
    fn batches_respect_count_and_size_limits() {
        let messages: Vec<_> = (0..25).map(|_| outgoing(10)).collect();
        assert_eq!(batches(&messages).iter().map(|b| b.len()).collect::<Vec<_>>(), vec![10, 10, 5]);
        let big: Vec<_> = (0..3).map(|_| outgoing(100 * 1024)).collect();
        assert_eq!(batches(&big).iter().map(|b| b.len()).collect::<Vec<_>>(), vec![2, 1]);
        let full = vec![outgoing(MAX_INLINE_BODY), outgoing(1)];
        assert_eq!(batches(&full).iter().map(|b| b.len()).collect::<Vec<_>>(), vec![1, 1]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn receipts_round_trip_with_and_without_payload() {
        let plain = encode_receipt("AQEBabc+/=", None);
        assert_eq!(decode_receipt(&plain), ("AQEBabc+/=", None));
        let checked = encode_receipt("AQEBabc", Some("queue-payloads/1"));
        assert_eq!(decode_receipt(&checked), ("AQEBabc", Some("queue-payloads/1")));
        assert_eq!(decode_receipt(&Receipt("a b".into())), ("a b", None), "only our payload keys are split off");
    }

    #[test]
    fn only_sqs_safe_text_goes_inline() {
        assert_eq!(sqs_text(b"{\"job\":1}\n\t"), Some("{\"job\":1}\n\t"));
        assert_eq!(sqs_text("grüße €".as_bytes()), Some("grüße €"));
        assert_eq!(sqs_text(b"\x00binary"), None);
        assert_eq!(sqs_text(&[0xff, 0xfe]), None);
        assert_eq!(sqs_text("\u{FFFF}".as_bytes()), None);
    }

    #[test]
    fn durations_round_up_to_capped_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(200), MAX_WAIT), 1);
        assert_eq!(whole_seconds(Duration::ZERO, MAX_WAIT), 0);
        assert_eq!(whole_seconds(Duration::from_secs(60), MAX_WAIT), 20);
        assert_eq!(whole_seconds(Duration::from_secs(86_400), MAX_VISIBILITY), 43_200);
    }
}
