//! Surge's model: the real [`ScalingPolicy`] evaluated every second, with drain-only scale-in.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{LaneObservation, LaneScalingConfig, ScalingPolicy};

use super::{Autoscaler, LaneView};
use crate::simulate::pool::ScaleIn;

/// How often the dispatcher asks the policy.
const PERIOD_SECS: f64 = 1.0;

pub(crate) struct SurgeModel {
    policy: ScalingPolicy,
    /// Applied changes by [`crate::Reason::kind`].
    reasons: BTreeMap<String, u64>,
}

impl SurgeModel {
    pub(crate) fn new(config: LaneScalingConfig) -> SurgeModel {
        SurgeModel { policy: ScalingPolicy::new(config), reasons: BTreeMap::new() }
    }
}

impl Autoscaler for SurgeModel {
    fn period_secs(&self) -> f64 {
        PERIOD_SECS
    }

    fn scale_in(&self) -> ScaleIn {
        ScaleIn::Drain
    }

    fn initial_workers(&self) -> usize {
        self.policy.initial_workers()
    }

    fn evaluate(&mut self, view: &LaneView<'_>) -> usize {
        let observation = LaneObservation {
            visible_jobs: view.visible_jobs,
            visible_units: view.visible_units,
            in_flight_jobs: view.in_flight_jobs,
            in_flight_units: view.in_flight_units,
            oldest_wait: Duration::from_secs_f64(view.oldest_wait.max(0.0)),
            arrived_jobs: view.arrived_jobs,
            arrived_units: view.arrived_units,
            completions: view.completions.to_vec(),
            ready_workers: view.idle + view.busy,
            busy_workers: view.busy,
            starting_workers: view.starting,
        };
        let decision = self.policy.decide(Duration::from_secs_f64(view.now), &observation);
        if decision.changed() {
            *self.reasons.entry(decision.reason.kind().to_owned()).or_default() += 1;
        }
        decision.desired
    }

    fn reasons(&self) -> BTreeMap<String, u64> {
        self.reasons.clone()
    }
}
