//! Surge's shared library: domain types, the booking proposal, the ports (queue, blob store, job
//! store, tenant directory) with their backends, typed config and telemetry setup.
//!
//! No HTTP and no `main` here: the `dispatcher` and `worker` crates build on this.

pub mod aws;
pub mod backend;
pub mod chart;
pub mod config;
pub mod contract;
pub mod domain;
pub mod embedded;
pub mod ports;
pub mod proposal;
pub mod region;
pub mod replication;
pub mod telemetry;
