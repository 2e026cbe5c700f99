//! KEDA's `aws-sqs-queue` scaler driving a Kubernetes HorizontalPodAutoscaler, with the
//! documented defaults.
//!
//! Sources and modelling choices:
//! - KEDA `aws-sqs-queue` scaler (keda.sh/docs/latest/scalers/aws-sqs): `queueLength` 5 (target
//!   messages per replica), `activationQueueLength` 0; the metric counts
//!   `ApproximateNumberOfMessages + ApproximateNumberOfMessagesNotVisible` (`scaleOnInFlight`
//!   true). We give it the lane's whole backlog (held by the dispatcher or visible) plus the jobs
//!   in flight, exactly, without SQS's approximation lag: the most favourable reading.
//! - KEDA ScaledObject (keda.sh/docs/latest/reference/scaledobject-spec): `pollingInterval` 30 s
//!   (activation 0→1 and deactivation), `cooldownPeriod` 300 s (after the last active poll before
//!   1→0), `minReplicaCount` 0; the HPA KEDA creates has `minReplicas` max(minReplicaCount, 1)
//!   and does nothing while the deployment is at zero. `maxReplicaCount` is the lane's maximum,
//!   as for every policy.
//! - HPA (kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale): sync every 15 s
//!   (`--horizontal-pod-autoscaler-sync-period`), tolerance 0.1, for an `AverageValue` external
//!   metric `desired = ceil(metric / target)`; scale-down stabilisation 300 s (the highest
//!   recommendation of the window); scale-up at most max(4 pods, 100 %) per period, no
//!   stabilisation. The period is 15 s in the defaulting code
//!   (`pkg/apis/autoscaling/v2/defaults.go`: `scaleUpPeriod = 15`); the API reference text says
//!   60 s. We use 15 s, the faster of the two, which is what a cluster runs.
//! - Scale-in deletes pods regardless of the job they run (see [`ScaleIn::Terminate`]); a worker
//!   that ignores SIGTERM's grace period is assumed, as the issue describes.

use std::collections::VecDeque;

use super::{Autoscaler, LaneView};
use crate::simulate::pool::ScaleIn;

/// KEDA + HPA parameters; [`Default`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KedaSettings {
    /// `queueLength`: target messages per replica.
    pub(crate) queue_length: f64,
    /// `activationQueueLength`: more messages than this wake the deployment from zero.
    pub(crate) activation_queue_length: u64,
    pub(crate) polling_interval_secs: f64,
    pub(crate) cooldown_period_secs: f64,
    pub(crate) hpa_sync_secs: f64,
    pub(crate) hpa_tolerance: f64,
    pub(crate) scale_down_window_secs: f64,
    pub(crate) scale_up_pods: usize,
    pub(crate) scale_up_percent: usize,
    pub(crate) scale_up_period_secs: f64,
}

impl Default for KedaSettings {
    fn default() -> KedaSettings {
        KedaSettings {
            queue_length: 5.0,
            activation_queue_length: 0,
            polling_interval_secs: 30.0,
            cooldown_period_secs: 300.0,
            hpa_sync_secs: 15.0,
            hpa_tolerance: 0.1,
            scale_down_window_secs: 300.0,
            scale_up_pods: 4,
            scale_up_percent: 100,
            scale_up_period_secs: 15.0,
        }
    }
}

pub(crate) struct KedaModel {
    settings: KedaSettings,
    max_replicas: usize,
    /// The deployment's `spec.replicas`.
    replicas: usize,
    last_active: f64,
    next_poll: f64,
    /// HPA recommendations within the scale-down window: (time, replicas).
    recommendations: VecDeque<(f64, usize)>,
    /// Scale-ups within the scale-up period: (time, replicas added).
    scale_ups: VecDeque<(f64, usize)>,
}

impl KedaModel {
    pub(crate) fn new(settings: KedaSettings, max_replicas: usize) -> KedaModel {
        KedaModel {
            settings,
            max_replicas,
            replicas: 0,
            last_active: 0.0,
            next_poll: 0.0,
            recommendations: VecDeque::new(),
            scale_ups: VecDeque::new(),
        }
    }

    /// KEDA's own loop: activation (0 → 1) and deactivation (→ 0 after the cooldown).
    fn poll(&mut self, now: f64, messages: u64) {
        if messages > self.settings.activation_queue_length {
            self.last_active = now;
            if self.replicas == 0 {
                self.replicas = 1;
            }
        } else if self.replicas > 0 && now - self.last_active >= self.settings.cooldown_period_secs {
            self.replicas = 0;
            self.recommendations.clear();
            self.scale_ups.clear();
        }
    }

    /// One HPA sync: recommendation, scale-down stabilisation, scale-up rate limit.
    fn hpa_sync(&mut self, now: f64, messages: u64) {
        let current = self.replicas;
        let recommendation = self.recommend(messages as f64, current);
        self.recommendations.push_back((now, recommendation));
        let window_start = now - self.settings.scale_down_window_secs;
        while self.recommendations.front().is_some_and(|&(t, _)| t <= window_start) {
            self.recommendations.pop_front();
        }
        let highest = self.recommendations.iter().map(|&(_, r)| r).max().unwrap_or(recommendation);
        let stabilised = if recommendation > current {
            recommendation
        } else if highest < current {
            highest
        } else {
            current
        };
        let desired = stabilised.min(self.scale_up_limit(now, current)).clamp(1, self.max_replicas);
        if desired > current {
            self.scale_ups.push_back((now, desired - current));
        }
        self.replicas = desired;
    }

    /// `ceil(metric / target)`, or the current replicas within the tolerance.
    fn recommend(&self, messages: f64, current: usize) -> usize {
        let ratio = messages / (self.settings.queue_length * current as f64);
        if (ratio - 1.0).abs() <= self.settings.hpa_tolerance {
            return current;
        }
        ((messages / self.settings.queue_length).ceil() as usize).clamp(1, self.max_replicas)
    }

    /// The most replicas allowed now: max(+4 pods, +100 %) relative to the replicas at the start
    /// of the period (`selectPolicy: Max`).
    fn scale_up_limit(&mut self, now: f64, current: usize) -> usize {
        let period_start = now - self.settings.scale_up_period_secs;
        while self.scale_ups.front().is_some_and(|&(t, _)| t <= period_start) {
            self.scale_ups.pop_front();
        }
        let added: usize = self.scale_ups.iter().map(|&(_, n)| n).sum();
        let base = current.saturating_sub(added);
        let by_pods = base + self.settings.scale_up_pods;
        let by_percent = base + base * self.settings.scale_up_percent / 100;
        by_pods.max(by_percent)
    }
}

impl Autoscaler for KedaModel {
    fn period_secs(&self) -> f64 {
        self.settings.hpa_sync_secs
    }

    fn scale_in(&self) -> ScaleIn {
        ScaleIn::Terminate
    }

    fn initial_workers(&self) -> usize {
        0
    }

    fn evaluate(&mut self, view: &LaneView<'_>) -> usize {
        let messages = view.visible_jobs + view.in_flight_jobs;
        if view.now >= self.next_poll {
            self.next_poll += self.settings.polling_interval_secs;
            self.poll(view.now, messages);
        }
        if self.replicas > 0 {
            self.hpa_sync(view.now, messages);
        }
        self.replicas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(now: f64, messages: u64) -> LaneView<'static> {
        LaneView::waiting(now, messages)
    }

    #[test]
    fn activates_on_the_poll_then_doubles_or_adds_four_per_period() {
        let mut keda = KedaModel::new(KedaSettings::default(), 100);
        let replicas: Vec<usize> = (0..8).map(|i| keda.evaluate(&view(15.0 * i as f64, 400))).collect();
        // Poll at 0 s activates (1), the HPA at once adds 4; then ×2 every 15 s up to 400 / 5 = 80.
        assert_eq!(replicas, vec![5, 10, 20, 40, 80, 80, 80, 80]);
    }

    #[test]
    fn holds_the_highest_recommendation_for_300_s_then_scales_to_zero_after_the_cooldown() {
        let mut keda = KedaModel::new(KedaSettings::default(), 100);
        let mut history = Vec::new();
        for i in 0..=80 {
            let t = 15.0 * f64::from(i);
            // 400 messages until 60 s, then one (still active), then none from 615 s.
            let messages = if t <= 60.0 {
                400
            } else if t <= 600.0 {
                1
            } else {
                0
            };
            history.push((t, keda.evaluate(&view(t, messages))));
        }
        let at = |time: f64| history.iter().find(|&&(t, _)| t == time).map(|&(_, r)| r);
        assert_eq!(at(60.0), Some(80));
        assert_eq!(at(345.0), Some(80), "the recommendation of 60 s is still in the window");
        assert_eq!(at(360.0), Some(1), "then the HPA minimum");
        // The last active poll is at 600 s; after the 300 s cooldown, the poll at 900 s deactivates.
        assert_eq!(at(885.0), Some(1));
        assert_eq!(at(900.0), Some(0));
    }

    #[test]
    fn within_the_tolerance_nothing_changes() {
        let mut keda = KedaModel::new(KedaSettings::default(), 100);
        for i in 0..6 {
            keda.evaluate(&view(15.0 * i as f64, 50));
        }
        assert_eq!(keda.replicas, 10);
        assert_eq!(keda.evaluate(&view(90.0, 54)), 10, "54 / 50 is within 10 %");
        assert_eq!(keda.evaluate(&view(105.0, 56)), 12);
    }
}
