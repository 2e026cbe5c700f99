//! Finding the other Surge executables installed beside this one.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// A binary installed next to this one (cargo puts all of a workspace's binaries together).
pub(crate) fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot locate the surge executable")?;
    let path = me.parent().map(|dir| dir.join(name)).unwrap_or_else(|| Path::new(name).to_owned());
    anyhow::ensure!(
        path.exists(),
        "{} not found next to surge; build it (cargo build --bins) or set pool.worker_binary",
        path.display()
    );
    Ok(path)
}
