//! The public sample invoices the tests read in place (never copied into the repository):
//! `SURGE_SAMPLES`, else `../shared/samples` beside the repository.

use std::path::PathBuf;

/// The samples folder; panics with a clear message when it is missing, so a test never passes
/// by silently reading nothing.
pub(crate) fn samples_dir() -> PathBuf {
    let dir = std::env::var_os("SURGE_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/samples")));
    assert!(
        dir.join("README.md").is_file(),
        "sample invoices not found at {} (set SURGE_SAMPLES to the shared/samples folder)",
        dir.display()
    );
    dir
}

/// The bytes of `relative` under the samples folder.
pub(crate) fn sample(relative: &str) -> Vec<u8> {
    let path = samples_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|err| panic!("cannot read sample {}: {err}", path.display()))
}
