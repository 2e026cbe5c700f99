//! One SQLite database file shared by several processes: a group-commit writer thread and a
//! small pool of read connections.
//!
//! Every write is a closure sent to the writer thread. The thread takes all closures waiting in
//! its channel, runs each in its own savepoint inside one `BEGIN IMMEDIATE` transaction and
//! commits once: one fsync (WAL, `synchronous=FULL`) for the whole group. A caller's future
//! resolves only after the commit that contains its write, so "returned Ok" means "durable".
//! A closure that fails is rolled back to its savepoint without touching the rest of the group.
//!
//! Several processes may open the same file: SQLite's own locking serialises their
//! transactions, and `busy_timeout` makes a writer wait for another process's lock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

/// How many closures one transaction may carry at most.
const MAX_GROUP: usize = 2048;
/// Bound of the writer's inbox: callers wait (backpressure) when the writer falls behind.
const INBOX: usize = 8192;
/// How long a writer waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A failure of the database itself (I/O, lock timeout, corruption, schema).
#[derive(Debug, Clone, thiserror::Error)]
#[error("sqlite {path}: {message}")]
pub(crate) struct DbError {
    path: String,
    message: String,
}

impl DbError {
    fn new(path: &Path, err: impl std::fmt::Display) -> DbError {
        DbError { path: path.display().to_string(), message: err.to_string() }
    }
}

type Completion = Box<dyn FnOnce(Option<&DbError>) + Send>;
type WriteOp = Box<dyn FnOnce(&Connection) -> Completion + Send>;

/// Handle to one database file; cheap to clone.
#[derive(Clone)]
pub(crate) struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: mpsc::Sender<WriteOp>,
    /// Idle read connections. A std mutex: it is held only to push or pop, never across await.
    readers: Mutex<Vec<Connection>>,
}

impl Database {
    /// Opens (creating if needed) the database at `path` and applies `schema`, a batch of
    /// idempotent `CREATE ... IF NOT EXISTS` statements.
    pub(crate) fn open(path: &Path, schema: &str) -> Result<Database, DbError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DbError::new(path, e))?;
        }
        let conn = open_connection(path)?;
        conn.execute_batch(schema).map_err(|e| DbError::new(path, e))?;
        let (writer, inbox) = mpsc::channel(INBOX);
        let thread_path = path.to_owned();
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || run_writer(conn, inbox, &thread_path))
            .map_err(|e| DbError::new(path, e))?;
        Ok(Database { inner: Arc::new(Inner { path: path.to_owned(), writer, readers: Mutex::new(Vec::new()) }) })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `op` in the next group transaction and resolves once that transaction committed.
    /// If `op` returns an error its changes are rolled back and the error is returned.
    pub(crate) async fn write<R, E>(
        &self,
        op: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (reply, outcome) = oneshot::channel::<Result<R, E>>();
        let path = self.inner.path.clone();
        let write_op: WriteOp = Box::new(move |conn| {
            let result = in_savepoint(conn, &path, op);
            Box::new(move |commit_error: Option<&DbError>| {
                let result = match commit_error {
                    Some(err) => Err(E::from(err.clone())),
                    None => result,
                };
                // The caller may have gone away; its write is committed regardless.
                let _ = reply.send(result);
            })
        });
        let closed =
            || DbError::new(&self.inner.path, "write not committed (database busy for too long, or writer stopped)");
        self.inner.writer.send(write_op).await.map_err(|_| E::from(closed()))?;
        outcome.await.map_err(|_| E::from(closed()))?
    }

    /// Runs `op` on a read connection on the blocking pool. Sees every committed write.
    pub(crate) async fn read<R, E>(&self, op: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let path = inner.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&inner.path)?,
            };
            let result = op(&conn);
            inner.readers.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            result
        })
        .await
        .map_err(|e| E::from(DbError::new(&path, e)))?
    }
}

fn open_connection(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open(path).map_err(|e| DbError::new(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| DbError::new(path, e))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(|e| DbError::new(path, e))?;
    Ok(conn)
}

fn in_savepoint<R, E: From<DbError>>(
    conn: &Connection,
    path: &Path,
    op: impl FnOnce(&Connection) -> Result<R, E>,
) -> Result<R, E> {
    conn.execute_batch("SAVEPOINT op").map_err(|e| E::from(DbError::new(path, e)))?;
    let result = op(conn);
    let finish = if result.is_ok() { "RELEASE op" } else { "ROLLBACK TO op; RELEASE op" };
    conn.execute_batch(finish).map_err(|e| E::from(DbError::new(path, e)))?;
    result
}

fn run_writer(conn: Connection, mut inbox: mpsc::Receiver<WriteOp>, path: &Path) {
    let mut group: Vec<WriteOp> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = inbox.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match inbox.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        if let Err(err) = begin_with_retries(&conn) {
            tracing::warn!(error = %DbError::new(path, err), ops = group.len(), "group transaction could not start");
            // Dropping the operations drops their reply channels: every caller gets an error.
            group.clear();
            continue;
        }
        let completions: Vec<Completion> = group.drain(..).map(|op| op(&conn)).collect();
        let commit_error = conn.execute_batch("COMMIT").err().map(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            DbError::new(path, e)
        });
        if let Some(err) = &commit_error {
            tracing::warn!(error = %err, ops = completions.len(), "group commit failed");
        }
        for completion in completions {
            completion(commit_error.as_ref());
        }
    }
}

fn begin_with_retries(conn: &Connection) -> rusqlite::Result<()> {
    let mut attempt = 0;
    loop {
        match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => return Ok(()),
            Err(err) if attempt >= 3 => return Err(err),
            Err(_) => attempt += 1,
        }
    }
}
