//! The elastic scaling policy: how many workers each lane needs, from the work waiting and arriving.
//!
//! [`ScalingPolicy::decide`] is pure and deterministic (no clock, no I/O): the caller passes the
//! time and a [`LaneObservation`], and gets a [`Decision`] with its [`Reason`]. The dispatcher
//! and the simulator (`crate::simulate`) drive the same code.
//!
//! The rule, per lane:
//! - **Work, not messages.** Every document is worth [`work_units`] (pages, plus its size in
//!   MiB). The seconds one unit costs are learned from completed jobs: a moving average of
//!   durations weighted by units, so one 60-page document counts sixty times a one-pager.
//! - **Demand.** Arrivals bring `rate × cost` seconds of work per second: that many workers are
//!   busy in the steady state (`R`). On top come `headroom × √R` spare workers (square-root
//!   staffing: enough that jobs rarely queue) or, when more, the workers that drain the backlog
//!   (visible jobs, and half the work of the jobs in flight) within the *drain budget*: what is
//!   left of the latency target after a new worker's start-up, but never less than the start-up
//!   itself (a worker busy for less than its own start-up costs more than it saves).
//! - **Up at once, down slowly.** A higher demand is applied in the same decision (optionally by
//!   at most `max_scale_up_step`). A lower one only when it held for the whole stabilisation
//!   window: the policy outputs the highest demand of the window, like the Kubernetes HPA.
//! - **Never below the busy workers.** Scale-in removes idle workers only.
//! - **Scale to zero** (optional): after `idle_before_zero_secs` without any job, and back from
//!   zero once `activation_backlog_jobs` wait (or one has waited half the latency target).
//!
//! [`Decision::record`] logs a decision and exports it as metrics, with its reason.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::domain::Lane;
use tracing::{debug, info};

/// Bytes of a document that count as one unit of work (one page).
pub const BYTES_PER_WORK_UNIT: f64 = 1_048_576.0;

/// The work a document represents, in units: its pages (at least one) plus its size in MiB.
/// Extraction cost grows with pages (text, OCR) and with bytes (parsing); a message count sees
/// neither.
pub fn work_units(size_bytes: u64, pages: u32) -> f64 {
    f64::from(pages.max(1)) + size_bytes as f64 / BYTES_PER_WORK_UNIT
}

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
    /// Workers never exceeded, whatever the demand (the budget's ceiling).
    pub max_workers: usize,
    /// Longest acceptable wait of a job between arrival and start.
    pub latency_target_secs: u64,
    /// A lower demand must hold this long before workers are removed.
    pub scale_down_stabilisation_secs: u64,
    /// Scale down only by at least this fraction of the workers (at least one): smaller savings
    /// are not worth an action.
    pub scale_down_min_step: f64,
    /// Remove every worker after `idle_before_zero_secs` without any job.
    pub scale_to_zero: bool,
    /// How long a lane must be idle (no job waiting, running or arriving) before it scales to zero.
    pub idle_before_zero_secs: u64,
    /// Waiting jobs that wake a lane at zero workers. A job that waited half the latency target
    /// wakes it too, so a lone job is never stranded.
    pub activation_backlog_jobs: usize,
    /// Weight of a new completion in the moving average of the cost per unit (0 < w ≤ 1).
    pub cost_ewma_weight: f64,
    /// Seconds per unit of work assumed until the first completions are seen.
    pub initial_cost_secs_per_unit: f64,
    /// Time constant of the arrival-rate average, in seconds.
    pub arrival_window_secs: u64,
    /// Expected time from asking for a worker to its first job.
    pub startup_delay_secs: u64,
    /// Share of jobs that should start within the latency target; sets the spare workers.
    pub target_quantile: f64,
    /// A scale-up adds at least this fraction of the workers (at least one), so a rising load
    /// takes a few large steps rather than many small ones.
    pub scale_up_min_step: f64,
    /// At most this many workers added in one decision; `None`: no limit.
    pub max_scale_up_step: Option<usize>,
}

impl Default for ScalingConfig {
    fn default() -> ScalingConfig {
        ScalingConfig {
            small: LaneScalingConfig::default(),
            large: LaneScalingConfig {
                min_workers: 0,
                latency_target_secs: 180,
                scale_to_zero: true,
                ..LaneScalingConfig::default()
            },
        }
    }
}

impl Default for LaneScalingConfig {
    fn default() -> LaneScalingConfig {
        LaneScalingConfig {
            min_workers: 1,
            max_workers: 100,
            latency_target_secs: 30,
            scale_down_stabilisation_secs: 60,
            scale_down_min_step: 0.2,
            scale_to_zero: false,
            idle_before_zero_secs: 120,
            activation_backlog_jobs: 1,
            cost_ewma_weight: 0.05,
            initial_cost_secs_per_unit: 5.0,
            arrival_window_secs: 60,
            startup_delay_secs: 20,
            target_quantile: 0.95,
            scale_up_min_step: 0.5,
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

    /// A fresh policy for `lane`.
    pub fn policy(&self, lane: Lane) -> ScalingPolicy {
        ScalingPolicy::new(self.lane(lane).clone())
    }
}

impl LaneScalingConfig {
    fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.max_workers == 0 {
            return Err(("max_workers", "must be greater than zero"));
        }
        if self.min_workers > self.max_workers {
            return Err(("min_workers", "must not exceed max_workers"));
        }
        if self.latency_target_secs == 0 {
            return Err(("latency_target_secs", "must be greater than zero"));
        }
        if !(self.cost_ewma_weight > 0.0 && self.cost_ewma_weight <= 1.0) {
            return Err(("cost_ewma_weight", "must be in (0, 1]"));
        }
        if !(self.initial_cost_secs_per_unit.is_finite() && self.initial_cost_secs_per_unit > 0.0) {
            return Err(("initial_cost_secs_per_unit", "must be a positive number"));
        }
        if !(0.0..1.0).contains(&self.scale_down_min_step) {
            return Err(("scale_down_min_step", "must be in [0, 1)"));
        }
        if !(0.5..1.0).contains(&self.target_quantile) {
            return Err(("target_quantile", "must be in [0.5, 1)"));
        }
        if !(self.scale_up_min_step.is_finite() && self.scale_up_min_step >= 0.0) {
            return Err(("scale_up_min_step", "must be zero or positive"));
        }
        if self.arrival_window_secs == 0 {
            return Err(("arrival_window_secs", "must be greater than zero"));
        }
        if self.max_scale_up_step == Some(0) {
            return Err(("max_scale_up_step", "must be greater than zero (or absent for no limit)"));
        }
        Ok(())
    }

    /// Seconds a backlog may take to drain once new workers are up: the latency target minus
    /// the start-up, but at least the start-up itself.
    fn drain_budget_secs(&self) -> f64 {
        let target = self.latency_target_secs as f64;
        let startup = self.startup_delay_secs as f64;
        (target - startup).max(startup).max(1.0)
    }
}

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
    /// Jobs a worker is running.
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
    /// Workers running a job; never scaled below.
    pub busy_workers: usize,
    /// Workers asked for and still starting.
    pub starting_workers: usize,
}

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

    /// Logs the decision (a change at info, a hold at debug) and exports it as metrics:
    /// `surge_scaling_desired_workers{lane}` and
    /// `surge_scaling_decisions_total{lane, reason, changed}`.
    pub fn record(&self, lane: Lane) {
        if self.changed() {
            info!(%lane, from = self.previous, to = self.desired, reason = %self.reason, "scaling");
        } else {
            debug!(%lane, workers = self.desired, reason = %self.reason, "scaling decision");
        }
        metrics::gauge!("surge_scaling_desired_workers", "lane" => lane.as_str()).set(self.desired as f64);
        metrics::counter!(
            "surge_scaling_decisions_total",
            "lane" => lane.as_str(),
            "reason" => self.reason.kind(),
            "changed" => if self.changed() { "true" } else { "false" },
        )
        .increment(1);
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
    /// The demand fell, but not for the whole stabilisation window yet.
    Stabilising { workers: usize, would: usize, window_secs: u64 },
    /// The demand stayed lower for the whole stabilisation window.
    ScaleDown { workers: usize, window_secs: u64 },
    /// A lower level held for the window, but removing so few workers is not worth an action.
    SmallStep { workers: usize, would: usize, min_step: usize },
    /// Scaling down stops at the workers running a job.
    BusyFloor { busy: usize },
    /// The configured minimum.
    Minimum { min: usize },
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
            Reason::Stabilising { .. } => "stabilising",
            Reason::ScaleDown { .. } => "scale_down",
            Reason::SmallStep { .. } => "small_step",
            Reason::BusyFloor { .. } => "busy_floor",
            Reason::Minimum { .. } => "minimum",
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
                plural(workers)
            ),
            Reason::StepLimited { workers, wanted, step } => {
                write!(f, "scaling up by at most {step}: {workers} of the {wanted} workers needed")
            }
            Reason::AtMaximum { max, wanted } => {
                write!(f, "capped at the maximum of {max} workers ({wanted} needed)")
            }
            Reason::Stabilising { workers, would, window_secs } => write!(
                f,
                "holding {workers} {}: scale-down stabilisation {window_secs} s not elapsed ({would} would do)",
                plural(workers)
            ),
            Reason::ScaleDown { workers, window_secs } => write!(
                f,
                "scaling down to {workers} {}: the demand stayed at or below that for {window_secs} s",
                plural(workers)
            ),
            Reason::SmallStep { workers, would, min_step } => write!(
                f,
                "holding {workers} {}: {would} would do, but steps under {min_step} are not worth an action",
                plural(workers)
            ),
            Reason::BusyFloor { busy } => {
                write!(f, "keeping {busy} busy {}: scale-in removes only idle workers", plural(busy))
            }
            Reason::Minimum { min } => write!(f, "keeping the minimum of {min} {}", plural(min)),
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
                plural(workers)
            ),
            Reason::IdleAtZero => f.write_str("idle at zero"),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "worker" } else { "workers" }
}

/// Seconds per unit of work: exponentially weighted averages of durations and of units, so
/// each job weighs by its size.
#[derive(Debug, Clone)]
struct CostModel {
    weight: f64,
    secs: f64,
    units: f64,
    seen: bool,
    initial: f64,
}

impl CostModel {
    fn new(weight: f64, initial: f64) -> CostModel {
        CostModel { weight, secs: 0.0, units: 0.0, seen: false, initial }
    }

    fn observe(&mut self, completion: &Completion) {
        if !(completion.units > 0.0) {
            return;
        }
        let secs = completion.duration.as_secs_f64();
        if self.seen {
            self.secs += self.weight * (secs - self.secs);
            self.units += self.weight * (completion.units - self.units);
        } else {
            (self.secs, self.units, self.seen) = (secs, completion.units, true);
        }
    }

    fn secs_per_unit(&self) -> f64 {
        if self.seen && self.units > 0.0 { self.secs / self.units } else { self.initial }
    }

    /// The average duration of a job (`units_per_job` units before the first completion).
    fn job_secs(&self, units_per_job: f64) -> f64 {
        if self.seen { self.secs } else { self.initial * units_per_job }
    }
}

/// Arrivals in units per second, averaged with a time constant (irregular sampling is fine).
///
/// - The time constant is at least `arrival_window_secs` and long enough to span about
///   [`ARRIVALS_AVERAGED`] arrivals: sparse large documents would otherwise make the estimate
///   jump with every arrival.
/// - A burst is work that already waits in the backlog, where the policy sees it; counted in
///   the rate as well, it would be provisioned twice (and kept for a whole time constant). So
///   an observation counts only as many jobs as a Poisson stream at the current rate could
///   plausibly bring (mean + 4 standard deviations + 2); the rest is the *burst rate*, averaged
///   over [`BURST_WINDOW_SECS`]: work that may keep coming while new workers start.
#[derive(Debug, Clone)]
struct RateEstimate {
    min_window_secs: f64,
    units_per_sec: f64,
    /// Average units of an arriving job.
    units_per_job: Option<f64>,
    burst_units_per_sec: f64,
}

/// Arrivals the rate average spans at least.
const ARRIVALS_AVERAGED: f64 = 20.0;
/// Longest time constant of the rate average, in seconds.
const MAX_RATE_WINDOW_SECS: f64 = 1800.0;
/// Time constant of the burst rate, in seconds.
const BURST_WINDOW_SECS: f64 = 10.0;

impl RateEstimate {
    fn new(min_window_secs: f64) -> RateEstimate {
        RateEstimate { min_window_secs, units_per_sec: 0.0, units_per_job: None, burst_units_per_sec: 0.0 }
    }

    fn observe(&mut self, jobs: u64, units: f64, elapsed_secs: f64) {
        if jobs > 0 {
            let mean = units / jobs as f64;
            let weight = 1.0 - 0.95f64.powf(jobs as f64);
            let average = self.units_per_job.get_or_insert(mean);
            *average += weight * (mean - *average);
        }
        if elapsed_secs <= 0.0 {
            return;
        }
        let units_per_job = self.units_per_job.unwrap_or(1.0).max(1e-9);
        let jobs_per_sec = self.units_per_sec / units_per_job;
        let expected_jobs = jobs_per_sec * elapsed_secs;
        let plausible_jobs = expected_jobs + 4.0 * expected_jobs.sqrt() + 2.0;
        let counted = if jobs as f64 > plausible_jobs { units * plausible_jobs / jobs as f64 } else { units };
        let window = (ARRIVALS_AVERAGED / jobs_per_sec.max(1e-9)).clamp(self.min_window_secs, MAX_RATE_WINDOW_SECS);
        let alpha = 1.0 - (-elapsed_secs / window).exp();
        self.units_per_sec += alpha * (counted / elapsed_secs - self.units_per_sec);
        let alpha = 1.0 - (-elapsed_secs / BURST_WINDOW_SECS).exp();
        self.burst_units_per_sec += alpha * ((units - counted) / elapsed_secs - self.burst_units_per_sec);
    }
}

/// The highest value pushed within the last `window_secs` (a monotonic queue).
#[derive(Debug, Clone)]
struct WindowMax {
    window_secs: f64,
    /// (time, value), values strictly decreasing from the front.
    entries: VecDeque<(f64, usize)>,
}

impl WindowMax {
    fn push(&mut self, now: f64, value: usize) -> usize {
        while self.entries.back().is_some_and(|&(_, v)| v <= value) {
            self.entries.pop_back();
        }
        self.entries.push_back((now, value));
        while self.entries.front().is_some_and(|&(t, _)| t < now - self.window_secs) {
            self.entries.pop_front();
        }
        self.entries.front().map_or(value, |&(_, v)| v)
    }
}

/// The demand of one observation, before stabilisation.
#[derive(Debug, Clone, Copy)]
struct Demand {
    /// Workers without which the latency target is missed (for the arrivals, or for the backlog
    /// on its own). Fewer trigger a scale-up.
    needed: usize,
    /// Workers for the arrivals, with spare capacity: stabilised over the window.
    load: usize,
    /// Workers for the arrivals and draining the backlog within the budget: not stabilised, a
    /// drained backlog is gone.
    drain: usize,
    backlog_work_secs: f64,
    arrival_work_per_sec: f64,
}

/// The scaling policy of one lane: its settings and what it learned (cost per unit, arrival
/// rate, the demand over the stabilisation window).
#[derive(Debug, Clone)]
pub struct ScalingPolicy {
    config: LaneScalingConfig,
    cost: CostModel,
    arrivals: RateEstimate,
    recent: WindowMax,
    /// The previous decision's `desired`.
    current: usize,
    /// Time of the first and of the previous decision.
    started: Option<f64>,
    last: Option<f64>,
    /// When the lane last had a job waiting, running or arriving.
    last_activity: f64,
}

impl ScalingPolicy {
    /// A policy that assumes the lane starts with its minimum of workers.
    pub fn new(config: LaneScalingConfig) -> ScalingPolicy {
        let current = if config.scale_to_zero { 0 } else { config.min_workers };
        ScalingPolicy {
            cost: CostModel::new(config.cost_ewma_weight, config.initial_cost_secs_per_unit),
            arrivals: RateEstimate::new(config.arrival_window_secs as f64),
            recent: WindowMax { window_secs: config.scale_down_stabilisation_secs as f64, entries: VecDeque::new() },
            current,
            started: None,
            last: None,
            last_activity: 0.0,
            config,
        }
    }

    /// The workers the lane starts with, before any decision.
    pub fn initial_workers(&self) -> usize {
        self.current
    }

    /// The settings.
    pub fn config(&self) -> &LaneScalingConfig {
        &self.config
    }

    /// The learned cost of one unit of work, in seconds.
    pub fn secs_per_unit(&self) -> f64 {
        self.cost.secs_per_unit()
    }

    /// Decides the workers the lane should have at `now` (time since any fixed origin, never
    /// going backwards). Call it regularly (every second or so) with what happened since the
    /// previous call.
    pub fn decide(&mut self, now: Duration, observation: &LaneObservation) -> Decision {
        let now = now.as_secs_f64();
        self.learn(now, observation);
        let previous = self.current;
        let (desired, reason) = if self.config.scale_to_zero {
            self.decide_with_zero(now, observation)
        } else {
            self.decide_active(now, observation)
        };
        self.current = desired;
        Decision { desired, previous, reason }
    }

    fn learn(&mut self, now: f64, observation: &LaneObservation) {
        for completion in &observation.completions {
            self.cost.observe(completion);
        }
        let elapsed = self.last.map_or(0.0, |last| (now - last).max(0.0));
        self.arrivals.observe(observation.arrived_jobs, observation.arrived_units, elapsed);
        self.started.get_or_insert(now);
        self.last = Some(now);
        let active = observation.visible_jobs + observation.in_flight_jobs + observation.arrived_jobs > 0;
        if active {
            self.last_activity = now;
        }
    }

    fn decide_with_zero(&mut self, now: f64, observation: &LaneObservation) -> (usize, Reason) {
        let idle_secs = now - self.last_activity;
        if self.current == 0 {
            let waiting = observation.visible_jobs;
            let overdue = observation.oldest_wait.as_secs_f64() * 2.0 >= self.config.latency_target_secs as f64;
            if waiting == 0 {
                return (0, Reason::IdleAtZero);
            }
            if (waiting as usize) < self.config.activation_backlog_jobs && !overdue {
                return (0, Reason::BelowActivation { waiting, threshold: self.config.activation_backlog_jobs });
            }
            let (workers, _) = self.decide_active(now, observation);
            let workers = workers.max(1);
            return (workers, Reason::Activated { workers, waiting });
        }
        if idle_secs >= self.config.idle_before_zero_secs as f64 && observation.busy_workers == 0 {
            self.recent.entries.clear();
            return (0, Reason::ScaledToZero { idle_secs: self.config.idle_before_zero_secs });
        }
        self.decide_active(now, observation)
    }

    /// The decision of a lane that has (or gets) workers: up at once when the workers cannot
    /// meet the target; down when the load stayed lower for the window (a drained backlog
    /// needs no window: it is gone) and the step saves enough to be worth an action.
    fn decide_active(&mut self, now: f64, observation: &LaneObservation) -> (usize, Reason) {
        let floor = if self.config.scale_to_zero { self.config.min_workers.max(1) } else { self.config.min_workers };
        let max = self.config.max_workers;
        let demand = self.demand(observation);
        let load_level = demand.load.clamp(floor, max);
        let level = demand.load.max(demand.drain).clamp(floor, max);
        let load_window_max = self.recent.push(now, load_level);
        let current = self.current;
        let wanted = demand.load.max(demand.drain);
        let level_reason = |workers: usize| {
            if wanted > max {
                Reason::AtMaximum { max, wanted }
            } else if wanted < floor {
                Reason::Minimum { min: floor }
            } else {
                Reason::Demand {
                    workers,
                    backlog_work_secs: demand.backlog_work_secs,
                    arrival_work_per_sec: demand.arrival_work_per_sec,
                    target_secs: self.config.latency_target_secs,
                }
            }
        };
        if (demand.needed > current || current < floor) && level > current {
            let min_step = ((current as f64 * self.config.scale_up_min_step).ceil() as usize).max(1);
            let level = level.max(current + min_step).min(max);
            return match self.config.max_scale_up_step {
                Some(step) if level > current + step => {
                    (current + step, Reason::StepLimited { workers: current + step, wanted: level, step })
                }
                _ => (level, level_reason(level)),
            };
        }
        if level >= current {
            return (current, level_reason(current));
        }
        let window_secs = self.config.scale_down_stabilisation_secs;
        let window_full = self.started.is_some_and(|started| now - started >= window_secs as f64);
        let hold = load_window_max.max(level);
        if hold >= current || !window_full {
            return (current, Reason::Stabilising { workers: current, would: level, window_secs });
        }
        let busy = observation.busy_workers.min(current);
        let lower = hold.max(busy);
        let min_step = ((current as f64 * self.config.scale_down_min_step).ceil() as usize).max(1);
        if current - lower < min_step {
            return (current, Reason::SmallStep { workers: current, would: lower, min_step });
        }
        if busy > hold {
            return (busy, Reason::BusyFloor { busy });
        }
        (lower, Reason::ScaleDown { workers: lower, window_secs })
    }

    /// What the lane needs now, before bounds and stabilisation.
    fn demand(&self, observation: &LaneObservation) -> Demand {
        let config = &self.config;
        let cost = self.cost.secs_per_unit();
        let target = config.latency_target_secs as f64;
        let startup = config.startup_delay_secs as f64;
        let arrival_work_per_sec = self.arrivals.units_per_sec * cost;
        // Jobs in flight are covered by their busy workers: the backlog is the waiting work.
        let backlog_work_secs = observation.visible_units * cost;
        // A burst still arriving keeps arriving while new workers start.
        let burst_work_secs = self.arrivals.burst_units_per_sec * cost * startup;
        let job_secs = self.cost.job_secs(self.arrivals.units_per_job.unwrap_or(1.0));
        let load =
            erlang_c_staffing(arrival_work_per_sec, job_secs, target, 1.0 - config.target_quantile, config.max_workers);
        // What the workers up now cannot absorb before new ones are up (their spare capacity
        // works on it meanwhile) must be drained within the budget.
        let spare_now = (observation.ready_workers as f64 - arrival_work_per_sec).max(0.0);
        let left_after_startup = (backlog_work_secs + burst_work_secs - spare_now * startup).max(0.0);
        Demand {
            // The backlog alone would take longer than the target to start on the workers we have.
            needed: load.max(workers(backlog_work_secs / target)),
            load,
            drain: workers(arrival_work_per_sec + left_after_startup / config.drain_budget_secs()),
            backlog_work_secs,
            arrival_work_per_sec,
        }
    }
}

/// The fewest workers with which at most `miss` of the jobs wait longer than `target_secs`,
/// for a load of `load` busy workers and jobs of `job_secs` (M/M/n, Erlang C):
/// P(wait > t) = C(n, load) × exp(-(n - load) × t / job_secs). At most `max` (then `max + 1`,
/// so the caller sees the demand exceeds it).
fn erlang_c_staffing(load: f64, job_secs: f64, target_secs: f64, miss: f64, max: usize) -> usize {
    if !(load > 0.0) {
        return 0;
    }
    let job_secs = job_secs.max(1e-3);
    // Erlang B by recursion: B(0) = 1, B(n) = load B(n-1) / (n + load B(n-1)).
    let mut blocking = 1.0;
    for n in 1..=max {
        let n_f = n as f64;
        blocking = load * blocking / (n_f + load * blocking);
        if n_f <= load {
            continue;
        }
        let waiting = n_f * blocking / (n_f - load * (1.0 - blocking));
        if waiting * (-(n_f - load) * target_secs / job_secs).exp() <= miss {
            return n;
        }
    }
    max + 1
}

/// Whole workers for a load (rounding noise of 1e-9 does not add a worker).
fn workers(load: f64) -> usize {
    (load - 1e-9).ceil().max(0.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn config() -> LaneScalingConfig {
        LaneScalingConfig {
            min_workers: 1,
            max_workers: 50,
            latency_target_secs: 60,
            scale_down_stabilisation_secs: 120,
            startup_delay_secs: 20,
            initial_cost_secs_per_unit: 1.0,
            ..LaneScalingConfig::default()
        }
    }

    fn waiting(jobs: u64, units_each: f64) -> LaneObservation {
        LaneObservation { visible_jobs: jobs, visible_units: jobs as f64 * units_each, ..LaneObservation::default() }
    }

    /// Runs the policy once a second from `from` to `to` (exclusive) with the same observation.
    fn hold(policy: &mut ScalingPolicy, from: u64, to: u64, observation: &LaneObservation) -> Vec<Decision> {
        (from..to).map(|t| policy.decide(Duration::from_secs(t), observation)).collect()
    }

    #[test]
    fn work_units_count_pages_and_size() {
        assert_eq!(work_units(0, 0), 1.0);
        assert_eq!(work_units(0, 12), 12.0);
        assert_eq!(work_units(2 * 1_048_576, 3), 5.0);
    }

    #[test]
    fn a_burst_scales_up_in_one_decision() {
        let mut policy = ScalingPolicy::new(config());
        hold(&mut policy, 0, 30, &LaneObservation::default());
        // 400 one-unit jobs at 1 s each: 400 s of work, drained within 40 s (60 s target − 20 s
        // start-up) needs 10 workers.
        let decision = policy.decide(secs(30.0), &waiting(400, 1.0));
        assert_eq!(decision.previous, 1);
        assert_eq!(decision.desired, 10, "{}", decision.reason);
        assert_eq!(decision.reason.kind(), "demand");
        assert_eq!(
            decision.reason.to_string(),
            "backlog of 400 s of work and arrivals of 0.0 s of work per second need 10 workers to meet the 60 s target"
        );
    }

    #[test]
    fn a_quiet_period_scales_down_only_after_the_window() {
        let mut policy = ScalingPolicy::new(config());
        hold(&mut policy, 0, 200, &LaneObservation::default());
        assert_eq!(policy.decide(secs(200.0), &waiting(400, 1.0)).desired, 10);
        let quiet = LaneObservation { ready_workers: 10, ..LaneObservation::default() };
        let held = hold(&mut policy, 201, 321, &quiet);
        assert!(held.iter().all(|d| d.desired == 10), "held for the window");
        let last = held.last().unwrap();
        assert_eq!(
            last.reason.to_string(),
            "holding 10 workers: scale-down stabilisation 120 s not elapsed (1 would do)"
        );
        let down = policy.decide(secs(321.0), &quiet);
        assert_eq!(down.desired, 1, "{}", down.reason);
        assert_eq!(down.reason.kind(), "scale_down");
    }

    #[test]
    fn flapping_input_produces_no_flapping_output() {
        let mut policy = ScalingPolicy::new(config());
        let mut outputs = Vec::new();
        for t in 0..600u64 {
            // Quiet, then a backlog alternating every 5 s between 400 units and nothing.
            let burst = t >= 50 && (t / 5) % 2 == 0;
            let observation = if burst { waiting(400, 1.0) } else { LaneObservation::default() };
            outputs.push(policy.decide(Duration::from_secs(t), &observation).desired);
        }
        let changes = outputs.windows(2).filter(|w| w[0] != w[1]).count();
        assert_eq!(changes, 1, "one scale-up, then steady: {outputs:?}");
        assert_eq!(outputs.last(), Some(&10));
    }

    #[test]
    fn scale_to_zero_after_idle_and_back_at_the_activation_threshold() {
        let config = LaneScalingConfig {
            min_workers: 0,
            scale_to_zero: true,
            idle_before_zero_secs: 300,
            activation_backlog_jobs: 5,
            ..config()
        };
        let mut policy = ScalingPolicy::new(config);
        assert_eq!(policy.initial_workers(), 0);
        let idle = policy.decide(secs(0.0), &LaneObservation::default());
        assert_eq!((idle.desired, idle.reason.kind()), (0, "idle_at_zero"));

        let few = policy.decide(secs(1.0), &waiting(4, 1.0));
        assert_eq!(few.desired, 0);
        assert_eq!(few.reason.to_string(), "staying at zero: 4 waiting jobs are below the activation threshold of 5");

        let woken = policy.decide(secs(2.0), &waiting(5, 1.0));
        assert_eq!(woken.desired, 1, "{}", woken.reason);
        assert_eq!(woken.reason.kind(), "activated");

        // Busy until t = 100, then idle: zero 300 s after the last job.
        let busy = LaneObservation { in_flight_jobs: 1, in_flight_units: 1.0, busy_workers: 1, ..Default::default() };
        hold(&mut policy, 3, 100, &busy);
        let quiet = LaneObservation { ready_workers: 1, ..LaneObservation::default() };
        let before = hold(&mut policy, 100, 399, &quiet);
        assert!(before.iter().all(|d| d.desired == 1));
        let zero = policy.decide(secs(399.0), &quiet);
        assert_eq!(zero.desired, 0);
        assert_eq!(zero.reason.to_string(), "scaled to zero after 300 s idle");
    }

    #[test]
    fn a_lone_job_wakes_the_lane_once_it_waited_half_the_target() {
        let config = LaneScalingConfig { scale_to_zero: true, activation_backlog_jobs: 5, ..config() };
        let mut policy = ScalingPolicy::new(config);
        let mut lone = waiting(1, 1.0);
        lone.oldest_wait = secs(29.0);
        assert_eq!(policy.decide(secs(0.0), &lone).desired, 0);
        lone.oldest_wait = secs(30.0);
        assert_eq!(policy.decide(secs(1.0), &lone).desired, 1);
    }

    #[test]
    fn large_documents_need_more_workers_than_as_many_small_ones() {
        let completions =
            |units: f64| (0..20).map(|_| Completion { duration: secs(units * 1.5), units }).collect::<Vec<_>>();
        let mut small = ScalingPolicy::new(config());
        let mut large = ScalingPolicy::new(config());
        let learn_small = LaneObservation { completions: completions(1.0), ..LaneObservation::default() };
        let learn_large = LaneObservation { completions: completions(40.0), ..LaneObservation::default() };
        small.decide(secs(0.0), &learn_small);
        large.decide(secs(0.0), &learn_large);
        assert!((small.secs_per_unit() - 1.5).abs() < 1e-9, "cost is learned per unit");
        assert!((large.secs_per_unit() - 1.5).abs() < 1e-9);
        let few_small = small.decide(secs(1.0), &waiting(30, 1.0)).desired;
        let few_large = large.decide(secs(1.0), &waiting(30, 40.0)).desired;
        assert_eq!(few_small, 2, "45 s of work");
        assert_eq!(few_large, 45, "1800 s of work");
    }

    #[test]
    fn busy_workers_are_never_scaled_below() {
        let mut policy = ScalingPolicy::new(config());
        assert_eq!(policy.decide(secs(0.0), &waiting(400, 1.0)).desired, 10);
        // Nothing waits, 7 of the 10 are still busy with long jobs.
        let busy = LaneObservation {
            in_flight_jobs: 7,
            in_flight_units: 7.0,
            ready_workers: 10,
            busy_workers: 7,
            ..LaneObservation::default()
        };
        let decisions = hold(&mut policy, 1, 400, &busy);
        assert!(decisions.iter().all(|d| d.desired >= 7));
        let last = decisions.last().unwrap();
        assert_eq!(last.desired, 7);
        assert_eq!(last.reason.to_string(), "keeping 7 busy workers: scale-in removes only idle workers");
    }

    #[test]
    fn arrivals_alone_keep_the_steady_state_workers_plus_headroom() {
        let mut policy = ScalingPolicy::new(config());
        let mut last = None;
        for t in 0..600u64 {
            // 16 one-unit jobs a second at 1 s each: 16 busy workers, plus √16 = 4 spare.
            let observation = LaneObservation { arrived_jobs: 16, arrived_units: 16.0, ..Default::default() };
            last = Some(policy.decide(Duration::from_secs(t), &observation));
        }
        assert_eq!(last.unwrap().desired, 20);
    }

    #[test]
    fn bounds_and_step_limit_are_reasons() {
        let mut policy = ScalingPolicy::new(LaneScalingConfig { max_workers: 8, ..config() });
        let capped = policy.decide(secs(0.0), &waiting(4000, 1.0));
        assert_eq!(capped.desired, 8);
        assert_eq!(capped.reason.to_string(), "capped at the maximum of 8 workers (100 needed)");

        let mut policy = ScalingPolicy::new(LaneScalingConfig { max_scale_up_step: Some(4), ..config() });
        let limited = policy.decide(secs(0.0), &waiting(400, 1.0));
        assert_eq!(limited.desired, 5);
        assert_eq!(limited.reason.kind(), "step_limited");
        assert_eq!(policy.decide(secs(1.0), &waiting(400, 1.0)).desired, 9);
        assert_eq!(policy.decide(secs(2.0), &waiting(400, 1.0)).desired, 10);
    }

    #[test]
    fn config_defaults_validate_and_errors_name_the_key() {
        ScalingConfig::default().validate().unwrap();
        let mut config = ScalingConfig::default();
        config.large.min_workers = 500;
        let err = config.validate().unwrap_err();
        assert_eq!(err.key, "large.min_workers");
        assert!(err.to_string().contains("large.min_workers"), "{err}");

        let parsed: ScalingConfig = serde_json::from_str(r#"{"small": {"max_workers": 7}}"#).unwrap();
        assert_eq!(parsed.small.max_workers, 7);
        assert_eq!(parsed.small.latency_target_secs, LaneScalingConfig::default().latency_target_secs);
        let unknown = serde_json::from_str::<ScalingConfig>(r#"{"small": {"max_wrkers": 7}}"#);
        assert!(unknown.is_err(), "unknown keys are refused");
    }
}
