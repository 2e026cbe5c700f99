//! `surge simulate`: replays an arrival trace through a discrete-event model of the two lanes
//! and their worker pools under a scaling policy, and measures queue wait, time over the
//! latency target, worker-seconds, scaling actions and interrupted jobs.
//!
//! The model:
//! - **Arrivals** come from the trace ([`parse_trace`]); each document goes to the small or the
//!   large lane by the dispatcher's thresholds (`LaneConfig`), and waits in that lane's queue,
//!   released round robin across tenants as the dispatcher does.
//! - **Service time** grows with pages and size ([`ServiceModel`]), times log-normal noise from
//!   a seeded RNG, drawn once per job: every policy sees the same jobs, and a job that is redone
//!   takes as long again. A worker runs one job at a time.
//! - **Workers** take `startup_delay_secs` from being asked for to their first job; they count
//!   as worker-seconds from the moment they are asked for.
//! - **Policies** ([`PolicyKind`]) run on their own cadence per lane and set the lane's target
//!   worker count. Surge's model is the real [`crate::ScalingPolicy`] every second,
//!   removing only idle workers; the KEDA and target-tracking models follow those systems'
//!   documented defaults (sources in `models/keda.rs` and `models/target_tracking.rs`) and
//!   terminate workers whether busy or not: the job becomes visible again after the visibility
//!   timeout and is redone.
//! - Report definitions are in [`report`].
//!
//! The shipped trace `traces/peak-month.csv` comes from [`generate::peak_month`].

mod engine;
pub mod generate;
mod models;
mod pool;
mod queue;
pub mod report;
pub mod trace;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::Lane;
use crate::LaneConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

pub use report::{LaneReport, SimReport, render_table};
pub use trace::{Arrival, Trace, TraceError, parse_trace};

use crate::{ScalingConfig, work_units};
use engine::{Engine, EngineSettings};
use models::Autoscaler;
use models::keda::{KedaModel, KedaSettings};
use models::surge::SurgeModel;
use models::target_tracking::{TargetTrackingModel, TargetTrackingSettings};

/// The autoscalers the simulator can model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    /// Surge's own policy (`crate::scaling`).
    Surge,
    /// KEDA's `aws-sqs-queue` scaler with a Kubernetes HPA, documented defaults.
    Keda,
    /// EC2 Auto Scaling target tracking on SQS backlog per instance, documented defaults.
    TargetTracking,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 3] = [PolicyKind::Surge, PolicyKind::Keda, PolicyKind::TargetTracking];

    /// The name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Surge => "surge",
            PolicyKind::Keda => "keda",
            PolicyKind::TargetTracking => "target-tracking",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy name that is not `surge`, `keda`, `target-tracking` (or `all` where allowed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy `{0}`: expected surge, keda, target-tracking or all")]
pub struct UnknownPolicy(pub String);

impl FromStr for PolicyKind {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<PolicyKind, UnknownPolicy> {
        PolicyKind::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| UnknownPolicy(s.to_owned()))
    }
}

/// `--policy`: one policy, or `all` to compare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySelection {
    One(PolicyKind),
    All,
}

impl PolicySelection {
    /// The selected policies, in [`PolicyKind::ALL`] order.
    pub fn kinds(self) -> Vec<PolicyKind> {
        match self {
            PolicySelection::One(kind) => vec![kind],
            PolicySelection::All => PolicyKind::ALL.to_vec(),
        }
    }
}

impl FromStr for PolicySelection {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<PolicySelection, UnknownPolicy> {
        if s == "all" { Ok(PolicySelection::All) } else { s.parse().map(PolicySelection::One) }
    }
}

/// How long a document takes a worker: `base + per page + per MiB`, times log-normal noise
/// with mean 1.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceModel {
    pub base_secs: f64,
    pub secs_per_page: f64,
    pub secs_per_mib: f64,
    /// σ of the noise's logarithm (0: no noise).
    pub noise_sigma: f64,
}

impl Default for ServiceModel {
    fn default() -> ServiceModel {
        ServiceModel { base_secs: 3.2, secs_per_page: 4.8, secs_per_mib: 2.4, noise_sigma: 0.35 }
    }
}

impl ServiceModel {
    /// The noise-free service time of a document.
    pub fn mean_secs(&self, size_bytes: u64, pages: u32) -> f64 {
        self.base_secs
            + self.secs_per_page * f64::from(pages.max(1))
            + self.secs_per_mib * size_bytes as f64 / 1_048_576.0
    }

    fn sample_secs(&self, size_bytes: u64, pages: u32, rng: &mut StdRng) -> f64 {
        let sigma = self.noise_sigma;
        let noise = (sigma * standard_normal(rng) - sigma * sigma / 2.0).exp();
        (self.mean_secs(size_bytes, pages) * noise).max(0.05)
    }
}

/// A standard normal draw (Box–Muller).
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Everything about a simulation except the trace and the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    /// From asking for a worker to its first job, for every policy. Surge's policy is told the
    /// same delay (its `startup_delay_secs` estimate), as an operator would configure it.
    pub startup_delay_secs: f64,
    /// How long a job lost with its worker stays invisible before it is redelivered.
    pub visibility_timeout_secs: f64,
    /// Seed of the service-time noise.
    pub seed: u64,
    /// Which documents go to the large lane.
    pub lanes: LaneConfig,
    /// Surge's policy settings; their latency targets and maximums apply to every policy.
    pub scaling: ScalingConfig,
    pub service: ServiceModel,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            startup_delay_secs: 20.0,
            visibility_timeout_secs: 30.0,
            seed: 1,
            lanes: LaneConfig::default(),
            scaling: ScalingConfig::default(),
            service: ServiceModel::default(),
        }
    }
}

/// One job as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SimJob {
    pub(crate) arrival: f64,
    pub(crate) tenant: u32,
    pub(crate) lane: Lane,
    pub(crate) units: f64,
    pub(crate) service_secs: f64,
}

/// Simulates `trace` under `policy`.
pub fn run(trace: &Trace, policy: PolicyKind, options: &SimOptions) -> SimReport {
    let jobs = prepare_jobs(trace, options);
    simulate(&jobs, trace, policy, options)
}

/// Simulates `trace` under each of `policies` (the same jobs and service times for all).
pub fn run_many(trace: &Trace, policies: &[PolicyKind], options: &SimOptions) -> Vec<SimReport> {
    let jobs = prepare_jobs(trace, options);
    policies.iter().map(|&policy| simulate(&jobs, trace, policy, options)).collect()
}

/// Simulates `trace` under every policy, for comparison.
pub fn run_all(trace: &Trace, options: &SimOptions) -> Vec<SimReport> {
    run_many(trace, &PolicyKind::ALL, options)
}

fn simulate(jobs: &[SimJob], trace: &Trace, policy: PolicyKind, options: &SimOptions) -> SimReport {
    let settings = EngineSettings {
        startup_delay_secs: options.startup_delay_secs.max(0.0),
        visibility_timeout_secs: options.visibility_timeout_secs.max(0.0),
        latency_target_secs: Lane::ALL.map(|lane| options.scaling.lane(lane).latency_target_secs as f64),
        horizon_secs: trace.duration_secs,
    };
    let scalers = Lane::ALL.map(|lane| autoscaler(policy, lane, jobs, options));
    let (tallies, end, reasons) = Engine::new(jobs, settings, scalers).run();
    SimReport::new(policy, tallies, end, reasons)
}

fn autoscaler(policy: PolicyKind, lane: Lane, jobs: &[SimJob], options: &SimOptions) -> Box<dyn Autoscaler> {
    let config = options.scaling.lane(lane);
    match policy {
        PolicyKind::Surge => {
            let mut config = config.clone();
            config.startup_delay_secs = options.startup_delay_secs.max(0.0).round() as u64;
            Box::new(SurgeModel::new(config))
        }
        PolicyKind::Keda => Box::new(KedaModel::new(KedaSettings::default(), config.ceiling())),
        PolicyKind::TargetTracking => {
            let settings = TargetTrackingSettings::new(
                config.latency_target_secs as f64,
                mean_service_secs(jobs, lane),
                config.ceiling(),
            );
            Box::new(TargetTrackingModel::new(settings))
        }
    }
}

/// The average processing time of a lane's jobs (what AWS's recipe asks the operator for).
fn mean_service_secs(jobs: &[SimJob], lane: Lane) -> f64 {
    let (sum, count) =
        jobs.iter().filter(|j| j.lane == lane).fold((0.0, 0usize), |(s, n), j| (s + j.service_secs, n + 1));
    if count == 0 { 1.0 } else { sum / count as f64 }
}

/// The trace's documents as jobs: tenant ids, lanes, work units and service times.
fn prepare_jobs(trace: &Trace, options: &SimOptions) -> Vec<SimJob> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut tenants: HashMap<&str, u32> = HashMap::new();
    trace
        .arrivals
        .iter()
        .map(|a| {
            let next_id = tenants.len() as u32;
            let tenant = *tenants.entry(a.tenant.as_str()).or_insert(next_id);
            SimJob {
                arrival: a.at_secs,
                tenant,
                lane: lane_of(a, &options.lanes),
                units: work_units(a.size_bytes, a.pages),
                service_secs: options.service.sample_secs(a.size_bytes, a.pages, &mut rng),
            }
        })
        .collect()
}

/// The dispatcher's lane rule ([`LaneConfig::lane_of`]) on a trace row.
fn lane_of(arrival: &Arrival, config: &LaneConfig) -> Lane {
    config.lane_of(arrival.size_bytes, arrival.pages)
}

#[cfg(test)]
mod tests {
    use super::engine::lane_index;
    use super::*;

    fn small_trace() -> Trace {
        let spec = generate::PeakMonthSpec { days: 2, ..generate::PeakMonthSpec::default() };
        generate::peak_month(&spec)
    }

    #[test]
    fn policy_names_parse_and_print() {
        for kind in PolicyKind::ALL {
            assert_eq!(kind.as_str().parse::<PolicyKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(kind.as_str()));
        }
        assert_eq!("all".parse::<PolicySelection>().unwrap().kinds(), PolicyKind::ALL.to_vec());
        assert_eq!("keda".parse::<PolicySelection>(), Ok(PolicySelection::One(PolicyKind::Keda)));
        assert!("hpa".parse::<PolicySelection>().unwrap_err().to_string().contains("hpa"));
    }

    #[test]
    fn the_simulation_is_deterministic_for_a_seed() {
        let trace = small_trace();
        let options = SimOptions::default();
        for policy in PolicyKind::ALL {
            assert_eq!(run(&trace, policy, &options), run(&trace, policy, &options), "{policy}");
        }
        let reseeded = SimOptions { seed: 2, ..SimOptions::default() };
        assert_ne!(run(&trace, PolicyKind::Surge, &options), run(&trace, PolicyKind::Surge, &reseeded));
    }

    #[test]
    fn every_job_completes_and_the_report_adds_up() {
        let trace = small_trace();
        for report in run_all(&trace, &SimOptions::default()) {
            assert_eq!(report.jobs as usize, trace.arrivals.len(), "{}", report.policy);
            assert_eq!(report.lanes.iter().map(|l| l.scaling_actions).sum::<u64>(), report.scaling_actions);
            assert!(report.wait_p50_secs <= report.wait_p95_secs && report.wait_p95_secs <= report.wait_p99_secs);
            assert!(report.worker_seconds > 0.0);
            assert!(report.simulated_secs >= trace.duration_secs);
        }
    }

    #[test]
    fn surge_never_interrupts_a_job_and_the_others_may() {
        let reports = run_all(&small_trace(), &SimOptions::default());
        assert_eq!(reports[0].policy, PolicyKind::Surge);
        assert_eq!(reports[0].jobs_interrupted, 0);
        assert_eq!(reports[0].work_lost_secs, 0.0);
        assert!(!reports[0].scaling_reasons.is_empty(), "Surge's actions come with reasons");
        assert!(reports[1..].iter().all(|r| r.jobs_interrupted > 0 && r.work_lost_secs > 0.0), "{reports:?}");
    }

    #[test]
    fn a_single_burst_waits_for_the_start_up_and_no_longer_than_needed() {
        // 100 one-page documents (8 s each, no noise) at once on an idle system, 10 s start-up,
        // a 30 s target; the policy knows the cost from the start.
        let arrivals = (0..100)
            .map(|i| Arrival { at_secs: 10.0, tenant: format!("t{}", i % 4), size_bytes: 0, pages: 1 })
            .collect();
        let trace = Trace { arrivals, duration_secs: 600.0 };
        let mut options = SimOptions {
            startup_delay_secs: 10.0,
            service: ServiceModel { noise_sigma: 0.0, ..ServiceModel::default() },
            ..SimOptions::default()
        };
        options.scaling.small.min_workers = 1;
        options.scaling.small.latency_target_secs = 30;
        options.scaling.small.backlog_drain_secs = 30;
        options.scaling.small.initial_cost_secs_per_unit = 8.0;
        let report = run(&trace, PolicyKind::Surge, &options);
        let small = &report.lanes[lane_index(Lane::Small)];
        assert_eq!(small.jobs, 100);
        // 800 s of work drained within 30 s: 27 workers; the last job starts within the target
        // plus the start-up plus one job.
        assert_eq!(small.peak_workers, 27, "{small:?}");
        assert!(report.wait_p99_secs <= 30.0 + 10.0 + 8.0, "{report:?}");
        assert_eq!(report.jobs_interrupted, 0);
    }

    #[test]
    fn a_large_job_goes_to_a_spare_small_worker_while_the_large_lane_sleeps() {
        // One 20-page scan at night: the large lane is at zero and wakes only for 6 waiting
        // scans or one that waited 675 s.
        let arrivals = vec![Arrival { at_secs: 100.0, tenant: "t1".to_owned(), size_bytes: 0, pages: 20 }];
        let trace = Trace { arrivals, duration_secs: 600.0 };
        let with_small_workers = |min_workers| {
            let mut options = SimOptions::default();
            options.scaling.small.min_workers = min_workers;
            run(&trace, PolicyKind::Surge, &options)
        };
        // Two idle small workers: one takes the scan at once, the other stays for small jobs.
        let lent = with_small_workers(2);
        let large = &lent.lanes[lane_index(Lane::Large)];
        assert_eq!(large.jobs, 1, "{lent:?}");
        assert!(large.wait_p99_secs < 1.0, "{lent:?}");
        assert_eq!((large.peak_workers, large.scaling_actions), (0, 0), "the large lane slept: {lent:?}");
        // A single small worker is not lent: the scan waits for the large lane to wake.
        let alone = with_small_workers(1);
        let large = &alone.lanes[lane_index(Lane::Large)];
        assert!(large.wait_p99_secs >= 675.0, "{alone:?}");
        assert_eq!((large.peak_workers, large.scaling_actions), (1, 1), "woken: {alone:?}");
    }

    fn shipped_trace() -> Trace {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(generate::SHIPPED_TRACE_PATH);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        parse_trace(&text).unwrap()
    }

    /// The target on the shipped trace: a third of the better p95 wait, no more
    /// worker-seconds than either, fewer scaling actions than both, no job interrupted.
    #[test]
    fn surge_meets_the_target_on_the_peak_month() {
        let reports = run_all(&shipped_trace(), &SimOptions::default());
        let table = render_table(&reports);
        let [surge, keda, tracking] = &reports[..] else { panic!("three reports: {table}") };
        assert_eq!(
            (surge.policy, keda.policy, tracking.policy),
            (PolicyKind::Surge, PolicyKind::Keda, PolicyKind::TargetTracking)
        );
        let better_p95 = keda.wait_p95_secs.min(tracking.wait_p95_secs);
        assert!(surge.wait_p95_secs * 3.0 <= better_p95, "p95 at most a third of the better one:\n{table}");
        assert!(surge.worker_seconds <= keda.worker_seconds, "worker-seconds:\n{table}");
        assert!(surge.worker_seconds <= tracking.worker_seconds, "worker-seconds:\n{table}");
        assert!(surge.scaling_actions < keda.scaling_actions, "scaling actions:\n{table}");
        assert!(surge.scaling_actions < tracking.scaling_actions, "scaling actions:\n{table}");
        assert_eq!(surge.jobs_interrupted, 0, "{table}");
        assert!(keda.jobs_interrupted > 0 && tracking.jobs_interrupted > 0, "{table}");
        let better_over = keda.minutes_over_target.min(tracking.minutes_over_target);
        assert!(surge.minutes_over_target < better_over, "time over target:\n{table}");
    }

    /// `cargo test -p dispatcher --lib -- --ignored --nocapture print_the_peak_month_comparison`
    #[test]
    #[ignore = "prints the comparison on the shipped trace"]
    fn print_the_peak_month_comparison() {
        let reports = run_all(&shipped_trace(), &SimOptions::default());
        println!("{}", render_table(&reports));
        println!("{}", serde_json::to_string_pretty(&reports).unwrap());
    }

    #[test]
    fn render_table_lists_every_policy() {
        let reports = run_all(&small_trace(), &SimOptions::default());
        let table = render_table(&reports);
        for kind in PolicyKind::ALL {
            assert!(table.contains(kind.as_str()), "{table}");
        }
        assert!(table.contains("p95 wait"));
    }

    /// The offline reference (`models::oracle`): the fewest scaling actions a schedule planned
    /// with the whole trace known makes, and what it costs, for a few plans of 840 actions
    /// (target tracking's count) and around it.
    /// `cargo test -p scaling --release --lib -- --ignored --nocapture print_the_offline_reference`
    #[test]
    #[ignore = "prints the offline reference on the shipped trace"]
    fn print_the_offline_reference() {
        use super::models::oracle::{OraclePlan, ScheduleModel, plan};

        let trace = shipped_trace();
        let options = SimOptions::default();
        let jobs = prepare_jobs(&trace, &options);
        let settings = EngineSettings {
            startup_delay_secs: options.startup_delay_secs,
            visibility_timeout_secs: options.visibility_timeout_secs,
            latency_target_secs: Lane::ALL.map(|lane| options.scaling.lane(lane).latency_target_secs as f64),
            horizon_secs: trace.duration_secs,
        };
        println!("window s (small/large)  factor  steps/lane  p95 wait  worker-seconds  scalings");
        for (small_window, large_window, factor, changes) in [
            (60.0, 600.0, 1.0, 420),
            (60.0, 600.0, 0.9, 420),
            (60.0, 600.0, 0.8, 420),
            (90.0, 900.0, 0.85, 420),
            (60.0, 600.0, 0.8, 300),
            (60.0, 600.0, 0.8, 600),
        ] {
            let lane_plan = |window_secs, min_workers| OraclePlan {
                bin_secs: 10.0,
                window_secs,
                factor,
                lead_secs: options.startup_delay_secs,
                changes,
                min_workers,
            };
            let small = plan(&jobs, Lane::Small, trace.duration_secs, &lane_plan(small_window, 1));
            let large = plan(&jobs, Lane::Large, trace.duration_secs, &lane_plan(large_window, 0));
            let scalers: [Box<dyn Autoscaler>; 2] =
                [Box::new(ScheduleModel::new(small)), Box::new(ScheduleModel::new(large))];
            let (tallies, end, reasons) = Engine::new(&jobs, settings, scalers).run();
            let report = SimReport::new(PolicyKind::Surge, tallies, end, reasons);
            println!(
                "{:>10}/{:<11} {factor:>6}  {changes:>10}  {:>6.1} s  {:>14.0}  {:>8}",
                small_window, large_window, report.wait_p95_secs, report.worker_seconds, report.scaling_actions
            );
        }
    }
}
