//! The tenant directory port: tenants and their hashed API keys.

use std::fmt;

use async_trait::async_trait;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::fault::Fault;
use crate::domain::TenantId;

/// Tenants and their API keys. Keys are stored only as SHA-256 hashes: they are 256-bit random
/// secrets, so a fast hash is as good as a slow one and keeps authentication cheap.
///
/// Contract: `add_tenant` is idempotent; `add_key` attaches a key to an existing tenant and is
/// idempotent for the same owner (a key hash never changes owner); `find_tenant_by_key`
/// returns the owner of a key hash or `None`; `list_keys` returns every key hash with its
/// owner (for mirroring and backups).
#[async_trait]
pub trait TenantDirectory: Send + Sync + 'static {
    async fn add_tenant(&self, tenant: &TenantId) -> Result<(), TenantError>;
    async fn add_key(&self, tenant: &TenantId, key_hash: &str) -> Result<(), TenantError>;
    async fn find_tenant_by_key(&self, key_hash: &str) -> Result<Option<TenantId>, TenantError>;
    async fn list_tenants(&self) -> Result<Vec<TenantId>, TenantError>;
    async fn list_keys(&self) -> Result<Vec<(String, TenantId)>, TenantError>;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TenantError {
    #[error("tenant {0} not found")]
    NotFound(TenantId),
    #[error("tenant directory unavailable: {0}")]
    Unavailable(Fault),
}

impl TenantError {
    /// Whether the failure lies with the infrastructure, so the same call may succeed later
    /// (retry with backoff; never blame the document for it).
    pub fn is_transient(&self) -> bool {
        matches!(self, TenantError::Unavailable(_))
    }
}

/// A freshly generated API key. Shown to the user once; only its hash is stored.
pub struct ApiKey(String);

impl ApiKey {
    /// Prefix that makes Surge keys recognisable to secret scanners.
    pub const PREFIX: &'static str = "sk_surge_";

    pub fn generate() -> ApiKey {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        ApiKey(format!("{}{}", ApiKey::PREFIX, hex::encode(secret)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        ApiKey::hash_presented(&self.0)
    }

    /// The stored form of a key a client presented.
    pub fn hash_presented(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(..)")
    }
}
