//! Repository hygiene that reviewers should not have to check by hand.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned()
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                rust_files(&path, files);
            }
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = Vec::new();
    for crate_dir in ["shared", "dispatcher", "worker", "tests"] {
        rust_files(&root.join(crate_dir), &mut files);
    }
    assert!(files.len() > 10, "found the sources");
    files
}

#[test]
fn every_file_starts_with_a_module_doc_comment() {
    let offenders: Vec<_> = all_rust_files()
        .into_iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//!"))
        .collect();
    assert!(offenders.is_empty(), "files without a leading `//!` line: {offenders:?}");
}

#[test]
fn only_the_aws_adapter_imports_the_aws_sdk() {
    let aws_dir = workspace_root().join("shared/src/aws");
    let offenders: Vec<_> = all_rust_files()
        .into_iter()
        .filter(|path| !path.starts_with(&aws_dir) && !path.ends_with("tests/it/tidy.rs"))
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            text.contains("aws_sdk_") || text.contains("aws_config")
        })
        .collect();
    assert!(offenders.is_empty(), "aws_sdk_* used outside shared::aws: {offenders:?}");
}
