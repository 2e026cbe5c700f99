//! The tenant directory over S3: `tenants/{id}.json` per tenant and `api-keys/{hash}` per API
//! key, holding the owner's id. Finding a key's tenant is one GET.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::objects::{Bucket, Condition, ObjectError};
use crate::domain::TenantId;
use crate::ports::Fault;
use crate::ports::{TenantDirectory, TenantError};

const TENANTS: &str = "tenants/";
const API_KEYS: &str = "api-keys/";

/// What `tenants/{id}.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct TenantRecord {
    id: TenantId,
    created_at: DateTime<Utc>,
}

/// A [`TenantDirectory`] in an S3 bucket.
pub(crate) struct S3TenantDirectory {
    bucket: Bucket,
}

impl S3TenantDirectory {
    pub(crate) fn new(bucket: Bucket) -> S3TenantDirectory {
        S3TenantDirectory { bucket }
    }
}

fn tenant_key(tenant: &TenantId) -> String {
    format!("{TENANTS}{tenant}.json")
}

/// `None` for a hash that is not hex, which no stored key can have.
fn api_key_key(key_hash: &str) -> Option<String> {
    let valid = !key_hash.is_empty() && key_hash.len() <= 128 && key_hash.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| format!("{API_KEYS}{}", key_hash.to_ascii_lowercase()))
}

impl From<ObjectError> for TenantError {
    fn from(err: ObjectError) -> TenantError {
        TenantError::Unavailable(Fault::from_error(err))
    }
}

#[async_trait]
impl TenantDirectory for S3TenantDirectory {
    async fn add_tenant(&self, tenant: &TenantId) -> Result<(), TenantError> {
        let record = TenantRecord { id: tenant.clone(), created_at: Utc::now() };
        let bytes = serde_json::to_vec(&record).map_err(|e| TenantError::Unavailable(Fault::from_error(e)))?;
        // Already there is fine: adding a tenant is idempotent.
        self.bucket.put(&tenant_key(tenant), Bytes::from(bytes), &Condition::IfAbsent).await?;
        Ok(())
    }

    async fn add_key(&self, tenant: &TenantId, key_hash: &str) -> Result<(), TenantError> {
        if self.bucket.head(&tenant_key(tenant)).await?.is_none() {
            return Err(TenantError::NotFound(tenant.clone()));
        }
        let key = api_key_key(key_hash)
            .ok_or_else(|| TenantError::Unavailable(Fault::new(format!("api key hash {key_hash:?} is not hex"))))?;
        let owner = Bytes::from(tenant.as_str().to_owned());
        if self.bucket.put(&key, owner, &Condition::IfAbsent).await?.is_some() {
            return Ok(());
        }
        match self.find_tenant_by_key(key_hash).await? {
            Some(existing) if existing == *tenant => Ok(()),
            _ => Err(TenantError::Unavailable(Fault::new("api key hash is already registered"))),
        }
    }

    async fn find_tenant_by_key(&self, key_hash: &str) -> Result<Option<TenantId>, TenantError> {
        let Some(key) = api_key_key(key_hash) else { return Ok(None) };
        let Some(fetched) = self.bucket.get(&key).await? else { return Ok(None) };
        let owner = std::str::from_utf8(&fetched.bytes).ok().and_then(|s| s.parse().ok());
        owner.map(Some).ok_or_else(|| TenantError::Unavailable(Fault::new(format!("{key} does not name a tenant"))))
    }

    async fn list_tenants(&self) -> Result<Vec<TenantId>, TenantError> {
        let keys = self.bucket.list_all(TENANTS).await?;
        let mut tenants: Vec<TenantId> =
            keys.iter().filter_map(|key| key.strip_prefix(TENANTS)?.strip_suffix(".json")?.parse().ok()).collect();
        tenants.sort();
        Ok(tenants)
    }

    async fn list_keys(&self) -> Result<Vec<(String, TenantId)>, TenantError> {
        let mut keys = Vec::new();
        for key in self.bucket.list_all(API_KEYS).await? {
            let Some(hash) = key.strip_prefix(API_KEYS) else { continue };
            if let Some(owner) = self.find_tenant_by_key(hash).await? {
                keys.push((hash.to_owned(), owner));
            }
        }
        Ok(keys)
    }
}
