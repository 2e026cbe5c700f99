//! The autoscaler's settings per lane (`[scaling.small]`, `[scaling.large]`) and their
//! validation.

use serde::{Deserialize, Serialize};

use crate::lane::Lane;

/// Scaling settings of both lanes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScalingConfig {
    pub small: LaneScalingConfig,
    pub large: LaneScalingConfig,
}

/// Scaling settings of one lane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LaneScalingConfig {
    /// Workers kept while the lane is active, whatever the demand.
    pub min_workers: usize,
    /// Workers never exceeded, whatever the demand (the budget's ceiling). Unset: 100 for
    /// workers in the cloud; a local pool caps it at twice the machine's CPU count. Read it
    /// through [`LaneScalingConfig::ceiling`].
    pub max_workers: Option<usize>,
    /// Acceptable wait of a job between arrival and start.
    pub latency_target_secs: u64,
    /// Share of the jobs that should start within the latency target; sets the spare workers.
    pub target_quantile: f64,
    /// A lower level must hold this long before workers are removed.
    pub scale_down_stabilisation_secs: u64,
    /// Surplus worker-seconds (idle workers above the level the lane would scale down to, times
    /// the time) since the last change that make a scale-down worth an action: many surplus
    /// workers go soon, a single one waits.
    pub scale_down_min_saving_worker_secs: u64,
    /// Remove every worker after `idle_before_zero_secs` without any job.
    pub scale_to_zero: bool,
    /// How long a lane must be idle (no job waiting, running or arriving) before it scales to zero.
    pub idle_before_zero_secs: u64,
    /// Waiting jobs that wake a lane at zero workers.
    pub activation_backlog_jobs: usize,
    /// A job that waited this long (at most the latency target) wakes a lane at zero workers
    /// too, so a lone job is never stranded. Keep it below the target by a start-up and a job.
    pub activation_wait_secs: u64,
    /// Weight of a new completion in the moving averages of the cost (0 < w ≤ 1).
    pub cost_ewma_weight: f64,
    /// Seconds per unit of work assumed until the first completions are seen.
    pub initial_cost_secs_per_unit: f64,
    /// Shortest time constant of the arrival-rate average, in seconds.
    pub arrival_window_secs: u64,
    /// Expected time from asking for a worker to its first job.
    pub startup_delay_secs: u64,
    /// Waiting work the workers up cannot absorb is drained within this many seconds (at most
    /// the latency target) once new workers are up. Well inside the target, so one scale-up
    /// covers a burst that is still arriving; shorter costs start-ups, longer costs actions.
    pub backlog_drain_secs: u64,
    /// A higher arrival rate alone scales up only once the oldest waiting job has waited this
    /// long (0: at once; at most the latency target). A backlog that would miss the target
    /// scales up at once regardless.
    pub scale_up_min_wait_secs: u64,
    /// At most this many workers added in one decision; `None`: no limit.
    pub max_scale_up_step: Option<usize>,
}

impl Default for ScalingConfig {
    fn default() -> ScalingConfig {
        ScalingConfig {
            small: LaneScalingConfig::default(),
            large: LaneScalingConfig {
                min_workers: 0,
                latency_target_secs: 900,
                scale_to_zero: true,
                activation_backlog_jobs: 6,
                activation_wait_secs: 675,
                backlog_drain_secs: 300,
                scale_up_min_wait_secs: 0,
                ..LaneScalingConfig::default()
            },
        }
    }
}

impl Default for LaneScalingConfig {
    fn default() -> LaneScalingConfig {
        LaneScalingConfig {
            min_workers: 2,
            max_workers: None,
            latency_target_secs: 90,
            target_quantile: 0.8,
            scale_down_stabilisation_secs: 30,
            scale_down_min_saving_worker_secs: 500,
            scale_to_zero: false,
            idle_before_zero_secs: 60,
            activation_backlog_jobs: 1,
            activation_wait_secs: 45,
            cost_ewma_weight: 0.05,
            initial_cost_secs_per_unit: 5.0,
            arrival_window_secs: 60,
            startup_delay_secs: 20,
            backlog_drain_secs: 40,
            scale_up_min_wait_secs: 30,
            max_scale_up_step: None,
        }
    }
}

/// A scaling setting out of range, naming the key at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid scaling config: `{key}` {problem}")]
pub struct ScalingConfigError {
    pub key: String,
    pub problem: &'static str,
}

impl ScalingConfig {
    /// The settings of `lane`.
    pub fn lane(&self, lane: Lane) -> &LaneScalingConfig {
        match lane {
            Lane::Small => &self.small,
            Lane::Large => &self.large,
        }
    }

    /// Mutable settings of `lane`.
    pub fn lane_mut(&mut self, lane: Lane) -> &mut LaneScalingConfig {
        match lane {
            Lane::Small => &mut self.small,
            Lane::Large => &mut self.large,
        }
    }

    /// Checks every lane; the error names the key (`small.max_workers`).
    pub fn validate(&self) -> Result<(), ScalingConfigError> {
        for lane in Lane::ALL {
            self.lane(lane)
                .validate()
                .map_err(|(key, problem)| ScalingConfigError { key: format!("{}.{key}", lane.as_str()), problem })?;
        }
        Ok(())
    }
}

/// The ceiling of a lane whose `max_workers` is not set.
pub const DEFAULT_MAX_WORKERS: usize = 100;

impl LaneScalingConfig {
    /// Workers never exceeded: `max_workers`, or [`DEFAULT_MAX_WORKERS`] when unset.
    pub fn ceiling(&self) -> usize {
        self.max_workers.unwrap_or(DEFAULT_MAX_WORKERS)
    }

    pub(crate) fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.max_workers == Some(0) {
            return Err(("max_workers", "must be greater than zero"));
        }
        if self.min_workers > self.ceiling() {
            return Err(("min_workers", "must not exceed max_workers"));
        }
        if self.latency_target_secs == 0 {
            return Err(("latency_target_secs", "must be greater than zero"));
        }
        if !(0.5..1.0).contains(&self.target_quantile) {
            return Err(("target_quantile", "must be at least 0.5 and below 1"));
        }
        if !(self.cost_ewma_weight > 0.0 && self.cost_ewma_weight <= 1.0) {
            return Err(("cost_ewma_weight", "must be above 0 and at most 1"));
        }
        if !(self.initial_cost_secs_per_unit.is_finite() && self.initial_cost_secs_per_unit > 0.0) {
            return Err(("initial_cost_secs_per_unit", "must be a positive number"));
        }
        if self.arrival_window_secs == 0 {
            return Err(("arrival_window_secs", "must be greater than zero"));
        }
        if self.backlog_drain_secs == 0 {
            return Err(("backlog_drain_secs", "must be greater than zero"));
        }
        if self.max_scale_up_step == Some(0) {
            return Err(("max_scale_up_step", "must be greater than zero (or absent for no limit)"));
        }
        Ok(())
    }

    /// `secs`, but at most the latency target (a lane with a short target does not wait longer).
    pub(crate) fn within_target(&self, secs: u64) -> u64 {
        secs.min(self.latency_target_secs)
    }

    /// Workers below which the lane does not go while active.
    pub(crate) fn floor(&self) -> usize {
        if self.scale_to_zero { self.min_workers.max(1) } else { self.min_workers }
    }
}
