//! The offline reference: worker counts planned with the whole trace known in advance. No
//! autoscaler can know the future, so this is not a policy; it shows how few scaling actions a
//! given worker-second budget and wait allow at best (`print_the_offline_reference` in
//! `simulate`, figures in `traces/README.md`).
//!
//! The plan, per lane: in bins of `bin_secs`, the workers that finish the work arriving within
//! `window_secs` within that window (times `factor`), in place `lead_secs` before it arrives (the
//! start-up); then the cheapest neighbouring levels are merged (the higher one kept) until only
//! `changes` steps are left.

use crate::Lane;

use super::{Autoscaler, LaneView};
use crate::simulate::SimJob;
use crate::simulate::pool::ScaleIn;

/// How a lane's schedule is planned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OraclePlan {
    pub(crate) bin_secs: f64,
    pub(crate) window_secs: f64,
    pub(crate) factor: f64,
    pub(crate) lead_secs: f64,
    /// Steps of the schedule, the first one included.
    pub(crate) changes: usize,
    pub(crate) min_workers: usize,
}

/// A lane following a planned schedule: `(from second, workers)`, in time order. Drains like
/// Surge's pool. After the schedule's last step it keeps one worker while jobs are left.
pub(crate) struct ScheduleModel {
    steps: Vec<(f64, usize)>,
    next: usize,
    workers: usize,
}

impl ScheduleModel {
    pub(crate) fn new(steps: Vec<(f64, usize)>) -> ScheduleModel {
        let workers = steps.first().map_or(0, |&(_, w)| w);
        ScheduleModel { steps, next: 1, workers }
    }
}

impl Autoscaler for ScheduleModel {
    fn period_secs(&self) -> f64 {
        1.0
    }

    fn scale_in(&self) -> ScaleIn {
        ScaleIn::Drain
    }

    fn initial_workers(&self) -> usize {
        self.workers
    }

    fn evaluate(&mut self, view: &LaneView<'_>) -> usize {
        while self.steps.get(self.next).is_some_and(|&(from, _)| from <= view.now) {
            self.workers = self.steps[self.next].1;
            self.next += 1;
        }
        let leftovers = self.next == self.steps.len() && view.visible_jobs + view.in_flight_jobs > 0;
        if leftovers { self.workers.max(1) } else { self.workers }
    }
}

/// The schedule of `lane` for `jobs` over `horizon_secs`.
pub(crate) fn plan(jobs: &[SimJob], lane: Lane, horizon_secs: f64, plan: &OraclePlan) -> Vec<(f64, usize)> {
    let bins = (horizon_secs / plan.bin_secs).ceil() as usize + 1;
    // Work arrived before each bin (prefix sums), in seconds of service.
    let mut arrived = vec![0.0; bins + 1];
    for job in jobs.iter().filter(|j| j.lane == lane) {
        let bin = ((job.arrival / plan.bin_secs) as usize).min(bins - 1);
        arrived[bin + 1] += job.service_secs;
    }
    for bin in 0..bins {
        arrived[bin + 1] += arrived[bin];
    }
    let window = ((plan.window_secs / plan.bin_secs).round() as usize).max(1);
    let lead = (plan.lead_secs / plan.bin_secs).round() as usize;
    // (first bin, bins, workers)
    let mut segments: Vec<(usize, usize, usize)> = Vec::new();
    for bin in 0..bins {
        let to = (bin + lead + 1).min(bins);
        let work = arrived[to] - arrived[to.saturating_sub(window)];
        let workers = ((work / plan.window_secs * plan.factor - 1e-9).ceil().max(0.0) as usize).max(plan.min_workers);
        match segments.last_mut() {
            Some(last) if last.2 == workers => last.1 += 1,
            _ => segments.push((bin, 1, workers)),
        }
    }
    while segments.len() > plan.changes.max(1) {
        let cost = |a: (usize, usize, usize), b: (usize, usize, usize)| {
            let top = a.2.max(b.2);
            (top - a.2) * a.1 + (top - b.2) * b.1
        };
        let Some(cheapest) = (0..segments.len() - 1).min_by_key(|&i| cost(segments[i], segments[i + 1])) else {
            break;
        };
        let next = segments.remove(cheapest + 1);
        let merged = &mut segments[cheapest];
        merged.1 += next.1;
        merged.2 = merged.2.max(next.2);
        if cheapest > 0 && segments[cheapest - 1].2 == segments[cheapest].2 {
            let same = segments.remove(cheapest);
            segments[cheapest - 1].1 += same.1;
        }
    }
    segments.into_iter().map(|(bin, _, workers)| (bin as f64 * plan.bin_secs, workers)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(arrival: f64, service_secs: f64) -> SimJob {
        SimJob { arrival, tenant: 0, lane: Lane::Small, units: 1.0, service_secs }
    }

    #[test]
    fn the_plan_covers_the_work_ahead_of_it_within_the_budget() {
        // 60 s of work arriving at 100 s and again at 500 s; 10 s bins, 30 s window, 20 s lead.
        let jobs: Vec<SimJob> = (0..6).map(|_| job(100.0, 10.0)).chain((0..6).map(|_| job(500.0, 10.0))).collect();
        let plan_of = |changes| {
            let settings =
                OraclePlan { bin_secs: 10.0, window_secs: 30.0, factor: 1.0, lead_secs: 20.0, changes, min_workers: 0 };
            plan(&jobs, Lane::Small, 1000.0, &settings)
        };
        let full = plan_of(100);
        assert_eq!(full, vec![(0.0, 0), (80.0, 2), (110.0, 0), (480.0, 2), (510.0, 0)]);
        let three = plan_of(3);
        assert_eq!(three.len(), 3, "{three:?}");
        assert_eq!(three[1].1, 2, "merging keeps the higher level: {three:?}");
        let mut model = ScheduleModel::new(full);
        assert_eq!([0.0, 85.0, 200.0, 490.0, 999.0].map(|t| model.evaluate(&LaneView::waiting(t, 0))), [0, 2, 0, 2, 0]);
    }
}
