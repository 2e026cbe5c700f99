//! The queue port: at-least-once delivery with SQS semantics.

use std::time::Duration;

use super::fault::Fault;
use async_trait::async_trait;
use bytes::Bytes;

/// A message queue with the semantics of an SQS standard queue.
///
/// Contract (checked for every backend by `queue_contract` in `shared/src/contract.rs`):
/// - **At least once.** A sent message is delivered until it is acked. A received message is
///   invisible to other receivers for the visibility timeout given to `receive`, then becomes
///   visible again. Consumers must be idempotent.
/// - **Receive** returns at most `max` messages (a backend may return fewer, e.g. SQS at most
///   10), waiting up to `wait` for the first one (long poll) and returning an empty batch when
///   none arrived. Order is roughly first-in first-out but not guaranteed.
/// - **Receive count.** Each delivery increments the message's receive count. When a queue has a
///   dead-letter queue and a message is about to be delivered for more than `max_receives`
///   times, it is moved to the dead-letter queue instead.
/// - **Receipts.** Each delivery has its own [`Receipt`]; `extend_visibility` and `ack` take it.
///   A receipt from an earlier delivery may be refused with [`QueueError::ReceiptExpired`]
///   (embedded) or may still act on the message (SQS honours old receipt handles), so receipts
///   do not keep consumers from interfering with each other: the job store's lease does. `ack`
///   of an unknown or already-acked message is not an error (acks are idempotent).
/// - **Delay.** `send` with a delay makes the message visible only after it.
/// - **Depth** is approximate: visible messages, messages in flight (received and not yet
///   visible again), and delayed messages.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// The queue's name, for logs and metrics.
    fn name(&self) -> &str;

    /// Sends a batch of message bodies, each visible after `delay`. Durable when it returns.
    async fn send_batch(&self, bodies: Vec<Bytes>, delay: Duration) -> Result<(), QueueError>;

    /// Receives up to `max` messages, hiding them for `visibility`, waiting up to `wait` for the
    /// first one.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// Makes received messages invisible for `visibility` from now (or visible again with a zero
    /// duration). Returns one result per receipt, in order.
    async fn extend_visibility(
        &self,
        receipts: &[Receipt],
        visibility: Duration,
    ) -> Result<Vec<Result<(), QueueError>>, QueueError>;

    /// Deletes received messages for good.
    async fn ack(&self, receipts: &[Receipt]) -> Result<(), QueueError>;

    async fn depth(&self) -> Result<QueueDepth, QueueError>;
}

/// One delivery of a message.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// Stable across deliveries.
    pub message_id: String,
    pub body: Bytes,
    /// How many times this message has been delivered, this delivery included.
    pub receive_count: u32,
    pub receipt: Receipt,
}

/// Proof of one delivery; opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt(pub String);

/// Approximate queue depth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

impl QueueDepth {
    /// Every message the queue holds, whatever its state.
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The receipt belongs to an earlier delivery; the message may be with another consumer.
    #[error("receipt is no longer valid")]
    ReceiptExpired,
    /// The message is larger than the backend accepts.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The backend could not be reached or failed; retry later.
    #[error("queue unavailable: {0}")]
    Unavailable(Fault),
}

impl QueueError {
    /// Whether the failure lies with the infrastructure, so the same call may succeed later
    /// (retry with backoff; never blame the document for it).
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }
}
