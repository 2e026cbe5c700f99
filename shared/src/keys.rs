//! The blob store's key layout: where documents, results, tenant settings and the
//! region-local records live. Every key is built here, so the layout is stated once. Keys
//! take anything that displays as a tenant or job id, so this module depends on nothing.

use std::fmt::Display;

/// First segment of every uploaded document's key; documents are mirrored like everything else,
/// but never overwritten.
pub const DOCUMENTS: &str = "documents/";

/// Keys under these prefixes belong to one region and are never mirrored: the epoch and
/// replication records, claim-checked queue payloads, backups.
pub const LOCAL_PREFIXES: [&str; 3] = [REGION, QUEUE_PAYLOADS, BACKUPS];

/// Records about the region itself (its epoch, the replication shipper's report).
pub const REGION: &str = "region/";
/// Queue message bodies too large for the queue itself (the AWS backend's claim check).
pub const QUEUE_PAYLOADS: &str = "queue-payloads/";
/// Backups and their manifests.
pub const BACKUPS: &str = "backups/";

/// The epoch record of a region: the highest epoch names the active region.
pub const EPOCH: &str = "region/epoch.json";
/// The replication shipper's last report, kept in the region it ships to.
pub const REPLICATION_STATUS: &str = "region/replication.json";

/// Where a job's document is stored.
pub fn document(tenant: impl Display, id: impl Display) -> String {
    format!("{DOCUMENTS}{tenant}/{id}")
}

/// Where a job's booking proposal is stored once it succeeded.
pub fn result(tenant: impl Display, id: impl Display) -> String {
    format!("results/{tenant}/{id}.json")
}

/// Where a tenant's chart of accounts is stored.
pub fn chart(tenant: impl Display) -> String {
    format!("settings/{tenant}/chart.json")
}
