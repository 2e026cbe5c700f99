//! Surge's shared library: domain types, the booking proposal, the ports (queue, blob store, job
//! store, tenant directory) with their backends, typed config and telemetry setup.
//!
//! No HTTP and no `main` here: the `dispatcher` and `worker` crates build on this.

pub mod aws;
pub mod backend;
pub mod chart;
pub mod config;
/// Contract suites for the ports: test support, compiled only for tests (`test-support`).
#[cfg(any(test, feature = "test-support"))]
pub mod contract;
pub mod domain;
pub mod embedded;
pub mod keys;
pub mod ports;
pub mod proposal;
pub mod region;
pub mod replication;
pub mod series;
pub mod telemetry;
