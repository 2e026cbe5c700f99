//! What a simulation measured: [`SimReport`] (serde, for `--json`) and [`render_table`] (for
//! people).
//!
//! Definitions:
//! - **queue wait**: from a job's arrival to the start of its successful attempt (a job whose
//!   worker was terminated keeps waiting until it runs again); percentiles by nearest rank.
//! - **minutes over target**: per lane, the time during which the lane's oldest waiting job had
//!   waited longer than the lane's latency target; summed over the lanes.
//! - **worker-seconds**: the time every worker existed, start-up included, until the end of the
//!   simulation (the trace's duration, or the last completion if later).
//! - **scaling actions**: changes of a lane's target worker count actually applied.
//! - **jobs interrupted**: attempts lost because their worker was terminated; the work done is
//!   lost (`work_lost_secs`) and redone.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::Lane;
use serde::Serialize;

use super::PolicyKind;

/// What the engine counts for one lane.
#[derive(Debug, Clone, Default)]
pub(crate) struct LaneTally {
    pub(crate) waits: Vec<f64>,
    pub(crate) over_target_secs: f64,
    pub(crate) worker_secs: f64,
    pub(crate) peak_workers: usize,
    pub(crate) scaling_actions: u64,
    pub(crate) jobs_interrupted: u64,
    pub(crate) work_lost_secs: f64,
    pub(crate) completed: u64,
}

/// The figures of one lane.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaneReport {
    pub lane: Lane,
    pub jobs: u64,
    pub wait_p50_secs: f64,
    pub wait_p95_secs: f64,
    pub wait_p99_secs: f64,
    pub minutes_over_target: f64,
    pub worker_seconds: f64,
    pub peak_workers: usize,
    pub scaling_actions: u64,
    pub jobs_interrupted: u64,
    pub work_lost_secs: f64,
}

/// The figures of one policy on one trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    pub policy: PolicyKind,
    /// Jobs completed (every job of the trace).
    pub jobs: u64,
    pub wait_p50_secs: f64,
    pub wait_p95_secs: f64,
    pub wait_p99_secs: f64,
    pub wait_mean_secs: f64,
    pub minutes_over_target: f64,
    pub worker_seconds: f64,
    pub scaling_actions: u64,
    pub jobs_interrupted: u64,
    /// Seconds of work thrown away with terminated workers.
    pub work_lost_secs: f64,
    /// Simulated time, in seconds.
    pub simulated_secs: f64,
    pub lanes: Vec<LaneReport>,
    /// Applied scaling actions by reason (policies that give reasons: Surge).
    pub scaling_reasons: BTreeMap<String, u64>,
}

impl SimReport {
    pub(crate) fn new(
        policy: PolicyKind,
        tallies: Vec<LaneTally>,
        simulated_secs: f64,
        scaling_reasons: BTreeMap<String, u64>,
    ) -> SimReport {
        let mut all_waits: Vec<f64> = tallies.iter().flat_map(|t| t.waits.iter().copied()).collect();
        all_waits.sort_by(f64::total_cmp);
        let lanes: Vec<LaneReport> =
            Lane::ALL.iter().zip(tallies).map(|(&lane, tally)| lane_report(lane, tally)).collect();
        let mean = if all_waits.is_empty() { 0.0 } else { all_waits.iter().sum::<f64>() / all_waits.len() as f64 };
        SimReport {
            policy,
            jobs: lanes.iter().map(|l| l.jobs).sum(),
            wait_p50_secs: percentile(&all_waits, 0.50),
            wait_p95_secs: percentile(&all_waits, 0.95),
            wait_p99_secs: percentile(&all_waits, 0.99),
            wait_mean_secs: mean,
            minutes_over_target: lanes.iter().map(|l| l.minutes_over_target).sum(),
            worker_seconds: lanes.iter().map(|l| l.worker_seconds).sum(),
            scaling_actions: lanes.iter().map(|l| l.scaling_actions).sum(),
            jobs_interrupted: lanes.iter().map(|l| l.jobs_interrupted).sum(),
            work_lost_secs: lanes.iter().map(|l| l.work_lost_secs).sum(),
            simulated_secs,
            lanes,
            scaling_reasons,
        }
    }
}

fn lane_report(lane: Lane, mut tally: LaneTally) -> LaneReport {
    tally.waits.sort_by(f64::total_cmp);
    LaneReport {
        lane,
        jobs: tally.completed,
        wait_p50_secs: percentile(&tally.waits, 0.50),
        wait_p95_secs: percentile(&tally.waits, 0.95),
        wait_p99_secs: percentile(&tally.waits, 0.99),
        minutes_over_target: tally.over_target_secs / 60.0,
        worker_seconds: tally.worker_secs,
        peak_workers: tally.peak_workers,
        scaling_actions: tally.scaling_actions,
        jobs_interrupted: tally.jobs_interrupted,
        work_lost_secs: tally.work_lost_secs,
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The reports side by side, one row per policy, then the same per lane.
pub fn render_table(reports: &[SimReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:>9} {:>9} {:>9} {:>12} {:>15} {:>9} {:>12}",
        "policy", "p50 wait", "p95 wait", "p99 wait", "min > target", "worker-seconds", "scalings", "interrupted"
    );
    for r in reports {
        let _ = writeln!(
            out,
            "{:<16} {:>9} {:>9} {:>9} {:>12.1} {:>15.0} {:>9} {:>12}",
            r.policy.as_str(),
            secs(r.wait_p50_secs),
            secs(r.wait_p95_secs),
            secs(r.wait_p99_secs),
            r.minutes_over_target,
            r.worker_seconds,
            r.scaling_actions,
            r.jobs_interrupted,
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:<6} {:>8} {:>9} {:>9} {:>12} {:>15} {:>5} {:>9}",
        "policy", "lane", "jobs", "p50 wait", "p95 wait", "min > target", "worker-seconds", "peak", "scalings"
    );
    for r in reports {
        for l in &r.lanes {
            let _ = writeln!(
                out,
                "{:<16} {:<6} {:>8} {:>9} {:>9} {:>12.1} {:>15.0} {:>5} {:>9}",
                r.policy.as_str(),
                l.lane.as_str(),
                l.jobs,
                secs(l.wait_p50_secs),
                secs(l.wait_p95_secs),
                l.minutes_over_target,
                l.worker_seconds,
                l.peak_workers,
                l.scaling_actions,
            );
        }
    }
    out
}

fn secs(value: f64) -> String {
    format!("{value:.1} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.50), 50.0);
        assert_eq!(percentile(&values, 0.95), 95.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
