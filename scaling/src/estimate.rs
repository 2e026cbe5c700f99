//! Estimates the policy learns from what it observes: the cost of a unit of work, the arrival
//! rate with its bursts, and the moving averages and windows under them.

use std::collections::VecDeque;

use crate::observation::Completion;

/// Arrivals the rate average spans at least (sparse large documents would otherwise make the
/// estimate jump with every arrival).
pub(crate) const ARRIVALS_AVERAGED: f64 = 20.0;

/// Longest time constant of the rate average, in seconds.
pub(crate) const MAX_RATE_WINDOW_SECS: f64 = 1800.0;
/// Arrivals beyond what a Poisson stream plausibly brings within this many seconds are a burst.
pub(crate) const BURST_HORIZON_SECS: f64 = 30.0;
/// Time constant of the burst rate, in seconds.
pub(crate) const BURST_WINDOW_SECS: f64 = 10.0;
/// What is plausible is judged from the lowest rate of this many seconds: the first arrivals of
/// a batch raise the average before they are recognised as a burst, and must not raise the
/// level the rest of the batch is judged against.
pub(crate) const BURST_BASELINE_SECS: f64 = 60.0;
/// A burst counts as going on for this long after the last arrivals beyond the plausible (the
/// arrivals of a batch upload come in clumps).
pub(crate) const BURST_HANGOVER_SECS: f64 = 30.0;
/// A burst that goes on for longer than this is a new level of arrivals: the rate follows it.
pub(crate) const BURST_MAX_SECS: f64 = 300.0;

/// The cost of work: exponentially weighted averages of job durations and of job units, so
/// each job weighs by its size in the seconds per unit.
#[derive(Debug, Clone)]
pub(crate) struct CostModel {
    pub(crate) weight: f64,
    pub(crate) secs: f64,
    pub(crate) units: f64,
    pub(crate) seen: bool,
    pub(crate) initial_secs_per_unit: f64,
}

impl CostModel {
    pub(crate) fn new(weight: f64, initial_secs_per_unit: f64) -> CostModel {
        CostModel { weight, secs: 0.0, units: 0.0, seen: false, initial_secs_per_unit }
    }

    pub(crate) fn observe(&mut self, completion: &Completion) {
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

    pub(crate) fn secs_per_unit(&self) -> f64 {
        if self.seen && self.units > 0.0 { self.secs / self.units } else { self.initial_secs_per_unit }
    }

    /// The average duration of a job (of `units_per_job` units before the first completion).
    pub(crate) fn job_secs(&self, units_per_job: f64) -> f64 {
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
pub(crate) struct RateEstimate {
    pub(crate) min_window_secs: f64,
    pub(crate) units_per_sec: f64,
    /// Average units of an arriving job, and of their squares (for the estimate's error).
    pub(crate) units_per_job: Option<f64>,
    pub(crate) squared_units_per_job: f64,
    /// The time constant last used.
    pub(crate) window_secs: f64,
    /// Jobs a Poisson stream at the current rate may still bring (the token bucket).
    pub(crate) allowance_jobs: f64,
    pub(crate) burst_units_per_sec: f64,
    /// How long the current burst has lasted: since the first of consecutive observations with
    /// burst arrivals (`None`: no burst).
    pub(crate) burst_secs: Option<f64>,
    /// Jobs per second when the current burst started: the most the rate counts while it lasts.
    pub(crate) pre_burst_jobs_per_sec: f64,
    /// Seconds since the last observation with more jobs than plausible.
    pub(crate) since_excess_secs: f64,
    /// How long the rate has held its pre-burst level (`None`: not holding).
    pub(crate) held_secs: Option<f64>,
    /// Jobs the rate has counted so far.
    pub(crate) counted_jobs: f64,
    /// Seconds observed so far (the clock of `lows`).
    pub(crate) clock_secs: f64,
    /// The lowest `units_per_sec` of the last [`BURST_BASELINE_SECS`].
    pub(crate) lows: Window<f64>,
}

impl RateEstimate {
    pub(crate) fn new(min_window_secs: f64) -> RateEstimate {
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

    pub(crate) fn observe(&mut self, jobs: u64, units: f64, elapsed_secs: f64) {
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
    pub(crate) fn holding(&self) -> bool {
        self.held_secs.is_some_and(|held| held <= BURST_MAX_SECS)
    }

    /// Burst work units still expected within `horizon_secs`: a burst that has lasted `d`
    /// seconds is assumed to go on for about `d` more (a one-off upload, none).
    pub(crate) fn burst_units_within(&self, horizon_secs: f64) -> f64 {
        self.burst_units_per_sec * self.burst_secs.unwrap_or(0.0).min(horizon_secs)
    }

    pub(crate) fn observe_sizes(&mut self, jobs: u64, units: f64) {
        let mean = units / jobs as f64;
        let weight = 1.0 - 0.95f64.powf(jobs as f64);
        let average = self.units_per_job.get_or_insert(mean);
        *average += weight * (mean - *average);
        if self.squared_units_per_job == 0.0 {
            self.squared_units_per_job = mean * mean;
        }
        self.squared_units_per_job += weight * (mean * mean - self.squared_units_per_job);
    }

    pub(crate) fn jobs_per_sec(&self) -> f64 {
        self.units_per_sec / self.units_per_job()
    }

    pub(crate) fn units_per_job(&self) -> f64 {
        self.units_per_job.unwrap_or(1.0).max(1e-9)
    }

    /// Starts the estimate from `units_per_sec` learned elsewhere, if that is higher: a warm
    /// estimate at that level, with no burst going on.
    pub(crate) fn seed(&mut self, units_per_sec: f64) {
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
    pub(crate) fn standard_error(&self) -> f64 {
        (self.jobs_per_sec() * self.squared_units_per_job / (2.0 * self.window_secs)).sqrt()
    }
}

/// A quantity averaged over time with a time constant; until the first time constant is over,
/// the plain average so far (a bias-corrected average).
#[derive(Debug, Clone)]
pub(crate) struct TimeAverage {
    pub(crate) window_secs: f64,
    pub(crate) value: f64,
    /// The weight the average has gathered (1 once it spans many time constants).
    pub(crate) weight: f64,
}

impl TimeAverage {
    pub(crate) fn new(window_secs: f64) -> TimeAverage {
        TimeAverage { window_secs, value: 0.0, weight: 0.0 }
    }

    /// `value` held for the last `elapsed_secs`.
    pub(crate) fn observe(&mut self, value: f64, elapsed_secs: f64) {
        if elapsed_secs <= 0.0 {
            return;
        }
        let alpha = 1.0 - (-elapsed_secs / self.window_secs).exp();
        self.value += alpha * (value - self.value);
        self.weight += alpha * (1.0 - self.weight);
    }

    pub(crate) fn value(&self) -> f64 {
        if self.weight > 0.0 { self.value / self.weight } else { 0.0 }
    }
}

/// The highest (or lowest) value pushed within the last `window_secs`: a monotonic queue.
#[derive(Debug, Clone)]
pub(crate) struct Window<T> {
    pub(crate) window_secs: f64,
    /// Whether it keeps the lowest value rather than the highest.
    pub(crate) lowest: bool,
    /// (time, value), the kept value at the front, each entry beating the ones behind it.
    pub(crate) entries: VecDeque<(f64, T)>,
}

impl<T: PartialOrd + Copy> Window<T> {
    pub(crate) fn highest(window_secs: f64) -> Window<T> {
        Window { window_secs, lowest: false, entries: VecDeque::new() }
    }

    pub(crate) fn lowest(window_secs: f64) -> Window<T> {
        Window { window_secs, lowest: true, entries: VecDeque::new() }
    }

    /// Adds `value` at `now` and answers the kept value of the window.
    pub(crate) fn push(&mut self, now: f64, value: T) -> T {
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

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}
