//! Backups: the job state (tenants, key hashes, every job record) plus a manifest of every
//! document and result with its SHA-256, kept in the secondary region under `backups/{id}/`,
//! with a retention policy. `verify` restores into a scratch region and checks every checksum.
//!
//! A backup reads each record atomically while work goes on; documents never change once
//! stored and a result is stored before its job record says `succeeded`, so every object the
//! saved records name is in the manifest.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::backend::Backends;
use shared::config::BackupConfig;
use shared::domain::{Job, TenantId};
use shared::region::{RegionName, Topology};
use shared::replication::LOCAL_PREFIXES;

use super::{RecoveryError, failed};

use shared::keys::BACKUPS;

/// One line of `state.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Tenant(TenantId),
    Key { hash: String, tenant: TenantId },
    Job(Box<Job>),
}

/// `backups/{id}/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// The region the state was read from.
    pub source: RegionName,
    pub tenants: u64,
    pub keys: u64,
    pub jobs: u64,
    /// SHA-256 of `state.jsonl`.
    pub state_sha256: String,
    /// Every document, result and setting, with its checksum.
    pub objects: BTreeMap<String, String>,
}

/// A backup as `surge backup list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub jobs: u64,
    pub objects: usize,
}

/// What `verify` and `restore` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    pub id: String,
    pub jobs: u64,
    pub objects_checked: u64,
    pub missing: Vec<String>,
    pub mismatched: Vec<String>,
}

impl RestoreReport {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.mismatched.is_empty()
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where backups are kept: the secondary region, or the primary when there is no other.
fn store(topology: &Topology) -> Result<&Backends, RecoveryError> {
    topology
        .region(RegionName::Secondary)
        .or_else(|| topology.region(RegionName::Primary))
        .ok_or(RecoveryError::Unreachable(RegionName::Secondary))
}

/// Takes a backup of the active region of `topology` (open it with [`Topology::open`]) and
/// applies the retention policy.
pub async fn create(topology: &Topology, settings: &BackupConfig) -> Result<Manifest, RecoveryError> {
    let source = topology.region(topology.active()).ok_or(RecoveryError::Unreachable(topology.active()))?;
    let target = store(topology)?;
    let created_at = Utc::now();
    let id = created_at.format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let (mut state, mut objects) = (Vec::new(), BTreeMap::new());
    let mut push = |line: &Line| {
        serde_json::to_writer(&mut state, line).expect("lines serialise");
        state.push(b'\n');
    };
    let tenants = source.tenants.list_tenants().await.map_err(failed)?;
    for tenant in &tenants {
        push(&Line::Tenant(tenant.clone()));
    }
    let keys = source.tenants.list_keys().await.map_err(failed)?;
    for (hash, tenant) in &keys {
        push(&Line::Key { hash: hash.clone(), tenant: tenant.clone() });
    }
    let mut jobs = 0;
    for tenant in &tenants {
        let mut after = None;
        loop {
            let page = source.jobs.list_by_tenant(tenant, None, after, 500).await.map_err(failed)?;
            for job in page.jobs {
                // A job whose document was never stored (a `surge bench` job) has no checksum.
                if !job.sha256.is_empty() {
                    objects.insert(job.blob_key.clone(), job.sha256.clone());
                }
                if let Some(result) = &job.result_key
                    && let Some(bytes) = source.blobs.get(result).await.map_err(failed)?
                {
                    objects.insert(result.clone(), sha256(&bytes));
                }
                jobs += 1;
                push(&Line::Job(Box::new(job)));
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    for key in source.blobs.list("settings/").await.map_err(failed)? {
        if let Some(bytes) = source.blobs.get(&key).await.map_err(failed)? {
            objects.insert(key, sha256(&bytes));
        }
    }
    let manifest = Manifest {
        id: id.clone(),
        created_at,
        source: topology.active(),
        tenants: tenants.len() as u64,
        keys: keys.len() as u64,
        jobs,
        state_sha256: sha256(&state),
        objects,
    };
    // Objects live in the backup region through mirroring; copy any that are not there yet.
    if !std::ptr::eq(source, target) {
        for key in manifest.objects.keys() {
            if target.blobs.head(key).await.map_err(failed)?.is_none()
                && let Some(bytes) = source.blobs.get(key).await.map_err(failed)?
            {
                target.blobs.put(key, bytes).await.map_err(failed)?;
            }
        }
    }
    target.blobs.put(&format!("{BACKUPS}{id}/state.jsonl"), Bytes::from(state)).await.map_err(failed)?;
    let json = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
    target.blobs.put(&format!("{BACKUPS}{id}/manifest.json"), Bytes::from(json)).await.map_err(failed)?;
    prune(target, settings, Utc::now()).await?;
    Ok(manifest)
}

async fn manifests(store: &Backends) -> Result<Vec<Manifest>, RecoveryError> {
    let mut manifests = Vec::new();
    for key in store.blobs.list(BACKUPS).await.map_err(failed)? {
        if key.ends_with("/manifest.json")
            && let Some(bytes) = store.blobs.get(&key).await.map_err(failed)?
        {
            manifests.push(serde_json::from_slice::<Manifest>(&bytes).map_err(failed)?);
        }
    }
    manifests.sort_by_key(|m| m.created_at);
    Ok(manifests)
}

/// The backups kept for `topology` (open it with [`Topology::open_any`]: listing needs no
/// active region).
pub async fn list(topology: &Topology) -> Result<Vec<BackupSummary>, RecoveryError> {
    Ok(manifests(store(topology)?)
        .await?
        .into_iter()
        .map(|m| BackupSummary { id: m.id, created_at: m.created_at, jobs: m.jobs, objects: m.objects.len() })
        .collect())
}

/// Backups to delete under `policy` at `now`: all younger than `keep_all_secs` stay; older ones
/// keep the newest of each day for `keep_daily_days`.
pub fn expired(created: &[(String, DateTime<Utc>)], policy: &BackupConfig, now: DateTime<Utc>) -> Vec<String> {
    let mut newest_of_day: BTreeMap<NaiveDate, (DateTime<Utc>, &str)> = BTreeMap::new();
    for (id, at) in created {
        let entry = newest_of_day.entry(at.date_naive()).or_insert((*at, id));
        if *at > entry.0 {
            *entry = (*at, id);
        }
    }
    created
        .iter()
        .filter(|(id, at)| {
            let age = (now - *at).num_seconds();
            if age < policy.keep_all_secs as i64 {
                return false;
            }
            let daily = newest_of_day.get(&at.date_naive()).is_some_and(|(_, newest)| newest == id);
            !(daily && age < (policy.keep_daily_days * 86_400) as i64)
        })
        .map(|(id, _)| id.clone())
        .collect()
}

async fn prune(store: &Backends, policy: &BackupConfig, now: DateTime<Utc>) -> Result<(), RecoveryError> {
    let created: Vec<_> = manifests(store).await?.into_iter().map(|m| (m.id, m.created_at)).collect();
    for id in expired(&created, policy, now) {
        for key in store.blobs.list(&format!("{BACKUPS}{id}/")).await.map_err(failed)? {
            store.blobs.delete(&key).await.map_err(failed)?;
        }
        tracing::info!(backup = %id, "backup expired");
    }
    Ok(())
}

async fn load(store: &Backends, id: &str) -> Result<(Manifest, Vec<Line>), RecoveryError> {
    let missing = || RecoveryError::Failed(format!("no backup {id}"));
    let manifest =
        store.blobs.get(&format!("{BACKUPS}{id}/manifest.json")).await.map_err(failed)?.ok_or_else(missing)?;
    let manifest: Manifest = serde_json::from_slice(&manifest).map_err(failed)?;
    let state = store.blobs.get(&format!("{BACKUPS}{id}/state.jsonl")).await.map_err(failed)?.ok_or_else(missing)?;
    if sha256(&state) != manifest.state_sha256 {
        return Err(RecoveryError::Failed(format!("backup {id}: state.jsonl does not match its checksum")));
    }
    let lines = state
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(serde_json::from_slice::<Line>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed)?;
    Ok((manifest, lines))
}

/// Restores backup `id` into `target`: tenants, keys and job records (a record already newer
/// there is kept), and every object, checked against the manifest.
async fn restore_into(store: &Backends, id: &str, target: &Backends) -> Result<RestoreReport, RecoveryError> {
    let (manifest, lines) = load(store, id).await?;
    let mut report = RestoreReport { id: id.to_owned(), ..RestoreReport::default() };
    for line in lines {
        match line {
            Line::Tenant(tenant) => target.tenants.add_tenant(&tenant).await.map_err(failed)?,
            Line::Key { hash, tenant } => target.tenants.add_key(&tenant, &hash).await.map_err(failed)?,
            Line::Job(job) => {
                target.jobs.put_replica(*job).await.map_err(failed)?;
                report.jobs += 1;
            }
        }
    }
    for (key, expected) in &manifest.objects {
        if LOCAL_PREFIXES.iter().any(|p| key.starts_with(p)) {
            continue;
        }
        report.objects_checked += 1;
        match store.blobs.get(key).await.map_err(failed)? {
            None => report.missing.push(key.clone()),
            Some(bytes) if sha256(&bytes) != *expected => report.mismatched.push(key.clone()),
            Some(bytes) => {
                if !std::ptr::eq(store, target) {
                    target.blobs.put(key, bytes).await.map_err(failed)?;
                }
            }
        }
    }
    Ok(report)
}

/// Restores backup `id` into a scratch embedded region and checks every checksum.
pub async fn verify(topology: &Topology, id: &str, max_attempts: u32) -> Result<RestoreReport, RecoveryError> {
    let scratch_dir = tempfile::tempdir().map_err(failed)?;
    let scratch = Backends::open_embedded(scratch_dir.path(), max_attempts).map_err(failed)?;
    let report = restore_into(store(topology)?, id, &scratch).await?;
    let restored = scratch.jobs.count_by_status().await.map_err(failed)?.iter().map(|(_, n)| n).sum::<u64>();
    if restored != report.jobs {
        return Err(RecoveryError::Failed(format!("backup {id}: {restored} of {} job records restored", report.jobs)));
    }
    Ok(report)
}

/// Restores backup `id` into `region` (normally the active one).
pub async fn restore(topology: &Topology, id: &str, region: RegionName) -> Result<RestoreReport, RecoveryError> {
    let target = topology.region(region).ok_or(RecoveryError::Unreachable(region))?;
    restore_into(store(topology)?, id, target).await
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn retention_keeps_recent_backups_and_one_a_day_for_a_month() {
        let policy = BackupConfig { every_secs: 7200, keep_all_secs: 2 * 86_400, keep_daily_days: 30 };
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let at = |days: i64, hours: i64| now - chrono::Duration::days(days) - chrono::Duration::hours(hours);
        let created: Vec<(String, DateTime<Utc>)> = [
            ("recent-a", at(0, 1)),
            ("recent-b", at(1, 5)),
            ("day5-early", at(5, 10)),
            ("day5-late", at(5, 2)),
            ("day40", at(40, 0)),
        ]
        .into_iter()
        .map(|(id, t)| (id.to_owned(), t))
        .collect();
        let mut gone = expired(&created, &policy, now);
        gone.sort();
        assert_eq!(gone, vec!["day40".to_owned(), "day5-early".to_owned()]);
    }
}
