//! What the policy is told about a lane: one observation per tick, and the jobs completed.

use std::time::Duration;

/// A completed job, for the cost model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Completion {
    /// How long the job ran.
    pub duration: Duration,
    /// Its [`work_units`].
    pub units: f64,
}

/// What the policy sees of one lane at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaneObservation {
    /// Jobs waiting for a worker (held by the dispatcher or visible in the lane queue).
    pub visible_jobs: u64,
    /// Their [`work_units`].
    pub visible_units: f64,
    /// Jobs a worker has received and not finished; their workers are busy with them.
    pub in_flight_jobs: u64,
    /// Their [`work_units`].
    pub in_flight_units: f64,
    /// How long the oldest waiting job has waited.
    pub oldest_wait: Duration,
    /// Jobs that arrived since the previous observation.
    pub arrived_jobs: u64,
    /// Their [`work_units`].
    pub arrived_units: f64,
    /// Jobs completed since the previous observation.
    pub completions: Vec<Completion>,
    /// Workers up (busy or idle).
    pub ready_workers: usize,
    /// Workers running a job; only idle ones count as surplus.
    pub busy_workers: usize,
    /// Workers asked for and still starting.
    pub starting_workers: usize,
}
