//! SQS-like queues in one SQLite file (`queue.db`), safe for several processes at once.
//!
//! A message row carries the time it becomes visible and the receipt token of its latest
//! delivery; receiving sets both in one transaction, so two receivers can never get the same
//! delivery. Receivers in the same process are woken by a [`Notify`] when a message is sent;
//! receivers in other processes poll with a short backoff, and only a cheap read while the queue
//! is empty.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::sqlite::{Database, DbError};
use crate::ports::Fault;
use crate::ports::{Queue, QueueDepth, QueueError, Receipt, ReceivedMessage};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT    NOT NULL,
    message_id    TEXT    NOT NULL,
    body          BLOB    NOT NULL,
    sent_at       INTEGER NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (queue, visible_at, id);
";

/// Longest pause between two polls while a queue is empty; bounds cross-process latency.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Largest body a message may have, as in SQS.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Moves a message to a dead-letter queue once it was received too often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub dead_letter_queue: String,
    pub max_receives: u32,
}

/// Opens queues that live in one `queue.db`; one per process, shared by its queue handles.
#[derive(Clone)]
pub struct EmbeddedQueues {
    db: Database,
    /// In-process wake-ups per queue name. A std mutex: held only to look up an entry.
    wakers: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl EmbeddedQueues {
    pub fn open(path: &Path) -> Result<EmbeddedQueues, QueueError> {
        let db = Database::open(path, SCHEMA)?;
        Ok(EmbeddedQueues { db, wakers: Arc::default() })
    }

    /// A handle to the queue `name`, created on first send.
    pub fn queue(&self, name: &str, redrive: Option<Redrive>) -> EmbeddedQueue {
        let waker =
            Arc::clone(self.wakers.lock().unwrap_or_else(|p| p.into_inner()).entry(name.to_owned()).or_default());
        EmbeddedQueue { db: self.db.clone(), name: name.to_owned(), redrive, waker }
    }
}

/// One named queue inside `queue.db`.
pub struct EmbeddedQueue {
    db: Database,
    name: String,
    redrive: Option<Redrive>,
    waker: Arc<Notify>,
}

impl From<DbError> for QueueError {
    fn from(err: DbError) -> QueueError {
        QueueError::Unavailable(Fault::from_error(err))
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn sql_err(err: rusqlite::Error) -> QueueError {
    QueueError::Unavailable(Fault::from_error(err))
}

/// Receipts are `<row id>.<delivery token>`.
fn parse_receipt(receipt: &Receipt) -> Option<(i64, &str)> {
    let (id, token) = receipt.0.split_once('.')?;
    Some((id.parse().ok()?, token))
}

impl EmbeddedQueue {
    async fn has_visible(&self) -> Result<bool, QueueError> {
        let name = self.name.clone();
        self.db
            .read(move |conn| {
                conn.query_row(
                    "SELECT EXISTS (SELECT 1 FROM messages WHERE queue = ?1 AND visible_at <= ?2)",
                    params![name, now_ms()],
                    |row| row.get(0),
                )
                .map_err(sql_err)
            })
            .await
    }

    async fn try_receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        let name = self.name.clone();
        let redrive = self.redrive.clone();
        let (received, moved) =
            self.db.write(move |conn| receive_in_transaction(conn, &name, redrive.as_ref(), max, visibility)).await?;
        if moved > 0 {
            tracing::warn!(queue = %self.name, moved, "messages moved to the dead-letter queue");
            metrics::counter!(crate::series::QUEUE_DEAD_LETTERED_TOTAL, "queue" => self.name.clone()).increment(moved);
        }
        Ok(received)
    }
}

fn receive_in_transaction(
    conn: &Connection,
    name: &str,
    redrive: Option<&Redrive>,
    max: usize,
    visibility: Duration,
) -> Result<(Vec<ReceivedMessage>, u64), QueueError> {
    let now = now_ms();
    let candidates: Vec<(i64, String, Vec<u8>, u32)> = {
        let mut select = conn
            .prepare_cached(
                "SELECT id, message_id, body, receive_count FROM messages
                 WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3",
            )
            .map_err(sql_err)?;
        let rows = select
            .query_map(params![name, now, i64::try_from(max).unwrap_or(i64::MAX)], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .map_err(sql_err)?;
        rows.collect::<Result<_, _>>().map_err(sql_err)?
    };
    let mut received = Vec::with_capacity(candidates.len());
    let mut moved = 0;
    for (id, message_id, body, receive_count) in candidates {
        if let Some(redrive) = redrive.filter(|r| receive_count >= r.max_receives) {
            conn.prepare_cached("UPDATE messages SET queue = ?2, visible_at = ?3, receipt = NULL WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id, redrive.dead_letter_queue, now]))
                .map_err(sql_err)?;
            moved += 1;
            continue;
        }
        let token = format!("{:016x}", rand::random::<u64>());
        conn.prepare_cached(
            "UPDATE messages SET receive_count = receive_count + 1, visible_at = ?2, receipt = ?3
             WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![id, now + millis(visibility), token]))
        .map_err(sql_err)?;
        received.push(ReceivedMessage {
            message_id,
            body: Bytes::from(body),
            receive_count: receive_count + 1,
            receipt: Receipt(format!("{id}.{token}")),
        });
    }
    Ok((received, moved))
}

#[async_trait]
impl Queue for EmbeddedQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send_batch(&self, bodies: Vec<Bytes>, delay: Duration) -> Result<(), QueueError> {
        if let Some(body) = bodies.iter().find(|b| b.len() > MAX_MESSAGE_BYTES) {
            return Err(QueueError::TooLarge { size: body.len(), limit: MAX_MESSAGE_BYTES });
        }
        if bodies.is_empty() {
            return Ok(());
        }
        let name = self.name.clone();
        self.db
            .write(move |conn| {
                let now = now_ms();
                let mut insert = conn
                    .prepare_cached(
                        "INSERT INTO messages (queue, message_id, body, sent_at, visible_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(sql_err)?;
                for body in bodies {
                    let message_id = uuid::Uuid::now_v7().to_string();
                    insert
                        .execute(params![name, message_id, body.as_ref(), now, now + millis(delay)])
                        .map_err(sql_err)?;
                }
                Ok::<_, QueueError>(())
            })
            .await?;
        self.waker.notify_waiters();
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
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(1);
        loop {
            // Register for wake-ups before looking, so a send in between is not missed.
            let notified = self.waker.notified();
            if self.has_visible().await? {
                let received = self.try_receive(max, visibility).await?;
                if !received.is_empty() {
                    return Ok(received);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            tokio::select! {
                () = notified => pause = Duration::from_millis(1),
                () = tokio::time::sleep(pause.min(deadline - now)) => {
                    pause = (pause * 2).min(MAX_POLL_INTERVAL);
                }
            }
        }
    }

    async fn extend_visibility(
        &self,
        receipts: &[Receipt],
        visibility: Duration,
    ) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        let parsed: Vec<Option<(i64, String)>> =
            receipts.iter().map(|r| parse_receipt(r).map(|(id, t)| (id, t.to_owned()))).collect();
        let results = self
            .db
            .write(move |conn| {
                let visible_at = now_ms() + millis(visibility);
                let mut update = conn
                    .prepare_cached("UPDATE messages SET visible_at = ?2 WHERE id = ?1 AND receipt = ?3")
                    .map_err(sql_err)?;
                let mut results = Vec::with_capacity(parsed.len());
                for receipt in parsed {
                    let changed = match receipt {
                        Some((id, token)) => update.execute(params![id, visible_at, token]).map_err(sql_err)?,
                        None => 0,
                    };
                    results.push(if changed == 1 { Ok(()) } else { Err(QueueError::ReceiptExpired) });
                }
                Ok::<_, QueueError>(results)
            })
            .await?;
        if visibility.is_zero() {
            self.waker.notify_waiters();
        }
        Ok(results)
    }

    async fn ack(&self, receipts: &[Receipt]) -> Result<(), QueueError> {
        let parsed: Vec<(i64, String)> =
            receipts.iter().filter_map(|r| parse_receipt(r).map(|(id, t)| (id, t.to_owned()))).collect();
        if parsed.is_empty() {
            return Ok(());
        }
        self.db
            .write(move |conn| {
                let mut delete =
                    conn.prepare_cached("DELETE FROM messages WHERE id = ?1 AND receipt = ?2").map_err(sql_err)?;
                for (id, token) in parsed {
                    delete.execute(params![id, token]).map_err(sql_err)?;
                }
                Ok::<_, QueueError>(())
            })
            .await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let name = self.name.clone();
        self.db
            .read(move |conn| {
                let now = now_ms();
                conn.query_row(
                    "SELECT
                        COALESCE(SUM(visible_at <= ?2), 0),
                        COALESCE(SUM(visible_at > ?2 AND receipt IS NOT NULL), 0),
                        COALESCE(SUM(visible_at > ?2 AND receipt IS NULL), 0)
                     FROM messages WHERE queue = ?1",
                    params![name, now],
                    |row| {
                        Ok(QueueDepth {
                            visible: row.get::<_, i64>(0)?.try_into().unwrap_or(0),
                            in_flight: row.get::<_, i64>(1)?.try_into().unwrap_or(0),
                            delayed: row.get::<_, i64>(2)?.try_into().unwrap_or(0),
                        })
                    },
                )
                .optional()
                .map_err(sql_err)
                .map(Option::unwrap_or_default)
            })
            .await
    }
}
