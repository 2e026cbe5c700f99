//! The elastic scaling policy: how many workers each lane needs, from the work waiting and arriving.
//!
//! [`ScalingPolicy::decide`] is pure and deterministic (no clock, no I/O): the caller passes the
//! time and a [`LaneObservation`], and gets a [`Decision`] with its [`Reason`]. The dispatcher
//! and the simulator ([`crate::simulate`]) drive the same code.
//!
//! The rule, per lane:
//! - **Work, not messages.** Every document is worth [`work_units`] (pages, plus its size in
//!   MiB). The seconds one unit costs are learned from completed jobs: moving averages of
//!   durations and of units, so a 60-page document weighs sixty times a one-pager.
//! - **Load.** Arrivals bring `rate × cost` seconds of work per second: that many workers are
//!   busy in the steady state. The policy staffs that load with Erlang C (M/M/n): the fewest
//!   workers with which at most `1 - target_quantile` of the jobs wait longer than the latency
//!   target. The rate is averaged over at least the last [`ARRIVALS_AVERAGED`](crate::estimate::ARRIVALS_AVERAGED) arrivals.
//! - **A burst is backlog, not rate.** Arrivals beyond what a Poisson stream plausibly brings
//!   (at the lowest rate of the last minute, so a batch that builds up does not raise its own
//!   bar) start a burst; while it lasts (and [`BURST_HANGOVER_SECS`](crate::estimate::BURST_HANGOVER_SECS) after), the rate counts
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
//! The dispatcher's autoscaler loop logs each [`Decision`] and exports it as metrics.

use std::time::Duration;

use crate::config::LaneScalingConfig;
use crate::decision::{Decision, Reason};
use crate::estimate::{CostModel, RateEstimate, TimeAverage, Window};
use crate::observation::LaneObservation;
use crate::queueing::{erlang_c_staffing, workers};

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
        let workers = workers.min(self.config.ceiling());
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
        let (floor, max, current) = (self.config.floor(), self.config.ceiling(), self.current);
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
        let (floor, max) = (self.config.floor(), self.config.ceiling());
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
            erlang_c_staffing(load, job_secs, target, 1.0 - config.target_quantile, config.ceiling())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Completion, ScalingConfig, work_units};

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// A lane with a 60 s target and a 20 s start-up: backlogs drain within 60 s, a higher rate
    /// scales up at once.
    fn config() -> LaneScalingConfig {
        LaneScalingConfig {
            min_workers: 1,
            max_workers: Some(50),
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
        let mut policy = ScalingPolicy::new(LaneScalingConfig { max_workers: Some(8), ..config() });
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
    fn config_defaults_validate_and_errors_name_the_key() {
        ScalingConfig::default().validate().unwrap();
        let mut config = ScalingConfig::default();
        config.large.min_workers = 500;
        let err = config.validate().unwrap_err();
        assert_eq!(err.key, "large.min_workers");
        assert!(err.to_string().contains("large.min_workers"), "{err}");

        let parsed: ScalingConfig = serde_json::from_str(r#"{"small": {"max_workers": 7}}"#).unwrap();
        assert_eq!(parsed.small.max_workers, Some(7));
        assert_eq!(parsed.small.latency_target_secs, LaneScalingConfig::default().latency_target_secs);
        let unknown = serde_json::from_str::<ScalingConfig>(r#"{"small": {"max_wrkers": 7}}"#);
        assert!(unknown.is_err(), "unknown keys are refused");
    }
}
