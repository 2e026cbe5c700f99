//! Surge's scaling model: lanes, the elastic scaling policy with its estimators, the lending
//! rule, and the simulator that replays arrival traces under Surge's policy and under models
//! of KEDA and AWS target tracking.
//!
//! Pure: no tokio, no metrics, no I/O. The caller passes the time and what it observed and
//! gets [`Decision`]s back as values; the dispatcher's autoscaler loop logs and records them,
//! and `surge simulate` prints the simulator's reports.

mod config;
mod decision;
mod estimate;
mod lane;
pub mod lending;
mod observation;
mod policy;
mod queueing;
pub mod simulate;

pub use config::{DEFAULT_MAX_WORKERS, LaneScalingConfig, ScalingConfig, ScalingConfigError};
pub use decision::{Decision, Reason};
pub use lane::{BYTES_PER_WORK_UNIT, Lane, LaneConfig, PerLane, UnknownLane, work_units};
pub use observation::{Completion, LaneObservation};
pub use policy::ScalingPolicy;
