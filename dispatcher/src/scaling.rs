//! The elastic scaling policy: how many workers each lane needs, from the work waiting and arriving.
//!
//! [`ScalingPolicy::decide`] is pure and deterministic (no clock, no I/O): the caller passes the
//! time and a [`LaneObservation`], and gets a [`Decision`] with its [`Reason`]. The dispatcher
//! and the simulator (`crate::simulate`) drive the same code.
//!
//! The rule, per lane:
//! - **Work, not messages.** Every document is worth [`work_units`] (pages, plus its size in
//!   MiB). The seconds one unit costs are learned from completed jobs: moving averages of
//!   durations and of units, so a 60-page document weighs sixty times a one-pager.
//! - **Load.** Arrivals bring `rate × cost` seconds of work per second: that many workers are
//!   busy in the steady state. The policy staffs that load with Erlang C (M/M/n): the fewest
//!   workers with which at most `1 - target_quantile` of the jobs wait longer than the latency
//!   target. The rate is averaged over at least the last [`ARRIVALS_AVERAGED`] arrivals.
//! - **A burst is backlog, not rate.** Arrivals beyond what a Poisson stream plausibly brings
//!   (at the lowest rate of the last minute, so a batch that builds up does not raise its own
//!   bar) start a burst; while it lasts (and [`BURST_HANGOVER_SECS`] after), the rate counts
//!   arrivals only at its pre-burst level. A burst already waits in the backlog, where the drain
//!   sees it; counted as rate too, it would be provisioned twice, and after it the level would
//!   come down in a staircase as the average decays, one scaling action per step.
//! - **Backlog.** Waiting work that the workers up now cannot absorb before new ones are up is
//!   drained within `backlog_drain_secs`, well inside the latency target, so one step covers a
//!   burst that is still arriving instead of chasing it.
//! - **Up at once**, when the workers cannot meet the target: the backlog alone would wait
//!   longer than the target, or the low end of the rate estimate needs more workers and a job
//!   has waited `scale_up_min_wait_secs` (noise in the rate estimate then starts no workers
//!   while nothing waits). At most `max_scale_up_step` at a time, if set.
//! - **Down slowly, in one step.** The policy keeps the highest level the arrivals needed in the
//!   stabilisation window (the high end of the rate estimate), like the Kubernetes HPA, and
//!   scales down to it only once the surplus since the last change (idle workers above that
//!   level, times the time) makes the action worth it (`scale_down_min_saving_worker_secs`):
//!   many idle workers go soon, a single one waits, busy ones cost nothing. It never scales down
//!   while workers are starting, nor while a lane that may scale to zero is idle (it goes to
//!   zero soon; a step down first would be one more action).
//! - **Scale-in never stops a busy worker.** A lower target is a promise the pool keeps by
//!   draining: a worker above the target keeps taking jobs while any wait and leaves when it runs
//!   out of work. So a backlog needs no hold of its own (the workers draining it stay until it
//!   is gone), a scale-down after a burst goes straight back to what the arrivals need, and a
//!   scale-up counts the workers still up ([`LaneObservation::ready_workers`]), not the target.
//! - **Scale to zero** (optional): after `idle_before_zero_secs` without any job; back from zero
//!   once `activation_backlog_jobs` wait, or one has waited `activation_wait_secs`, with at
//!   most one worker per waiting job.
//! - **A restart keeps the workers** ([`ScalingPolicy::adopt`]): a dispatcher that restarts
//!   under load takes over the workers it finds and keeps them for `arrival_window_secs`, then
//!   starts its arrival rate from the work they got through (busy workers over the cost of a
//!   unit). Learned from arrivals alone the rate would start at zero and take many minutes to
//!   catch up, and the restarted policy would scale the lane down to its minimum meanwhile.
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

/// Arrivals the rate average spans at least (sparse large documents would otherwise make the
/// estimate jump with every arrival).
pub const ARRIVALS_AVERAGED: f64 = 20.0;

/// Longest time constant of the rate average, in seconds.
const MAX_RATE_WINDOW_SECS: f64 = 1800.0;
/// Arrivals beyond what a Poisson stream plausibly brings within this many seconds are a burst.
const BURST_HORIZON_SECS: f64 = 30.0;
/// Time constant of the burst rate, in seconds.
const BURST_WINDOW_SECS: f64 = 10.0;
/// What is plausible is judged from the lowest rate of this many seconds: the first arrivals of
/// a batch raise the average before they are recognised as a burst, and must not raise the
/// level the rest of the batch is judged against.
pub const BURST_BASELINE_SECS: f64 = 60.0;
/// A burst counts as going on for this long after the last arrivals beyond the plausible (the
/// arrivals of a batch upload come in clumps).
pub const BURST_HANGOVER_SECS: f64 = 30.0;
/// A burst that goes on for longer than this is a new level of arrivals: the rate follows it.
pub const BURST_MAX_SECS: f64 = 300.0;

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
            max_workers: 100,
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
    fn within_target(&self, secs: u64) -> u64 {
        secs.min(self.latency_target_secs)
    }

    /// Workers below which the lane does not go while active.
    fn floor(&self) -> usize {
        if self.scale_to_zero { self.min_workers.max(1) } else { self.min_workers }
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

    /// Logs the decision (a change at info, a hold at debug) and exports it as metrics:
    /// `surge_scaling_desired_workers{lane}` and
    /// `surge_scaling_decisions_total{lane, direction, reason}`.
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
            "direction" => self.direction(),
            "reason" => self.reason.kind(),
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

/// The cost of work: exponentially weighted averages of job durations and of job units, so
/// each job weighs by its size in the seconds per unit.
#[derive(Debug, Clone)]
struct CostModel {
    weight: f64,
    secs: f64,
    units: f64,
    seen: bool,
    initial_secs_per_unit: f64,
}

impl CostModel {
    fn new(weight: f64, initial_secs_per_unit: f64) -> CostModel {
        CostModel { weight, secs: 0.0, units: 0.0, seen: false, initial_secs_per_unit }
    }

    fn observe(&mut self, completion: &Completion) {
        if completion.units.is_nan() || completion.units <= 0.0 {
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
        if self.seen && self.units > 0.0 { self.secs / self.units } else { self.initial_secs_per_unit }
    }

    /// The average duration of a job (of `units_per_job` units before the first completion).
    fn job_secs(&self, units_per_job: f64) -> f64 {
        if self.seen { self.secs } else { self.initial_secs_per_unit * units_per_job }
    }
}

/// Arrivals in units per second, averaged with a time constant (irregular sampling is fine).
///
/// - The time constant is at least `arrival_window_secs` and spans about
///   [`ARRIVALS_AVERAGED`] arrivals.
/// - A burst is work that already waits in the backlog, where the policy sees it; counted in
///   the rate as well, it would be provisioned twice (and kept for a whole time constant). So
///   a burst starts when more jobs come than a Poisson stream at the lowest rate of the last
///   [`BURST_BASELINE_SECS`] plausibly brings (mean + 4 standard deviations + 2) within the
///   observation or within [`BURST_HORIZON_SECS`] (a token bucket). While it lasts, and
///   [`BURST_HANGOVER_SECS`] after, the rate counts jobs only at the rate it had when the burst
///   started, up to [`BURST_MAX_SECS`]: a burst that goes on longer is a new level, and the rate
///   counts all of it. The rest is the *burst rate*, averaged over [`BURST_WINDOW_SECS`]: work
///   that may keep coming while new workers start.
#[derive(Debug, Clone)]
struct RateEstimate {
    min_window_secs: f64,
    units_per_sec: f64,
    /// Average units of an arriving job, and of their squares (for the estimate's error).
    units_per_job: Option<f64>,
    squared_units_per_job: f64,
    /// The time constant last used.
    window_secs: f64,
    /// Jobs a Poisson stream at the current rate may still bring (the token bucket).
    allowance_jobs: f64,
    burst_units_per_sec: f64,
    /// How long the current burst has lasted: since the first of consecutive observations with
    /// burst arrivals (`None`: no burst).
    burst_secs: Option<f64>,
    /// Jobs per second when the current burst started: the most the rate counts while it lasts.
    pre_burst_jobs_per_sec: f64,
    /// Seconds since the last observation with more jobs than plausible.
    since_excess_secs: f64,
    /// How long the rate has held its pre-burst level (`None`: not holding).
    held_secs: Option<f64>,
    /// Jobs the rate has counted so far.
    counted_jobs: f64,
    /// Seconds observed so far (the clock of `lows`).
    clock_secs: f64,
    /// The lowest `units_per_sec` of the last [`BURST_BASELINE_SECS`].
    lows: Window<f64>,
}

impl RateEstimate {
    fn new(min_window_secs: f64) -> RateEstimate {
        RateEstimate {
            min_window_secs,
            units_per_sec: 0.0,
            units_per_job: None,
            squared_units_per_job: 0.0,
            window_secs: min_window_secs,
            allowance_jobs: 0.0,
            burst_units_per_sec: 0.0,
            burst_secs: None,
            pre_burst_jobs_per_sec: 0.0,
            since_excess_secs: f64::INFINITY,
            held_secs: None,
            counted_jobs: 0.0,
            clock_secs: 0.0,
            lows: Window::lowest(BURST_BASELINE_SECS),
        }
    }

    fn observe(&mut self, jobs: u64, units: f64, elapsed_secs: f64) {
        if jobs > 0 {
            self.observe_sizes(jobs, units);
        }
        if elapsed_secs <= 0.0 {
            return;
        }
        self.clock_secs += elapsed_secs;
        let baseline_units_per_sec = self.lows.push(self.clock_secs, self.units_per_sec);
        // Through a burst the rate holds the level it had when the burst started, for at most
        // BURST_MAX_SECS (a burst that lasts longer is a new level, and the rate follows it).
        if !self.holding() {
            self.pre_burst_jobs_per_sec = baseline_units_per_sec / self.units_per_job();
        }
        let jobs_per_sec = self.pre_burst_jobs_per_sec;
        let plausible = |secs: f64| {
            let mean = jobs_per_sec * secs;
            mean + 4.0 * mean.sqrt() + 2.0
        };
        let horizon_jobs = plausible(BURST_HORIZON_SECS);
        self.allowance_jobs =
            (self.allowance_jobs + horizon_jobs * elapsed_secs / BURST_HORIZON_SECS).min(horizon_jobs);
        let plausible_jobs = (jobs as f64).min(self.allowance_jobs).min(plausible(elapsed_secs));
        self.allowance_jobs -= plausible_jobs;
        self.since_excess_secs =
            if (jobs as f64) > plausible_jobs { 0.0 } else { self.since_excess_secs + elapsed_secs };
        // A cold estimate (fewer than ARRIVALS_AVERAGED jobs counted) has no level to hold.
        let warm = self.counted_jobs >= ARRIVALS_AVERAGED;
        self.held_secs = match self.held_secs {
            _ if !warm || self.since_excess_secs > BURST_HANGOVER_SECS => None,
            None => Some(0.0),
            Some(held) => Some(held + elapsed_secs),
        };
        // A burst that outlasted BURST_MAX_SECS is a new level: the rate counts all of it.
        let counted_jobs = match self.held_secs {
            Some(held) if held > BURST_MAX_SECS => jobs as f64,
            Some(_) => plausible_jobs.min(jobs_per_sec * elapsed_secs),
            None => plausible_jobs,
        };
        self.counted_jobs += counted_jobs;
        let counted_units = if jobs > 0 { units * counted_jobs / jobs as f64 } else { 0.0 };

        self.window_secs =
            (ARRIVALS_AVERAGED / jobs_per_sec.max(1e-9)).clamp(self.min_window_secs, MAX_RATE_WINDOW_SECS);
        let alpha = 1.0 - (-elapsed_secs / self.window_secs).exp();
        self.units_per_sec += alpha * (counted_units / elapsed_secs - self.units_per_sec);
        let burst_units = units - counted_units;
        let alpha = 1.0 - (-elapsed_secs / BURST_WINDOW_SECS).exp();
        self.burst_units_per_sec += alpha * (burst_units / elapsed_secs - self.burst_units_per_sec);
        self.burst_secs = match self.burst_secs {
            _ if burst_units <= 0.0 => None,
            None => Some(0.0),
            Some(lasted) => Some(lasted + elapsed_secs),
        };
    }

    /// Whether the rate holds its pre-burst level.
    fn holding(&self) -> bool {
        self.held_secs.is_some_and(|held| held <= BURST_MAX_SECS)
    }

    /// Burst work units still expected within `horizon_secs`: a burst that has lasted `d`
    /// seconds is assumed to go on for about `d` more (a one-off upload, none).
    fn burst_units_within(&self, horizon_secs: f64) -> f64 {
        self.burst_units_per_sec * self.burst_secs.unwrap_or(0.0).min(horizon_secs)
    }

    fn observe_sizes(&mut self, jobs: u64, units: f64) {
        let mean = units / jobs as f64;
        let weight = 1.0 - 0.95f64.powf(jobs as f64);
        let average = self.units_per_job.get_or_insert(mean);
        *average += weight * (mean - *average);
        if self.squared_units_per_job == 0.0 {
            self.squared_units_per_job = mean * mean;
        }
        self.squared_units_per_job += weight * (mean * mean - self.squared_units_per_job);
    }

    fn jobs_per_sec(&self) -> f64 {
        self.units_per_sec / self.units_per_job()
    }

    fn units_per_job(&self) -> f64 {
        self.units_per_job.unwrap_or(1.0).max(1e-9)
    }

    /// Starts the estimate from `units_per_sec` learned elsewhere, if that is higher: a warm
    /// estimate at that level, with no burst going on.
    fn seed(&mut self, units_per_sec: f64) {
        if units_per_sec.is_nan() || units_per_sec <= self.units_per_sec {
            return;
        }
        self.units_per_sec = units_per_sec;
        self.counted_jobs = self.counted_jobs.max(ARRIVALS_AVERAGED);
        self.lows.clear();
        self.held_secs = None;
        self.since_excess_secs = f64::INFINITY;
        self.pre_burst_jobs_per_sec = self.jobs_per_sec();
    }

    /// The standard error of `units_per_sec`: Poisson arrivals of random sizes averaged over the
    /// time constant (variance = rate × E[units²] / 2τ).
    fn standard_error(&self) -> f64 {
        (self.jobs_per_sec() * self.squared_units_per_job / (2.0 * self.window_secs)).sqrt()
    }
}

/// A quantity averaged over time with a time constant; until the first time constant is over,
/// the plain average so far (a bias-corrected average).
#[derive(Debug, Clone)]
struct TimeAverage {
    window_secs: f64,
    value: f64,
    /// The weight the average has gathered (1 once it spans many time constants).
    weight: f64,
}

impl TimeAverage {
    fn new(window_secs: f64) -> TimeAverage {
        TimeAverage { window_secs, value: 0.0, weight: 0.0 }
    }

    /// `value` held for the last `elapsed_secs`.
    fn observe(&mut self, value: f64, elapsed_secs: f64) {
        if elapsed_secs <= 0.0 {
            return;
        }
        let alpha = 1.0 - (-elapsed_secs / self.window_secs).exp();
        self.value += alpha * (value - self.value);
        self.weight += alpha * (1.0 - self.weight);
    }

    fn value(&self) -> f64 {
        if self.weight > 0.0 { self.value / self.weight } else { 0.0 }
    }
}

/// The highest (or lowest) value pushed within the last `window_secs`: a monotonic queue.
#[derive(Debug, Clone)]
struct Window<T> {
    window_secs: f64,
    /// Whether it keeps the lowest value rather than the highest.
    lowest: bool,
    /// (time, value), the kept value at the front, each entry beating the ones behind it.
    entries: VecDeque<(f64, T)>,
}

impl<T: PartialOrd + Copy> Window<T> {
    fn highest(window_secs: f64) -> Window<T> {
        Window { window_secs, lowest: false, entries: VecDeque::new() }
    }

    fn lowest(window_secs: f64) -> Window<T> {
        Window { window_secs, lowest: true, entries: VecDeque::new() }
    }

    /// Adds `value` at `now` and answers the kept value of the window.
    fn push(&mut self, now: f64, value: T) -> T {
        let lowest = self.lowest;
        while self.entries.back().is_some_and(|&(_, v)| if lowest { v >= value } else { v <= value }) {
            self.entries.pop_back();
        }
        self.entries.push_back((now, value));
        while self.entries.front().is_some_and(|&(t, _)| t < now - self.window_secs) {
            self.entries.pop_front();
        }
        self.entries.front().map_or(value, |&(_, v)| v)
    }

    fn clear(&mut self) {
        self.entries.clear();
    }
}

/// What one observation asks for, before bounds and stabilisation.
#[derive(Debug, Clone, Copy)]
struct Demand {
    /// Fewer workers miss the target: the backlog alone would wait longer than the target, or
    /// the low end of the rate estimate needs more (once a job has waited
    /// `scale_up_min_wait_secs`). Triggers a scale-up.
    needed: usize,
    /// Workers for the arrivals, with spare: what a scale-up goes to.
    load: usize,
    /// The same for the high end of the rate estimate: kept over the window.
    load_high: usize,
    /// Workers for the arrivals and the backlog's drain within the budget.
    drain: usize,
    backlog_work_secs: f64,
    arrival_work_per_sec: f64,
}

/// The scaling policy of one lane: its settings and what it learned (cost per unit, arrival
/// rate, the levels of the stabilisation window).
#[derive(Debug, Clone)]
pub struct ScalingPolicy {
    config: LaneScalingConfig,
    cost: CostModel,
    arrivals: RateEstimate,
    recent: Window<usize>,
    /// The previous decision's `desired`.
    current: usize,
    /// Time of the first and of the previous decision.
    started: Option<f64>,
    last: Option<f64>,
    /// When the lane last had a job waiting, running or arriving.
    last_activity: f64,
    /// Seconds since the previous decision.
    elapsed_secs: f64,
    /// Worker-seconds a scale-down would have saved since the last change of workers.
    surplus_worker_secs: f64,
    /// Busy workers, averaged over `arrival_window_secs`: the work the lane gets through.
    busy: TimeAverage,
    /// Adopted workers are kept while this is set (see [`ScalingPolicy::adopt`]).
    warming_up: bool,
}

impl ScalingPolicy {
    /// The waiting work in `observation`, in estimated worker-seconds at the learned cost.
    pub fn backlog_secs(&self, observation: &LaneObservation) -> f64 {
        observation.visible_units * self.cost.secs_per_unit()
    }

    /// A policy that assumes the lane starts with its minimum of workers (zero if it may
    /// scale to zero).
    pub fn new(config: LaneScalingConfig) -> ScalingPolicy {
        let current = if config.scale_to_zero { 0 } else { config.min_workers };
        ScalingPolicy {
            cost: CostModel::new(config.cost_ewma_weight, config.initial_cost_secs_per_unit),
            arrivals: RateEstimate::new(config.arrival_window_secs as f64),
            recent: Window::highest(config.scale_down_stabilisation_secs as f64),
            current,
            started: None,
            last: None,
            last_activity: 0.0,
            elapsed_secs: 0.0,
            surplus_worker_secs: 0.0,
            busy: TimeAverage::new(config.arrival_window_secs as f64),
            warming_up: false,
            config,
        }
    }

    /// Takes over a lane that already has `workers` (the scale target's count when the
    /// dispatcher starts), before the first decision. More than the policy would start with are
    /// kept for `arrival_window_secs` (scale-ups still happen); then the arrival rate starts
    /// from the work they got through per second, if that is more than the arrivals have shown.
    /// Answers whether it took them over (after the first decision it never does).
    pub fn adopt(&mut self, workers: usize) -> bool {
        let workers = workers.min(self.config.max_workers);
        if self.started.is_some() || workers <= self.current {
            return false;
        }
        self.current = workers.max(self.config.floor());
        self.warming_up = true;
        true
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
        if desired != previous {
            self.surplus_worker_secs = 0.0;
        }
        self.current = desired;
        Decision { desired, previous, reason }
    }

    fn learn(&mut self, now: f64, observation: &LaneObservation) {
        for completion in &observation.completions {
            self.cost.observe(completion);
        }
        self.elapsed_secs = self.last.map_or(0.0, |last| (now - last).max(0.0));
        self.arrivals.observe(observation.arrived_jobs, observation.arrived_units, self.elapsed_secs);
        self.busy.observe(observation.busy_workers as f64, self.elapsed_secs);
        let started = *self.started.get_or_insert(now);
        if self.warming_up && now - started >= self.config.arrival_window_secs as f64 {
            // Busy workers get through one unit per `secs_per_unit` each: in a steady state,
            // as much work as arrives.
            self.warming_up = false;
            self.arrivals.seed(self.busy.value() / self.cost.secs_per_unit());
        }
        self.last = Some(now);
        if observation.visible_jobs + observation.in_flight_jobs + observation.arrived_jobs > 0 {
            self.last_activity = now;
        }
    }

    fn decide_with_zero(&mut self, now: f64, observation: &LaneObservation) -> (usize, Reason) {
        if self.current == 0 {
            let waiting = observation.visible_jobs;
            let overdue =
                observation.oldest_wait.as_secs() >= self.config.within_target(self.config.activation_wait_secs);
            if waiting == 0 {
                return (0, Reason::IdleAtZero);
            }
            let threshold = self.config.activation_backlog_jobs;
            if waiting < threshold as u64 && !overdue {
                return (0, Reason::BelowActivation { waiting, threshold });
            }
            // Not more workers than jobs waiting: the rate was learned before the lane went to
            // zero, and a burst still arriving scales up on the next decision.
            let (workers, _) = self.decide_active(now, observation);
            let workers = workers.max(1).min(usize::try_from(waiting).unwrap_or(usize::MAX));
            return (workers, Reason::Activated { workers, waiting });
        }
        let idle_secs = now - self.last_activity;
        if idle_secs >= self.config.idle_before_zero_secs as f64 && observation.busy_workers == 0 {
            self.recent.clear();
            return (0, Reason::ScaledToZero { idle_secs: self.config.idle_before_zero_secs });
        }
        self.decide_active(now, observation)
    }

    /// The decision of a lane that has (or gets) workers.
    fn decide_active(&mut self, now: f64, observation: &LaneObservation) -> (usize, Reason) {
        let demand = self.demand(observation);
        let (floor, max, current) = (self.config.floor(), self.config.max_workers, self.current);
        let level = demand.load.max(demand.drain).clamp(floor, max);
        // The highest need of the window: the arrivals' (high end), or a backlog's drain (a
        // backlog that keeps coming back is demand too).
        let hold = self.recent.push(now, demand.load_high.max(demand.drain).clamp(floor, max));
        let idle = observation.ready_workers.saturating_sub(observation.busy_workers);
        self.surplus_worker_secs += idle.min(current.saturating_sub(hold)) as f64 * self.elapsed_secs;
        // Workers above the target still take jobs while any wait: count the workers up.
        let live = observation.ready_workers + observation.starting_workers;
        if (demand.needed > live.max(current) || current < floor) && level > current {
            return self.scale_up(current, level, &demand);
        }
        if hold >= current {
            let reason = if level >= current {
                self.level_reason(current, &demand)
            } else {
                let window_secs = self.config.scale_down_stabilisation_secs;
                Reason::Stabilising { workers: current, would: level, window_secs }
            };
            return (current, reason);
        }
        if self.warming_up {
            let window_secs = self.config.arrival_window_secs;
            return (current, Reason::WarmingUp { workers: current, window_secs });
        }
        if observation.starting_workers > 0 {
            return (current, Reason::StartingUp { workers: current, starting: observation.starting_workers });
        }
        // A lane with nothing to do goes to zero soon: a step down first would be one more action.
        // A trickle of jobs can keep it from zero, so the hold lasts about one idle period.
        let patience = (self.config.idle_before_zero_secs + self.config.scale_down_min_saving_worker_secs) as f64;
        let idle_lane = observation.busy_workers == 0 && observation.visible_jobs == 0;
        if self.config.scale_to_zero && idle_lane && self.surplus_worker_secs < patience * (current - hold) as f64 {
            let idle_before_zero_secs = self.config.idle_before_zero_secs;
            return (current, Reason::GoingToZero { workers: current, idle_before_zero_secs });
        }
        self.scale_down(now, current, hold)
    }

    fn scale_up(&self, current: usize, level: usize, demand: &Demand) -> (usize, Reason) {
        match self.config.max_scale_up_step {
            Some(step) if level > current + step => {
                (current + step, Reason::StepLimited { workers: current + step, wanted: level, step })
            }
            _ => (level, self.level_reason(level, demand)),
        }
    }

    /// Down to the window's level once the window is full and the idle surplus makes it worth
    /// an action.
    fn scale_down(&self, now: f64, current: usize, hold: usize) -> (usize, Reason) {
        let window_secs = self.config.scale_down_stabilisation_secs;
        let window_full = self.started.is_some_and(|started| now - started >= window_secs as f64);
        if !window_full {
            return (current, Reason::Stabilising { workers: current, would: hold, window_secs });
        }
        let threshold = self.config.scale_down_min_saving_worker_secs;
        if self.surplus_worker_secs < threshold as f64 {
            let surplus_worker_secs = self.surplus_worker_secs as u64;
            return (current, Reason::SavingTooSmall { workers: current, would: hold, surplus_worker_secs, threshold });
        }
        (hold, Reason::ScaleDown { workers: hold, window_secs })
    }

    fn level_reason(&self, workers: usize, demand: &Demand) -> Reason {
        let wanted = demand.load.max(demand.drain);
        let (floor, max) = (self.config.floor(), self.config.max_workers);
        if wanted > max {
            Reason::AtMaximum { max, wanted }
        } else if wanted < floor && workers == floor {
            Reason::Minimum { min: floor }
        } else {
            Reason::Demand {
                workers,
                backlog_work_secs: demand.backlog_work_secs,
                arrival_work_per_sec: demand.arrival_work_per_sec,
                target_secs: self.config.latency_target_secs,
            }
        }
    }

    /// What the lane needs now, before bounds and stabilisation.
    fn demand(&self, observation: &LaneObservation) -> Demand {
        let config = &self.config;
        let cost = self.cost.secs_per_unit();
        let target = config.latency_target_secs as f64;
        let startup = config.startup_delay_secs as f64;
        let job_secs = self.cost.job_secs(self.arrivals.units_per_job.unwrap_or(1.0));
        let staffing = |units_per_sec: f64| {
            let load = units_per_sec.max(0.0) * cost;
            erlang_c_staffing(load, job_secs, target, 1.0 - config.target_quantile, config.max_workers)
        };
        let rate = self.arrivals.units_per_sec;
        let error = self.arrivals.standard_error();
        let arrival_work_per_sec = rate * cost;
        // Jobs in flight are covered by their busy workers: the backlog is the waiting work.
        let backlog_work_secs = observation.visible_units * cost;
        // A burst still arriving keeps arriving while new workers start; what the workers up
        // now cannot absorb meanwhile (with their spare capacity) is drained within the budget.
        let burst_work_secs = self.arrivals.burst_units_within(startup) * cost;
        let spare_now = (observation.ready_workers as f64 - arrival_work_per_sec).max(0.0);
        let left_after_startup = (backlog_work_secs + burst_work_secs - spare_now * startup).max(0.0);
        // Noise in the rate estimate must not start workers while nothing waits.
        let rate_shows = observation.oldest_wait.as_secs() >= config.within_target(config.scale_up_min_wait_secs);
        let needed_by_rate = if rate_shows { staffing(rate - error) } else { 0 };
        Demand {
            needed: needed_by_rate.max(workers(backlog_work_secs / target)),
            load: staffing(rate),
            load_high: staffing(rate + error),
            drain: workers(
                arrival_work_per_sec + left_after_startup / config.within_target(config.backlog_drain_secs) as f64,
            ),
            backlog_work_secs,
            arrival_work_per_sec,
        }
    }
}

/// The fewest workers with which at most `miss` of the jobs wait longer than `target_secs`,
/// for a load of `load` busy workers and jobs of `job_secs` on average (M/M/n, Erlang C):
/// P(wait > t) = C(n, load) × exp(-(n - load) × t / job_secs). Above `max` it answers
/// `max + 1`, so the caller sees the demand exceeds the maximum.
fn erlang_c_staffing(load: f64, job_secs: f64, target_secs: f64, miss: f64, max: usize) -> usize {
    if load.is_nan() || load <= 0.0 {
        return 0;
    }
    let job_secs = job_secs.max(1e-3);
    // Erlang B by recursion: B(0) = 1, B(n) = load B(n-1) / (n + load B(n-1)); C from B.
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

    /// A lane with a 60 s target and a 20 s start-up: backlogs drain within 60 s, a higher rate
    /// scales up at once.
    fn config() -> LaneScalingConfig {
        LaneScalingConfig {
            min_workers: 1,
            max_workers: 50,
            latency_target_secs: 60,
            scale_down_stabilisation_secs: 120,
            scale_down_min_saving_worker_secs: 100,
            activation_wait_secs: 30,
            startup_delay_secs: 20,
            backlog_drain_secs: 60,
            scale_up_min_wait_secs: 0,
            initial_cost_secs_per_unit: 1.0,
            ..LaneScalingConfig::default()
        }
    }

    fn waiting(jobs: u64, units_each: f64) -> LaneObservation {
        LaneObservation { visible_jobs: jobs, visible_units: jobs as f64 * units_each, ..LaneObservation::default() }
    }

    fn idle(ready: usize) -> LaneObservation {
        LaneObservation { ready_workers: ready, ..LaneObservation::default() }
    }

    /// Runs the policy once a second from `from` to `to` (exclusive) with the same observation.
    fn run(policy: &mut ScalingPolicy, from: u64, to: u64, observation: &LaneObservation) -> Vec<Decision> {
        (from..to).map(|t| policy.decide(Duration::from_secs(t), observation)).collect()
    }

    #[test]
    fn work_units_count_pages_and_size() {
        assert_eq!(work_units(0, 0), 1.0);
        assert_eq!(work_units(0, 12), 12.0);
        assert_eq!(work_units(2 * 1_048_576, 3), 5.0);
    }

    #[test]
    fn erlang_c_staffing_matches_the_tables() {
        // Erlang C(14, 10) = 0.174: 14 workers keep the waiting share under 20 %.
        assert_eq!(erlang_c_staffing(10.0, 1.0, 0.0, 0.2, 100), 14);
        // Allowing a 60 s wait on 12 s jobs, one spare worker is enough.
        assert_eq!(erlang_c_staffing(10.0, 12.0, 60.0, 0.2, 100), 11);
        assert_eq!(erlang_c_staffing(0.01, 12.0, 90.0, 0.2, 100), 1);
        assert_eq!(erlang_c_staffing(0.0, 12.0, 90.0, 0.2, 100), 0);
        assert_eq!(erlang_c_staffing(500.0, 12.0, 90.0, 0.2, 100), 101, "above the maximum");
    }

    #[test]
    fn a_burst_scales_up_in_one_decision() {
        let mut policy = ScalingPolicy::new(config());
        run(&mut policy, 0, 30, &idle(1));
        // 600 one-unit jobs at 1 s each: 600 s of work, drained within 60 s, need 10 workers.
        let decision = policy.decide(secs(30.0), &waiting(600, 1.0));
        assert_eq!((decision.previous, decision.desired), (1, 10), "{}", decision.reason);
        assert_eq!(
            decision.reason.to_string(),
            "backlog of 600 s of work and arrivals of 0.0 s of work per second need 10 workers to meet the 60 s target"
        );
    }

    #[test]
    fn a_quiet_period_scales_down_only_after_the_window() {
        let mut policy = ScalingPolicy::new(LaneScalingConfig { scale_down_min_saving_worker_secs: 0, ..config() });
        run(&mut policy, 0, 200, &idle(1));
        assert_eq!(policy.decide(secs(200.0), &waiting(600, 1.0)).desired, 10);
        let held = run(&mut policy, 201, 321, &idle(10));
        assert!(held.iter().all(|d| d.desired == 10), "held for the window: {held:?}");
        assert_eq!(
            held.last().unwrap().reason.to_string(),
            "holding 10 workers: scale-down stabilisation 120 s not elapsed (1 would do)"
        );
        let down = policy.decide(secs(321.0), &idle(10));
        assert_eq!(down.desired, 1, "{}", down.reason);
        assert_eq!(down.reason.kind(), "scale_down");
    }

    #[test]
    fn one_idle_worker_waits_longer_for_its_scale_down_than_many() {
        let config =
            LaneScalingConfig { scale_down_stabilisation_secs: 10, scale_down_min_saving_worker_secs: 300, ..config() };
        let mut policy = ScalingPolicy::new(config);
        run(&mut policy, 0, 20, &idle(1));
        assert_eq!(policy.decide(secs(20.0), &waiting(120, 1.0)).desired, 2);
        // After the 10 s window, one surplus worker: 300 worker-seconds take 300 s.
        let decisions = run(&mut policy, 21, 400, &idle(2));
        let down_at = decisions.iter().position(|d| d.changed()).map(|i| i + 21);
        assert_eq!(down_at, Some(330));
        let waiting_reason = &decisions[100].reason;
        assert_eq!(waiting_reason.kind(), "saving_too_small", "{waiting_reason}");

        // Nine surplus workers: the same saving within 34 s of the window.
        assert_eq!(policy.decide(secs(400.0), &waiting(600, 1.0)).desired, 10);
        let decisions = run(&mut policy, 401, 500, &idle(10));
        let down_at = decisions.iter().position(|d| d.changed()).map(|i| i + 401);
        assert_eq!(down_at, Some(444));
    }

    #[test]
    fn flapping_input_produces_no_flapping_output() {
        let mut policy = ScalingPolicy::new(config());
        let mut outputs = Vec::new();
        for t in 0..900u64 {
            // Quiet, then a backlog alternating every 5 s between 600 units and nothing.
            let burst = t >= 50 && (t / 5) % 2 == 0;
            let observation = if burst { waiting(600, 1.0) } else { idle(outputs.last().copied().unwrap_or(1)) };
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
        let idle_at_zero = policy.decide(secs(0.0), &LaneObservation::default());
        assert_eq!((idle_at_zero.desired, idle_at_zero.reason.kind()), (0, "idle_at_zero"));

        let few = policy.decide(secs(1.0), &waiting(4, 1.0));
        assert_eq!(few.desired, 0);
        assert_eq!(few.reason.to_string(), "staying at zero: 4 waiting jobs are below the activation threshold of 5");

        let woken = policy.decide(secs(2.0), &waiting(5, 1.0));
        assert_eq!(woken.desired, 1, "{}", woken.reason);
        assert_eq!(woken.reason.to_string(), "activating from zero: 5 waiting jobs need 1 worker");

        // Busy until t = 100, then idle: zero 300 s after the last job.
        let busy = LaneObservation { in_flight_jobs: 1, in_flight_units: 1.0, busy_workers: 1, ..idle(1) };
        run(&mut policy, 3, 100, &busy);
        let before = run(&mut policy, 100, 399, &idle(1));
        assert!(before.iter().all(|d| d.desired == 1));
        let zero = policy.decide(secs(399.0), &idle(1));
        assert_eq!(zero.desired, 0);
        assert_eq!(zero.reason.to_string(), "scaled to zero after 300 s idle");
    }

    #[test]
    fn a_lane_wakes_with_no_more_workers_than_jobs_waiting() {
        let config =
            LaneScalingConfig { scale_to_zero: true, idle_before_zero_secs: 60, arrival_window_secs: 600, ..config() };
        let mut policy = ScalingPolicy::new(config);
        // A busy spell teaches a rate of about 8 one-unit jobs a second, then the lane is idle.
        let busy = LaneObservation { arrived_jobs: 8, arrived_units: 8.0, ..waiting(8, 1.0) };
        run(&mut policy, 0, 1500, &busy);
        let zero = run(&mut policy, 1500, 1600, &idle(10));
        assert_eq!(zero.last().unwrap().desired, 0, "{}", zero.last().unwrap().reason);
        // Two jobs come: the stale rate would ask for several workers, two can work.
        let woken = policy.decide(secs(1600.0), &waiting(2, 1.0));
        assert_eq!(woken.reason.to_string(), "activating from zero: 2 waiting jobs need 2 workers");
    }

    #[test]
    fn a_lone_job_wakes_the_lane_once_it_waited_the_activation_wait() {
        let config = LaneScalingConfig { scale_to_zero: true, activation_backlog_jobs: 5, ..config() };
        let mut policy = ScalingPolicy::new(config);
        let mut lone = waiting(1, 1.0);
        lone.oldest_wait = secs(29.0);
        assert_eq!(policy.decide(secs(0.0), &lone).desired, 0);
        lone.oldest_wait = secs(30.0);
        assert_eq!(policy.decide(secs(1.0), &lone).desired, 1);
    }

    #[test]
    fn an_idle_lane_goes_to_zero_without_a_step_down_first() {
        let config = LaneScalingConfig {
            scale_to_zero: true,
            idle_before_zero_secs: 60,
            scale_down_stabilisation_secs: 30,
            ..config()
        };
        let mut policy = ScalingPolicy::new(config.clone());
        assert_eq!(policy.decide(secs(0.0), &waiting(600, 1.0)).desired, 10);
        // The backlog is done and all ten workers idle: no 10 → 1 step before zero.
        let decisions = run(&mut policy, 1, 60, &idle(10));
        assert!(decisions.iter().all(|d| d.desired == 10), "{:?}", decisions.last());
        assert_eq!(
            decisions.last().unwrap().reason.to_string(),
            "holding 10 idle workers: the lane goes to zero after 60 s idle"
        );
        let last = policy.decide(secs(60.0), &idle(10));
        assert_eq!((last.desired, last.reason.kind()), (0, "scaled_to_zero"));

        // A trickle of quick jobs keeps the lane from zero: the idle workers go after about
        // one idle period plus the saving threshold each, (60 + 100) s.
        let mut policy = ScalingPolicy::new(config);
        policy.decide(secs(0.0), &waiting(600, 1.0));
        let trickle = |t: u64| LaneObservation { arrived_jobs: u64::from(t.is_multiple_of(20)), ..idle(10) };
        let down = (1..400).map(|t| (t, policy.decide(secs(t as f64), &trickle(t)))).find(|(_, d)| d.desired < 10);
        let (at, decision) = down.expect("the idle workers go in the end");
        assert!((150..=250).contains(&at), "after about 160 s: {at} s, {}", decision.reason);
        assert_eq!(decision.reason.kind(), "scale_down");
    }

    #[test]
    fn the_backlog_drains_within_backlog_drain_secs() {
        // 600 s of work: 10 workers drain it within 60 s, 20 within 30 s.
        for (drain_secs, workers) in [(60, 10), (30, 20)] {
            let mut policy = ScalingPolicy::new(LaneScalingConfig { backlog_drain_secs: drain_secs, ..config() });
            assert_eq!(policy.decide(secs(0.0), &waiting(600, 1.0)).desired, workers, "{drain_secs} s");
        }
        // Never beyond the latency target.
        let mut policy = ScalingPolicy::new(LaneScalingConfig { backlog_drain_secs: 120, ..config() });
        assert_eq!(policy.decide(secs(0.0), &waiting(600, 1.0)).desired, 10);
        let invalid = LaneScalingConfig { backlog_drain_secs: 0, ..config() };
        assert_eq!(invalid.validate().unwrap_err().0, "backlog_drain_secs");
    }

    #[test]
    fn a_higher_rate_alone_scales_up_only_once_a_job_waits() {
        let mut policy = ScalingPolicy::new(LaneScalingConfig { scale_up_min_wait_secs: 30, ..config() });
        // Arrivals ramping up over ten minutes to 16 one-unit jobs a second at 1 s each: the
        // rate says 16 workers, but no job waits (as if the one worker kept up).
        let arriving = |t: u64| {
            let jobs = (t * 16 / 600).min(16);
            LaneObservation { arrived_jobs: jobs, arrived_units: jobs as f64, ..idle(1) }
        };
        for t in 0..1800 {
            assert_eq!(policy.decide(secs(t as f64), &arriving(t)).desired, 1, "at {t} s");
        }
        let waited = LaneObservation { oldest_wait: secs(30.0), visible_jobs: 1, visible_units: 1.0, ..arriving(1800) };
        let decision = policy.decide(secs(1800.0), &waited);
        assert!(decision.desired >= 16, "{}", decision.reason);
    }

    #[test]
    fn large_documents_need_more_workers_than_as_many_small_ones() {
        let completions =
            |units: f64| (0..20).map(|_| Completion { duration: secs(units * 1.5), units }).collect::<Vec<_>>();
        let mut small = ScalingPolicy::new(config());
        let mut large = ScalingPolicy::new(config());
        small.decide(secs(0.0), &LaneObservation { completions: completions(1.0), ..idle(1) });
        large.decide(secs(0.0), &LaneObservation { completions: completions(40.0), ..idle(1) });
        assert!((small.secs_per_unit() - 1.5).abs() < 1e-9, "cost is learned per unit");
        assert!((large.secs_per_unit() - 1.5).abs() < 1e-9);
        // 30 one-pagers are 45 s of work: the one worker meets the target. 30 forty-page
        // documents are 1800 s: 30 workers drain them within 60 s.
        assert_eq!(small.decide(secs(1.0), &waiting(30, 1.0)).desired, 1);
        assert_eq!(large.decide(secs(1.0), &waiting(30, 40.0)).desired, 30);
    }

    #[test]
    fn busy_workers_are_no_surplus_and_the_scale_down_is_one_step() {
        let config = LaneScalingConfig { scale_down_stabilisation_secs: 10, ..config() };
        let mut policy = ScalingPolicy::new(config);
        assert_eq!(policy.decide(secs(0.0), &waiting(600, 1.0)).desired, 10);
        // Nothing waits, but all ten are still busy with long jobs: no surplus, no scale-down.
        let busy = LaneObservation { in_flight_jobs: 10, in_flight_units: 10.0, busy_workers: 10, ..idle(10) };
        let decisions = run(&mut policy, 1, 400, &busy);
        assert!(decisions.iter().all(|d| d.desired == 10), "busy workers cost nothing to keep");
        assert_eq!(decisions.last().unwrap().reason.kind(), "saving_too_small");
        // Three are idle: the surplus grows by three a second; one step down to the one worker
        // the arrivals need; the seven busy ones finish their jobs before they leave (the pool
        // drains them).
        let mixed = LaneObservation { in_flight_jobs: 7, in_flight_units: 7.0, busy_workers: 7, ..idle(10) };
        let decisions = run(&mut policy, 400, 500, &mixed);
        let changes: Vec<_> = decisions.iter().filter(|d| d.changed()).collect();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!((changes[0].previous, changes[0].desired), (10, 1));
        assert_eq!(changes[0].reason.kind(), "scale_down");
    }

    #[test]
    fn workers_still_draining_a_backlog_count_against_a_scale_up() {
        let mut policy = ScalingPolicy::new(LaneScalingConfig { scale_down_min_saving_worker_secs: 0, ..config() });
        run(&mut policy, 0, 200, &idle(1));
        // The target went back to 1 while 12 workers still drain 600 s of work: 12 are enough.
        policy.current = 1;
        let draining = LaneObservation { busy_workers: 12, in_flight_jobs: 12, ..waiting(600, 1.0) };
        let draining = LaneObservation { ready_workers: 12, ..draining };
        let decision = policy.decide(secs(200.0), &draining);
        assert_eq!(decision.desired, 1, "{}", decision.reason);
        // With only 5 left, the backlog would miss the target: up again.
        let fewer = LaneObservation { ready_workers: 5, busy_workers: 5, ..draining };
        assert!(policy.decide(secs(201.0), &fewer).desired > 5);
    }

    #[test]
    fn no_scale_down_while_workers_start() {
        let mut policy = ScalingPolicy::new(LaneScalingConfig { scale_down_min_saving_worker_secs: 0, ..config() });
        run(&mut policy, 0, 200, &idle(1));
        assert_eq!(policy.decide(secs(200.0), &waiting(600, 1.0)).desired, 10);
        let starting = LaneObservation { starting_workers: 9, ..idle(1) };
        let decisions = run(&mut policy, 201, 400, &starting);
        assert!(decisions.iter().all(|d| d.desired == 10));
        assert_eq!(decisions.last().unwrap().reason.to_string(), "holding 10 workers: 9 still starting");
    }

    #[test]
    fn arrivals_alone_keep_the_busy_workers_plus_spare() {
        let mut policy = ScalingPolicy::new(config());
        let mut last = None;
        for t in 0..3600u64 {
            // Ramping up over ten minutes to 16 one-unit jobs a second at 1 s each: 16 busy
            // workers, plus one spare.
            let jobs = (t * 16 / 600).min(16);
            let observation = LaneObservation { arrived_jobs: jobs, arrived_units: jobs as f64, ..idle(1) };
            last = Some(policy.decide(Duration::from_secs(t), &observation));
        }
        let desired = last.unwrap().desired;
        assert!((16..=17).contains(&desired), "within the estimate's error band: {desired}");
    }

    #[test]
    fn a_burst_counts_as_backlog_not_as_rate() {
        let mut estimate = RateEstimate::new(60.0);
        for t in 0..1800 {
            let jobs = u64::from(t % 2 == 0);
            estimate.observe(jobs, jobs as f64, 1.0);
        }
        let steady = estimate.units_per_sec;
        assert!((steady - 0.5).abs() < 0.05, "{steady}");
        estimate.observe(500, 500.0, 1.0);
        assert!(estimate.units_per_sec < steady * 1.5, "the rate barely moves: {}", estimate.units_per_sec);
        assert!(estimate.burst_units_per_sec > 30.0, "the burst is seen: {}", estimate.burst_units_per_sec);
    }

    #[test]
    fn the_rate_holds_its_level_through_a_burst_and_follows_a_new_level() {
        let steady = |estimate: &mut RateEstimate, seconds: u64, every: u64| {
            for t in 0..seconds {
                let jobs = u64::from(t.is_multiple_of(every));
                estimate.observe(jobs, jobs as f64, 1.0);
            }
        };
        let mut estimate = RateEstimate::new(60.0);
        steady(&mut estimate, 1800, 2);
        // A batch upload: 300 jobs in clumps of 10 every second for 30 s, then the old stream.
        for _ in 0..30 {
            estimate.observe(10, 10.0, 1.0);
        }
        steady(&mut estimate, 120, 2);
        let after = estimate.units_per_sec;
        assert!((after - 0.5).abs() < 0.1, "the batch left the rate where it was: {after}");
        // Four jobs a second from now on is no burst but a new level: the rate follows it once
        // the burst has lasted BURST_MAX_SECS.
        steady(&mut estimate, 1200, 1);
        for _ in 0..900 {
            estimate.observe(4, 4.0, 1.0);
        }
        assert!(estimate.units_per_sec > 3.0, "the rate follows a lasting level: {}", estimate.units_per_sec);
    }

    #[test]
    fn a_batch_that_builds_up_does_not_raise_its_own_baseline() {
        let mut estimate = RateEstimate::new(60.0);
        for t in 0..1800u64 {
            let jobs = u64::from(t.is_multiple_of(2));
            estimate.observe(jobs, jobs as f64, 1.0);
        }
        // A batch that starts slowly: 1, then 2, then 3 jobs a second, 20 s each. Against the
        // rising average its first arrivals look plausible; against the minute's lowest rate
        // the batch is a burst, and the rate keeps (nearly) its level.
        for t in 0..60u64 {
            let jobs = 1 + t / 20;
            estimate.observe(jobs, jobs as f64, 1.0);
        }
        for t in 0..60u64 {
            let jobs = u64::from(t.is_multiple_of(2));
            estimate.observe(jobs, jobs as f64, 1.0);
        }
        assert!(estimate.units_per_sec < 0.75, "the batch barely moved the rate: {}", estimate.units_per_sec);
    }

    /// A lane in a steady state: ten one-unit jobs a second of 1 s each keep 10 of 12 workers
    /// busy, and nothing waits.
    fn steady_ten() -> LaneObservation {
        LaneObservation {
            arrived_jobs: 10,
            arrived_units: 10.0,
            completions: vec![Completion { duration: secs(1.0), units: 1.0 }; 10],
            in_flight_jobs: 10,
            in_flight_units: 10.0,
            busy_workers: 10,
            ..idle(12)
        }
    }

    #[test]
    fn a_restarted_policy_keeps_the_workers_it_finds_and_learns_the_rate_from_them() {
        // From scratch the rate starts at zero: the policy would keep its minimum of one while
        // ten workers are busy, and the idle ones would be drained.
        let mut fresh = ScalingPolicy::new(config());
        let decisions = run(&mut fresh, 0, 120, &steady_ten());
        assert!(decisions.iter().all(|d| d.desired < 10), "{:?}", decisions.last());

        let mut restarted = ScalingPolicy::new(config());
        assert!(restarted.adopt(12));
        assert_eq!(restarted.initial_workers(), 12);
        let decisions = run(&mut restarted, 0, 900, &steady_ten());
        assert_eq!(decisions[0].desired, 12);
        assert_eq!(decisions[0].reason.kind(), "warming_up");
        assert_eq!(
            decisions[0].reason.to_string(),
            "holding the 12 workers found at start-up for 60 s while the arrival rate is learned"
        );
        assert!(decisions.iter().all(|d| d.desired >= 10), "the busy ten stay: {:?}", decisions.last());
        let rate = restarted.arrivals.units_per_sec;
        assert!((rate - 10.0).abs() < 1.0, "the rate starts from the work done: {rate}");
    }

    #[test]
    fn adopting_only_counts_before_the_first_decision_and_above_the_start() {
        let mut policy = ScalingPolicy::new(config());
        policy.adopt(0);
        assert_eq!(policy.initial_workers(), 1, "never below the minimum");
        assert_ne!(policy.decide(secs(0.0), &idle(1)).reason.kind(), "warming_up");
        assert!(!policy.adopt(12), "too late: the policy has decided");
        assert_eq!(policy.initial_workers(), 1);

        let mut policy = ScalingPolicy::new(LaneScalingConfig { scale_to_zero: true, min_workers: 0, ..config() });
        policy.adopt(0);
        assert_eq!(policy.initial_workers(), 0, "a lane at zero stays there");
        policy.adopt(500);
        assert_eq!(policy.initial_workers(), 50, "at most the maximum");
    }

    #[test]
    fn bounds_and_step_limit_are_reasons() {
        let mut policy = ScalingPolicy::new(LaneScalingConfig { max_workers: 8, ..config() });
        let capped = policy.decide(secs(0.0), &waiting(4020, 1.0));
        assert_eq!(capped.desired, 8);
        assert_eq!(capped.reason.to_string(), "capped at the maximum of 8 workers (67 needed)");

        let mut policy = ScalingPolicy::new(LaneScalingConfig { max_scale_up_step: Some(4), ..config() });
        let limited = policy.decide(secs(0.0), &waiting(600, 1.0));
        assert_eq!(limited.desired, 5);
        assert_eq!(limited.reason.kind(), "step_limited");
        assert_eq!(policy.decide(secs(1.0), &waiting(600, 1.0)).desired, 9);
        assert_eq!(policy.decide(secs(2.0), &waiting(600, 1.0)).desired, 10);
    }

    #[test]
    fn decisions_can_be_recorded_without_a_recorder() {
        let mut policy = ScalingPolicy::new(config());
        policy.decide(secs(0.0), &waiting(600, 1.0)).record(Lane::Small);
    }

    #[test]
    fn decisions_are_exported_with_direction_and_reason() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let mut policy = ScalingPolicy::new(config());
        metrics::with_local_recorder(&recorder, || {
            policy.decide(secs(0.0), &waiting(600, 1.0)).record(Lane::Small);
            policy.decide(secs(1.0), &waiting(600, 1.0)).record(Lane::Small);
        });
        let text = handle.render();
        for line in [
            r#"surge_scaling_decisions_total{lane="small",direction="up",reason="demand"} 1"#,
            r#"surge_scaling_decisions_total{lane="small",direction="hold",reason="demand"} 1"#,
            r#"surge_scaling_desired_workers{lane="small"} 10"#,
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
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
