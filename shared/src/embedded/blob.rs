//! Blob store on the local filesystem: one file per key under a root directory.
//!
//! Writes go to a temporary file in `<root>/.tmp`, are fsynced, then renamed into place and the
//! directory is fsynced, so a crash leaves either the old object or the whole new one.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::ports::Fault;
use crate::ports::{BlobError, BlobMeta, BlobStore, validate_blob_key};

const TMP_DIR: &str = ".tmp";

/// A [`BlobStore`] rooted at a directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    pub fn open(root: &Path) -> Result<FsBlobStore, BlobError> {
        std::fs::create_dir_all(root.join(TMP_DIR)).map_err(unavailable)?;
        Ok(FsBlobStore { root: root.to_owned() })
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, BlobError> {
        validate_blob_key(key)?;
        if key == TMP_DIR || key.starts_with(".tmp/") {
            return Err(BlobError::InvalidKey(key.to_owned()));
        }
        Ok(self.root.join(key))
    }

    async fn write(&self, key: &str, bytes: Bytes, replace: bool) -> Result<Option<BlobMeta>, BlobError> {
        let path = self.path_of(key)?;
        let root = self.root.clone();
        let key = key.to_owned();
        blocking(move || {
            let parent = path.parent().unwrap_or(&root).to_owned();
            std::fs::create_dir_all(&parent).map_err(unavailable)?;
            let mut tmp = tempfile::NamedTempFile::new_in(root.join(TMP_DIR)).map_err(unavailable)?;
            tmp.write_all(&bytes).map_err(unavailable)?;
            tmp.as_file().sync_all().map_err(unavailable)?;
            if replace {
                tmp.persist(&path).map_err(|e| unavailable(e.error))?;
            } else {
                match tmp.persist_noclobber(&path) {
                    Ok(_) => {}
                    Err(e) if e.error.kind() == ErrorKind::AlreadyExists => return Ok(None),
                    Err(e) => return Err(unavailable(e.error)),
                }
            }
            sync_dir(&parent)?;
            meta_of(&key, &path)
                .map(|m| m.ok_or_else(|| BlobError::Unavailable(Fault::new("object vanished after write"))))?
                .map(Some)
        })
        .await
    }
}

fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> BlobError {
    BlobError::Unavailable(Fault::from_error(err))
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, BlobError> + Send + 'static,
) -> Result<R, BlobError> {
    tokio::task::spawn_blocking(f).await.map_err(unavailable)?
}

fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(unavailable)
}

fn meta_of(key: &str, path: &Path) -> Result<Option<BlobMeta>, BlobError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(BlobMeta {
            key: key.to_owned(),
            size: meta.len(),
            modified: meta.modified().map(DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now()),
        })),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

fn collect_keys(root: &Path, dir: &Path, prefix: &str, keys: &mut Vec<String>) -> Result<(), BlobError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(unavailable(e)),
    };
    for entry in entries {
        let entry = entry.map_err(unavailable)?;
        let path = entry.path();
        let Ok(relative) = path.strip_prefix(root) else { continue };
        let key = relative.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
        if key == TMP_DIR {
            continue;
        }
        let file_type = entry.file_type().map_err(unavailable)?;
        if file_type.is_dir() {
            // Descend only where keys under this directory can still match the prefix.
            let as_dir = format!("{key}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                collect_keys(root, &path, prefix, keys)?;
            }
        } else if key.starts_with(prefix) {
            keys.push(key);
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<BlobMeta, BlobError> {
        self.write(key, bytes, true)
            .await?
            .ok_or_else(|| BlobError::Unavailable(Fault::new("replacing write reported no object")))
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<Option<BlobMeta>, BlobError> {
        self.write(key, bytes, false).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        let path = self.path_of(key)?;
        blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        let path = self.path_of(key)?;
        let key = key.to_owned();
        blocking(move || meta_of(&key, &path)).await
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path_of(key)?;
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable(e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut keys = Vec::new();
            collect_keys(&root, &root, &prefix, &mut keys)?;
            keys.sort();
            Ok(keys)
        })
        .await
    }
}
