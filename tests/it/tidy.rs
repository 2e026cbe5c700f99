//! Repository hygiene that reviewers should not have to check by hand.

use std::path::{Path, PathBuf};

/// Every crate of the workspace, by directory.
const CRATES: [&str; 6] = ["scaling", "shared", "dispatcher", "worker", "cli", "tests"];

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
    for crate_dir in CRATES {
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
            text.contains("aws_sdk_") || text.contains("aws_config") || text.contains("aws_smithy")
        })
        .collect();
    assert!(offenders.is_empty(), "aws_sdk_* used outside shared::aws: {offenders:?}");
}

/// The scaling model is pure: no runtime, no metrics, no logging, no I/O. Decisions are values
/// that the dispatcher's autoscaler loop logs and records.
#[test]
fn the_scaling_model_does_no_io() {
    let root = workspace_root().join("scaling");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for dependency in ["tokio", "metrics", "tracing", "shared", "reqwest", "rusqlite"] {
        assert!(
            !manifest
                .lines()
                .any(|line| line.starts_with(&format!("{dependency}.")) || line.starts_with(&format!("{dependency} "))),
            "scaling depends on {dependency}"
        );
    }
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for io in ["std::fs", "std::net", "std::time::Instant", "SystemTime", "std::env", "println!", "eprintln!"] {
            assert!(!code.contains(io), "{} uses {io}", path.display());
        }
    }
}

/// The modules a module refers to through `crate::` or `super::` paths outside its tests.
fn module_references(root: &Path, module: &str, text: &str, modules: &[String]) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let parent: Vec<&str> = module.split("::").filter(|m| !m.is_empty()).collect();
    let is_mod_file = root.ends_with("mod.rs") || root.ends_with("lib.rs") || root.ends_with("main.rs");
    let mut found = Vec::new();
    let path_chars = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", {
            let mut p = parent.clone();
            if !is_mod_file {
                p.pop();
            }
            p
        }),
    ] {
        for (at, _) in code.match_indices(prefix) {
            let rest: String = code[at + prefix.len()..].chars().take_while(|&c| path_chars(c)).collect();
            let mut candidates: Vec<String> = Vec::new();
            if rest.is_empty() && code[at + prefix.len()..].starts_with('{') {
                let group: String = code[at + prefix.len() + 1..].chars().take_while(|&c| c != '}').collect();
                candidates.extend(group.split(',').map(|part| part.trim().split("::").next().unwrap_or("").to_owned()));
            } else {
                candidates.push(rest);
            }
            for candidate in candidates {
                let mut parts: Vec<String> = base.iter().map(|s| s.to_string()).collect();
                parts.extend(candidate.split("::").filter(|s| !s.is_empty()).map(str::to_owned));
                while !parts.is_empty() {
                    let name = parts.join("::");
                    if modules.contains(&name) {
                        if name != module && !module.starts_with(&format!("{name}::")) {
                            found.push(name);
                        }
                        break;
                    }
                    parts.pop();
                }
            }
        }
    }
    found
}

/// No module imports another that imports it back, directly or through others: each crate's
/// modules form a directed acyclic graph.
#[test]
fn no_module_import_loops() {
    let mut loops = Vec::new();
    for crate_dir in CRATES.iter().filter(|c| **c != "tests") {
        let src = workspace_root().join(crate_dir).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let module_of = |path: &Path| -> String {
            let relative = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if matches!(parts.last().map(String::as_str), Some("lib" | "main" | "mod")) {
                parts.pop();
            }
            parts.join("::")
        };
        let modules: Vec<String> = files.iter().map(|f| module_of(f)).collect();
        let edges: Vec<(String, Vec<String>)> = files
            .iter()
            .map(|f| {
                let module = module_of(f);
                let text = std::fs::read_to_string(f).unwrap();
                let refs = module_references(f, &module, &text, &modules);
                (module, refs)
            })
            .collect();
        // Depth-first search for a back edge.
        fn visit(
            node: &str,
            edges: &[(String, Vec<String>)],
            state: &mut std::collections::HashMap<String, u8>,
            stack: &mut Vec<String>,
            loops: &mut Vec<String>,
        ) {
            state.insert(node.to_owned(), 1);
            stack.push(node.to_owned());
            let targets = edges.iter().find(|(m, _)| m == node).map(|(_, t)| t.clone()).unwrap_or_default();
            for target in targets {
                match state.get(&target).copied() {
                    Some(1) => {
                        let start = stack.iter().position(|m| *m == target).unwrap_or(0);
                        loops.push(format!("{} -> {target}", stack[start..].join(" -> ")));
                    }
                    Some(_) => {}
                    None => visit(&target, edges, state, stack, loops),
                }
            }
            stack.pop();
            state.insert(node.to_owned(), 2);
        }
        let mut state = std::collections::HashMap::new();
        for (module, _) in &edges {
            if !state.contains_key(module) {
                let mut stack = Vec::new();
                let mut found = Vec::new();
                visit(module, &edges, &mut state, &mut stack, &mut found);
                loops.extend(found.into_iter().map(|l| format!("{crate_dir}: {l}")));
            }
        }
    }
    assert!(loops.is_empty(), "module import loops:\n{}", loops.join("\n"));
}
