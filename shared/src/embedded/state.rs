//! Job records, tenants and worker heartbeats in one SQLite file (`state.db`).
//!
//! A job is stored whole, as JSON, next to the few columns that are indexed (tenant, status,
//! idempotency key). An update reads, applies the domain transition and writes inside one
//! write transaction, which SQLite serialises across processes: no compare-and-swap loop needed.

use std::path::Path;

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};

use super::sqlite::{Database, DbError};
use crate::domain::{Job, JobId, JobStatus, TenantId};
use crate::ports::{
    CreateOutcome, Fault, JobPage, JobStore, RegistryError, StoreError, TenantDirectory, TenantError, Transition,
    WorkerBeat, WorkerOrders, WorkerRegistry,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    idempotency_key TEXT,
    status          TEXT NOT NULL,
    record          TEXT NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_idempotency_key
    ON jobs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant, id);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_status ON jobs (tenant, status, id);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, id);
CREATE TABLE IF NOT EXISTS tenants (
    id         TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
    id    TEXT PRIMARY KEY,
    beat  TEXT NOT NULL,
    drain INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash   TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL REFERENCES tenants (id),
    created_at TEXT NOT NULL
);
";

/// Job store and tenant directory over `state.db`.
#[derive(Clone)]
pub struct SqliteState {
    db: Database,
}

impl SqliteState {
    pub fn open(path: &Path) -> Result<SqliteState, StoreError> {
        Ok(SqliteState { db: Database::open(path, SCHEMA)? })
    }

    pub fn path(&self) -> &Path {
        self.db.path()
    }
}

impl From<DbError> for StoreError {
    fn from(err: DbError) -> StoreError {
        StoreError::Unavailable(Fault::from_error(err))
    }
}

impl From<DbError> for TenantError {
    fn from(err: DbError) -> TenantError {
        TenantError::Unavailable(Fault::from_error(err))
    }
}

fn sql_err(err: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(Fault::from_error(err))
}

fn decode(record: &str) -> Result<Job, StoreError> {
    serde_json::from_str(record).map_err(|e| StoreError::Unavailable(Fault::caused_by("corrupt job record", e)))
}

fn encode(job: &Job) -> Result<String, StoreError> {
    serde_json::to_string(job).map_err(|e| StoreError::Unavailable(Fault::caused_by("unencodable job record", e)))
}

fn load(conn: &Connection, id: &str) -> Result<Option<Job>, StoreError> {
    let record: Option<String> = conn
        .prepare_cached("SELECT record FROM jobs WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![id], |row| row.get(0)).optional())
        .map_err(sql_err)?;
    record.as_deref().map(decode).transpose()
}

fn query_jobs(conn: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Vec<Job>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(sql_err)?;
    let records = statement
        .query_map(params, |row| row.get::<_, String>(0))
        .map_err(sql_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err)?;
    records.iter().map(|r| decode(r)).collect()
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl JobStore for SqliteState {
    async fn create(&self, job: Job) -> Result<CreateOutcome, StoreError> {
        self.db
            .write(move |conn| {
                if let Some(key) = &job.idempotency_key {
                    let existing: Option<String> = conn
                        .prepare_cached("SELECT record FROM jobs WHERE tenant = ?1 AND idempotency_key = ?2")
                        .and_then(|mut s| s.query_row(params![job.tenant.as_str(), key], |r| r.get(0)).optional())
                        .map_err(sql_err)?;
                    if let Some(record) = existing {
                        return Ok(CreateOutcome::Existing(decode(&record)?));
                    }
                }
                conn.prepare_cached(
                    "INSERT INTO jobs (id, tenant, idempotency_key, status, record) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        job.id.to_string(),
                        job.tenant.as_str(),
                        job.idempotency_key,
                        job.status.as_str(),
                        encode(&job).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
                    ])
                })
                .map_err(sql_err)?;
                Ok(CreateOutcome::Created(job))
            })
            .await
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.db.read(move |conn| load(conn, &id.to_string())).await
    }

    async fn update(&self, id: JobId, transition: Transition) -> Result<Job, StoreError> {
        self.db
            .write(move |conn| {
                let current = load(conn, &id.to_string())?.ok_or(StoreError::NotFound(id))?;
                let next = transition(&current)?;
                conn.prepare_cached("UPDATE jobs SET status = ?2, record = ?3 WHERE id = ?1")
                    .and_then(|mut s| {
                        s.execute(params![
                            id.to_string(),
                            next.status.as_str(),
                            encode(&next).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?
                        ])
                    })
                    .map_err(sql_err)?;
                Ok(next)
            })
            .await
    }

    async fn put_replica(&self, job: Job) -> Result<bool, StoreError> {
        self.db
            .write(move |conn| {
                if load(conn, &job.id.to_string())?.is_some_and(|stored| stored.updated_at >= job.updated_at) {
                    return Ok(false);
                }
                conn.prepare_cached(
                    "INSERT INTO jobs (id, tenant, idempotency_key, status, record) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status, record = excluded.record",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        job.id.to_string(),
                        job.tenant.as_str(),
                        job.idempotency_key,
                        job.status.as_str(),
                        encode(&job).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
                    ])
                })
                .map_err(sql_err)?;
                Ok(true)
            })
            .await
    }

    async fn list_by_tenant(
        &self,
        tenant: &TenantId,
        status: Option<JobStatus>,
        after: Option<JobId>,
        limit: usize,
    ) -> Result<JobPage, StoreError> {
        let tenant = tenant.clone();
        self.db
            .read(move |conn| {
                // Newest first: ids are UUIDv7, so id order is creation order.
                let before = after.map(|id| id.to_string()).unwrap_or_else(|| "~".to_owned());
                let fetch = limit_param(limit.saturating_add(1));
                let mut jobs = match status {
                    Some(status) => query_jobs(
                        conn,
                        "SELECT record FROM jobs WHERE tenant = ?1 AND status = ?2 AND id < ?3
                         ORDER BY id DESC LIMIT ?4",
                        &[&tenant.as_str(), &status.as_str(), &before, &fetch],
                    )?,
                    None => query_jobs(
                        conn,
                        "SELECT record FROM jobs WHERE tenant = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
                        &[&tenant.as_str(), &before, &fetch],
                    )?,
                };
                let next = if jobs.len() > limit {
                    jobs.truncate(limit);
                    jobs.last().map(|job| job.id)
                } else {
                    None
                };
                Ok(JobPage { jobs, next })
            })
            .await
    }

    async fn list_unfinished(&self, after: Option<JobId>, limit: usize) -> Result<Vec<Job>, StoreError> {
        self.db
            .read(move |conn| {
                let after = after.map(|id| id.to_string()).unwrap_or_default();
                let mut jobs = query_jobs(
                    conn,
                    "SELECT record FROM jobs WHERE status = 'queued' AND id > ?1 ORDER BY id LIMIT ?2",
                    &[&after, &limit_param(limit)],
                )?;
                jobs.extend(query_jobs(
                    conn,
                    "SELECT record FROM jobs WHERE status = 'processing' AND id > ?1 ORDER BY id LIMIT ?2",
                    &[&after, &limit_param(limit)],
                )?);
                jobs.sort_by_key(|job| job.id);
                jobs.truncate(limit);
                Ok(jobs)
            })
            .await
    }

    async fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        self.db
            .read(|conn| {
                let mut statement =
                    conn.prepare_cached("SELECT status, COUNT(*) FROM jobs GROUP BY status").map_err(sql_err)?;
                let rows = statement
                    .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))
                    .map_err(sql_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err)?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(status, count)| Some((status.parse().ok()?, u64::try_from(count).ok()?)))
                    .collect())
            })
            .await
    }
}

fn tenant_err(err: rusqlite::Error) -> TenantError {
    TenantError::Unavailable(Fault::from_error(err))
}

#[async_trait]
impl TenantDirectory for SqliteState {
    async fn add_tenant(&self, tenant: &TenantId) -> Result<(), TenantError> {
        let tenant = tenant.clone();
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO tenants (id, created_at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                    params![tenant.as_str(), Utc::now().to_rfc3339()],
                )
                .map_err(tenant_err)?;
                Ok(())
            })
            .await
    }

    async fn add_key(&self, tenant: &TenantId, key_hash: &str) -> Result<(), TenantError> {
        let tenant = tenant.clone();
        let key_hash = key_hash.to_owned();
        self.db
            .write(move |conn| {
                let exists: bool = conn
                    .query_row("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = ?1)", params![tenant.as_str()], |r| {
                        r.get(0)
                    })
                    .map_err(tenant_err)?;
                if !exists {
                    return Err(TenantError::NotFound(tenant));
                }
                let owner: Option<String> = conn
                    .query_row("SELECT tenant FROM api_keys WHERE key_hash = ?1", params![key_hash], |r| r.get(0))
                    .optional()
                    .map_err(tenant_err)?;
                match owner {
                    Some(owner) if owner == tenant.as_str() => Ok(()),
                    Some(_) => Err(TenantError::Unavailable(Fault::new("api key hash is already registered"))),
                    None => {
                        conn.execute(
                            "INSERT INTO api_keys (key_hash, tenant, created_at) VALUES (?1, ?2, ?3)",
                            params![key_hash, tenant.as_str(), Utc::now().to_rfc3339()],
                        )
                        .map_err(tenant_err)?;
                        Ok(())
                    }
                }
            })
            .await
    }

    async fn find_tenant_by_key(&self, key_hash: &str) -> Result<Option<TenantId>, TenantError> {
        let key_hash = key_hash.to_owned();
        self.db
            .read(move |conn| {
                let tenant: Option<String> = conn
                    .query_row("SELECT tenant FROM api_keys WHERE key_hash = ?1", params![key_hash], |r| r.get(0))
                    .optional()
                    .map_err(tenant_err)?;
                Ok(tenant.and_then(|t| t.parse().ok()))
            })
            .await
    }

    async fn list_tenants(&self) -> Result<Vec<TenantId>, TenantError> {
        self.db
            .read(|conn| {
                let mut statement = conn.prepare("SELECT id FROM tenants ORDER BY id").map_err(tenant_err)?;
                let ids = statement
                    .query_map([], |row| row.get::<_, String>(0))
                    .map_err(tenant_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(tenant_err)?;
                Ok(ids.into_iter().filter_map(|id| id.parse().ok()).collect())
            })
            .await
    }

    async fn list_keys(&self) -> Result<Vec<(String, TenantId)>, TenantError> {
        self.db
            .read(|conn| {
                let mut statement =
                    conn.prepare("SELECT key_hash, tenant FROM api_keys ORDER BY key_hash").map_err(tenant_err)?;
                let rows = statement
                    .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
                    .map_err(tenant_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(tenant_err)?;
                Ok(rows.into_iter().filter_map(|(hash, tenant)| Some((hash, tenant.parse().ok()?))).collect())
            })
            .await
    }
}

impl From<DbError> for RegistryError {
    fn from(err: DbError) -> RegistryError {
        RegistryError::Unavailable(Fault::from_error(err))
    }
}

fn registry_err(err: impl std::error::Error + Send + Sync + 'static) -> RegistryError {
    RegistryError::Unavailable(Fault::from_error(err))
}

#[async_trait]
impl WorkerRegistry for SqliteState {
    async fn beat(&self, beat: &WorkerBeat) -> Result<WorkerOrders, RegistryError> {
        let id = beat.worker_id.to_string();
        let record = serde_json::to_string(beat).map_err(registry_err)?;
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO workers (id, beat) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET beat = excluded.beat",
                )
                .and_then(|mut s| s.execute(params![id, record]))
                .map_err(registry_err)?;
                let drain: bool = conn
                    .prepare_cached("SELECT drain FROM workers WHERE id = ?1")
                    .and_then(|mut s| s.query_row(params![id], |row| row.get(0)))
                    .map_err(registry_err)?;
                Ok(WorkerOrders { drain })
            })
            .await
    }

    async fn list(&self) -> Result<Vec<WorkerBeat>, RegistryError> {
        self.db
            .read(|conn| {
                let mut statement =
                    conn.prepare_cached("SELECT beat FROM workers ORDER BY id").map_err(registry_err)?;
                let beats = statement
                    .query_map([], |row| row.get::<_, String>(0))
                    .map_err(registry_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(registry_err)?;
                beats.iter().map(|b| serde_json::from_str(b).map_err(registry_err)).collect()
            })
            .await
    }

    async fn request_drain(&self, worker_id: uuid::Uuid) -> Result<(), RegistryError> {
        let id = worker_id.to_string();
        self.db
            .write(move |conn| {
                conn.execute("UPDATE workers SET drain = 1 WHERE id = ?1", params![id]).map_err(registry_err)?;
                Ok(())
            })
            .await
    }

    async fn remove(&self, worker_id: uuid::Uuid) -> Result<(), RegistryError> {
        let id = worker_id.to_string();
        self.db
            .write(move |conn| {
                conn.execute("DELETE FROM workers WHERE id = ?1", params![id]).map_err(registry_err)?;
                Ok(())
            })
            .await
    }
}
