//! The policy's answer for a lane and the reason for it, as values: the autoscaler loop logs
//! and records them.

use std::fmt;

/// The policy's answer for one lane.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Workers the lane should have (ready plus starting).
    pub desired: usize,
    /// What the previous decision said.
    pub previous: usize,
    pub reason: Reason,
}

impl Decision {
    /// Whether this decision changes the number of workers.
    pub fn changed(&self) -> bool {
        self.desired != self.previous
    }

    /// Whether this decision adds workers (`up`), removes some (`down`) or keeps them (`hold`).
    pub fn direction(&self) -> &'static str {
        match self.desired.cmp(&self.previous) {
            std::cmp::Ordering::Greater => "up",
            std::cmp::Ordering::Less => "down",
            std::cmp::Ordering::Equal => "hold",
        }
    }
}

/// Why the policy decided what it did. `Display` is a sentence for logs and people;
/// [`Reason::kind`] a fixed label for metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// The workers the demand needs (up from fewer, or unchanged).
    Demand { workers: usize, backlog_work_secs: f64, arrival_work_per_sec: f64, target_secs: u64 },
    /// Scaling up, limited by `max_scale_up_step`.
    StepLimited { workers: usize, wanted: usize, step: usize },
    /// The demand exceeds `max_workers`.
    AtMaximum { max: usize, wanted: usize },
    /// The configured minimum.
    Minimum { min: usize },
    /// The demand fell, but not for the whole stabilisation window yet.
    Stabilising { workers: usize, would: usize, window_secs: u64 },
    /// The demand stayed lower for the window, but the surplus so far does not make a
    /// scale-down worth an action yet.
    SavingTooSmall { workers: usize, would: usize, surplus_worker_secs: u64, threshold: u64 },
    /// The demand stayed lower for the whole window.
    ScaleDown { workers: usize, window_secs: u64 },
    /// The demand fell, but workers asked for are still starting.
    StartingUp { workers: usize, starting: usize },
    /// The demand looks lower, but the workers found at start-up are kept while the arrival
    /// rate is learned.
    WarmingUp { workers: usize, window_secs: u64 },
    /// The demand fell, but the lane is idle and goes to zero after `idle_before_zero_secs`.
    GoingToZero { workers: usize, idle_before_zero_secs: u64 },
    /// No job for the idle period: every worker removed.
    ScaledToZero { idle_secs: u64 },
    /// At zero, with fewer waiting jobs than the activation threshold.
    BelowActivation { waiting: u64, threshold: usize },
    /// Woken from zero.
    Activated { workers: usize, waiting: u64 },
    /// At zero, nothing waiting.
    IdleAtZero,
}

impl Reason {
    /// A short fixed label (metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Demand { .. } => "demand",
            Reason::StepLimited { .. } => "step_limited",
            Reason::AtMaximum { .. } => "at_maximum",
            Reason::Minimum { .. } => "minimum",
            Reason::Stabilising { .. } => "stabilising",
            Reason::SavingTooSmall { .. } => "saving_too_small",
            Reason::ScaleDown { .. } => "scale_down",
            Reason::StartingUp { .. } => "starting_up",
            Reason::WarmingUp { .. } => "warming_up",
            Reason::GoingToZero { .. } => "going_to_zero",
            Reason::ScaledToZero { .. } => "scaled_to_zero",
            Reason::BelowActivation { .. } => "below_activation",
            Reason::Activated { .. } => "activated",
            Reason::IdleAtZero => "idle_at_zero",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::Demand { workers, backlog_work_secs, arrival_work_per_sec, target_secs } => write!(
                f,
                "backlog of {backlog_work_secs:.0} s of work and arrivals of {arrival_work_per_sec:.1} s of work per \
                 second need {workers} {} to meet the {target_secs} s target",
                workers_noun(workers)
            ),
            Reason::StepLimited { workers, wanted, step } => {
                write!(f, "scaling up by at most {step}: {workers} of the {wanted} workers needed")
            }
            Reason::AtMaximum { max, wanted } => write!(f, "capped at the maximum of {max} workers ({wanted} needed)"),
            Reason::Minimum { min } => write!(f, "keeping the minimum of {min} {}", workers_noun(min)),
            Reason::Stabilising { workers, would, window_secs } => write!(
                f,
                "holding {workers} {}: scale-down stabilisation {window_secs} s not elapsed ({would} would do)",
                workers_noun(workers)
            ),
            Reason::SavingTooSmall { workers, would, surplus_worker_secs, threshold } => write!(
                f,
                "holding {workers} {}: {would} would do, but the {surplus_worker_secs} surplus worker-seconds so far \
                 are less than the {threshold} that make a scale-down worth an action",
                workers_noun(workers)
            ),
            Reason::ScaleDown { workers, window_secs } => write!(
                f,
                "scaling down to {workers} {}: the demand stayed at or below that for {window_secs} s",
                workers_noun(workers)
            ),
            Reason::StartingUp { workers, starting } => {
                write!(f, "holding {workers} {}: {starting} still starting", workers_noun(workers))
            }
            Reason::WarmingUp { workers, window_secs } => write!(
                f,
                "holding the {workers} {} found at start-up for {window_secs} s while the arrival rate is learned",
                workers_noun(workers)
            ),
            Reason::GoingToZero { workers, idle_before_zero_secs } => write!(
                f,
                "holding {workers} idle {}: the lane goes to zero after {idle_before_zero_secs} s idle",
                workers_noun(workers)
            ),
            Reason::ScaledToZero { idle_secs } => write!(f, "scaled to zero after {idle_secs} s idle"),
            Reason::BelowActivation { waiting, threshold } => write!(
                f,
                "staying at zero: {waiting} waiting {} below the activation threshold of {threshold}",
                if waiting == 1 { "job is" } else { "jobs are" }
            ),
            Reason::Activated { workers, waiting } => write!(
                f,
                "activating from zero: {waiting} waiting {} need {workers} {}",
                if waiting == 1 { "job" } else { "jobs" },
                workers_noun(workers)
            ),
            Reason::IdleAtZero => f.write_str("idle at zero"),
        }
    }
}

fn workers_noun(n: usize) -> &'static str {
    if n == 1 { "worker" } else { "workers" }
}
