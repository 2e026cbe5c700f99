//! The embedded backend: SQLite for queues and job state, the filesystem for blobs. Runs
//! everything on one machine with no cloud account; several processes share one data directory.

mod blob;
mod queue;
mod sqlite;
mod state;

pub use blob::FsBlobStore;
pub use queue::{EmbeddedQueue, EmbeddedQueues, MAX_MESSAGE_BYTES, Redrive};
pub use state::SqliteState;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::contract;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queue_passes_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let queues = EmbeddedQueues::open(&dir.path().join("queue.db")).unwrap();
        let counter = AtomicUsize::new(0);
        contract::queue_contract(|| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let dead_letter_queue = format!("dlq-{n}");
            contract::QueueUnderTest {
                queue: Arc::new(queues.queue(
                    &format!("q-{n}"),
                    Some(Redrive { dead_letter_queue: dead_letter_queue.clone(), max_receives: 3 }),
                )),
                dead_letter: Arc::new(queues.queue(&dead_letter_queue, None)),
                max_receives: 3,
            }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queue_handles_from_two_openers_share_messages() {
        // Two `EmbeddedQueues` on one file stand in for two processes.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let producer = EmbeddedQueues::open(&path).unwrap().queue("shared", None);
        let consumer = EmbeddedQueues::open(&path).unwrap().queue("shared", None);
        let receiver = tokio::spawn(async move {
            use crate::ports::Queue;
            consumer.receive(5, std::time::Duration::from_secs(30), std::time::Duration::from_secs(10)).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        crate::ports::Queue::send_batch(&producer, vec![bytes::Bytes::from_static(b"x")], std::time::Duration::ZERO)
            .await
            .unwrap();
        let got = receiver.await.unwrap().unwrap();
        assert_eq!(got.len(), 1, "a consumer polling from another connection sees the message");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blob_store_passes_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        contract::blob_contract(Arc::new(FsBlobStore::open(dir.path()).unwrap())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn job_store_passes_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        contract::job_store_contract(Arc::new(SqliteState::open(&dir.path().join("state.db")).unwrap())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn worker_registry_passes_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        contract::worker_registry_contract(Arc::new(SqliteState::open(&dir.path().join("state.db")).unwrap())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tenant_directory_passes_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        contract::tenant_directory_contract(Arc::new(SqliteState::open(&dir.path().join("state.db")).unwrap())).await;
    }
}
