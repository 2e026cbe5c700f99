//! Placeholder library so the integration-test package has a crate root.
