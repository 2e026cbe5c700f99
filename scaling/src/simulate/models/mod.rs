//! The autoscalers the simulator compares, behind one small trait: Surge's own policy
//! ([`surge`]), KEDA's SQS scaler driving a Kubernetes HPA ([`keda`]) and EC2 Auto Scaling target
//! tracking on SQS backlog per instance ([`target_tracking`]). The event machinery
//! (`super::engine`) and the pool (`super::pool`) are shared; a model only turns what it can see
//! into a worker count.

pub(crate) mod keda;
#[cfg(test)]
pub(crate) mod oracle;
pub(crate) mod surge;
pub(crate) mod target_tracking;

use std::collections::BTreeMap;

use crate::Completion;

use super::pool::ScaleIn;

/// What the engine shows a model of one lane when the model's period comes round. Each model
/// reads only what its real counterpart can read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LaneView<'a> {
    /// Seconds since the start of the trace.
    pub(crate) now: f64,
    /// Jobs waiting for a worker, and their work units.
    pub(crate) visible_jobs: u64,
    pub(crate) visible_units: f64,
    /// Jobs received by a worker (running, or lost with a terminated worker and not yet visible
    /// again), and their work units.
    pub(crate) in_flight_jobs: u64,
    pub(crate) in_flight_units: f64,
    /// How long the oldest waiting job has waited, in seconds.
    pub(crate) oldest_wait: f64,
    /// Jobs (and units) that arrived since the model's previous period.
    pub(crate) arrived_jobs: u64,
    pub(crate) arrived_units: f64,
    /// Jobs completed since the model's previous period.
    pub(crate) completions: &'a [Completion],
    pub(crate) starting: usize,
    pub(crate) idle: usize,
    pub(crate) busy: usize,
}

#[cfg(test)]
impl LaneView<'static> {
    /// A lane at `now` with `visible` jobs of one unit waiting and nothing else, for tests.
    pub(crate) fn waiting(now: f64, visible: u64) -> LaneView<'static> {
        LaneView {
            now,
            visible_jobs: visible,
            visible_units: visible as f64,
            in_flight_jobs: 0,
            in_flight_units: 0.0,
            oldest_wait: 0.0,
            arrived_jobs: 0,
            arrived_units: 0.0,
            completions: &[],
            starting: 0,
            idle: 0,
            busy: 0,
        }
    }
}

/// One lane's autoscaler, as the engine drives it.
pub(crate) trait Autoscaler {
    /// Seconds between two evaluations.
    fn period_secs(&self) -> f64;
    /// How the platform removes workers.
    fn scale_in(&self) -> ScaleIn;
    /// Workers the lane has when the trace starts (already up).
    fn initial_workers(&self) -> usize;
    /// The lane's new target worker count.
    fn evaluate(&mut self, view: &LaneView<'_>) -> usize;
    /// Applied scaling actions by reason, for models that give reasons.
    fn reasons(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}
