//! EC2 Auto Scaling target tracking on SQS backlog per instance, as AWS documents it.
//!
//! Sources and modelling choices:
//! - The metric is AWS's recipe "Scaling policy based on Amazon SQS" (EC2 Auto Scaling user
//!   guide, `as-using-sqs-queue`): `ApproximateNumberOfMessagesVisible / InService instances`,
//!   target value = acceptable latency / average processing time. We give it the lane's latency
//!   target and the true mean service time of the lane's jobs in the trace. SQS publishes its
//!   metrics once a minute: one data point per minute, the backlog at that moment. A minute
//!   without an instance in service has no data point (metric math divides by zero), which
//!   breaches neither alarm.
//! - The two alarms target tracking creates: scale out when 3 consecutive one-minute data points
//!   are above the target ("AlarmHigh", 3 of 3), scale in when 15 consecutive ones are below 90 %
//!   of it ("AlarmLow", 15 of 15). The Application Auto Scaling guide
//!   (`target-tracking-scaling-policy-overview`) describes the asymmetry: capacity is added
//!   proportionally as fast as possible and removed only once the metric is "usually more than
//!   10 %" below the target. An alarm in ALARM invokes the policy again every period (CloudWatch
//!   user guide: "For Auto Scaling actions, the alarm continues to invoke the action for every
//!   period that the alarm remains in the new state").
//! - The adjustment is proportional: `capacity × metric / target`, which with this metric is
//!   `ceil(visible / target)`; it is never below what keeps the metric at the target. Scale-out
//!   only raises the desired capacity (instances warming up count towards it), scale-in only
//!   lowers it. The instance warm-up equals the simulated start-up delay (the EC2 default would
//!   be 300 s: again the favourable reading).
//! - Minimum capacity 1 (the metric is undefined at zero instances, so the recipe cannot scale
//!   from zero), maximum the lane's. The default termination policy does not look at work in
//!   progress: [`ScaleIn::Terminate`].

use std::collections::VecDeque;

use super::{Autoscaler, LaneView};
use crate::simulate::pool::ScaleIn;

/// Target tracking parameters; [`TargetTrackingSettings::new`] gives AWS's defaults.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TargetTrackingSettings {
    /// Target backlog per instance (acceptable latency / average processing time).
    pub(crate) target_backlog_per_instance: f64,
    pub(crate) period_secs: f64,
    pub(crate) scale_out_points: usize,
    pub(crate) scale_in_points: usize,
    /// The scale-in alarm's threshold as a fraction of the target.
    pub(crate) scale_in_threshold: f64,
    pub(crate) min_capacity: usize,
    pub(crate) max_capacity: usize,
}

impl TargetTrackingSettings {
    /// AWS's defaults for a lane with this latency target, mean processing time and maximum.
    pub(crate) fn new(latency_target_secs: f64, mean_service_secs: f64, max_capacity: usize) -> TargetTrackingSettings {
        TargetTrackingSettings {
            target_backlog_per_instance: (latency_target_secs / mean_service_secs.max(1e-3)).max(0.1),
            period_secs: 60.0,
            scale_out_points: 3,
            scale_in_points: 15,
            scale_in_threshold: 0.9,
            min_capacity: 1,
            max_capacity: max_capacity.max(1),
        }
    }
}

pub(crate) struct TargetTrackingModel {
    settings: TargetTrackingSettings,
    /// The group's desired capacity.
    desired: usize,
    /// The latest data points, newest last; `None`: no data.
    points: VecDeque<Option<f64>>,
}

impl TargetTrackingModel {
    pub(crate) fn new(settings: TargetTrackingSettings) -> TargetTrackingModel {
        let desired = settings.min_capacity;
        TargetTrackingModel { settings, desired, points: VecDeque::new() }
    }

    /// Whether the newest `n` data points all exist and satisfy `breaches`.
    fn alarm(&self, n: usize, breaches: impl Fn(f64) -> bool) -> bool {
        self.points.len() >= n && self.points.iter().rev().take(n).all(|p| p.is_some_and(&breaches))
    }
}

impl Autoscaler for TargetTrackingModel {
    fn period_secs(&self) -> f64 {
        self.settings.period_secs
    }

    fn scale_in(&self) -> ScaleIn {
        ScaleIn::Terminate
    }

    fn initial_workers(&self) -> usize {
        self.settings.min_capacity
    }

    fn evaluate(&mut self, view: &LaneView<'_>) -> usize {
        let target = self.settings.target_backlog_per_instance;
        let in_service = view.idle + view.busy;
        let point = (in_service > 0).then(|| view.visible_jobs as f64 / in_service as f64);
        self.points.push_back(point);
        while self.points.len() > self.settings.scale_out_points.max(self.settings.scale_in_points) {
            self.points.pop_front();
        }
        let proportional = ((view.visible_jobs as f64 / target).ceil() as usize)
            .clamp(self.settings.min_capacity, self.settings.max_capacity);
        let low = target * self.settings.scale_in_threshold;
        let scale_out = self.alarm(self.settings.scale_out_points, |p| p > target) && proportional > self.desired;
        let scale_in = self.alarm(self.settings.scale_in_points, |p| p < low) && proportional < self.desired;
        if scale_out || scale_in {
            self.desired = proportional;
        }
        self.desired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(now: f64, visible: u64, in_service: usize) -> LaneView<'static> {
        LaneView { busy: in_service, ..LaneView::waiting(now, visible) }
    }

    #[test]
    fn scales_out_after_three_minutes_above_target_proportionally() {
        // 60 s acceptable latency, 6 s per message: 10 messages per instance.
        let mut tracking = TargetTrackingModel::new(TargetTrackingSettings::new(60.0, 6.0, 100));
        assert_eq!(tracking.initial_workers(), 1);
        assert_eq!(tracking.evaluate(&view(0.0, 500, 1)), 1);
        assert_eq!(tracking.evaluate(&view(60.0, 500, 1)), 1);
        assert_eq!(tracking.evaluate(&view(120.0, 500, 1)), 50, "third breaching data point");
        assert_eq!(tracking.evaluate(&view(180.0, 400, 1)), 50, "warming instances count: no more");
    }

    #[test]
    fn scales_in_only_after_fifteen_minutes_below_ninety_percent() {
        let mut tracking = TargetTrackingModel::new(TargetTrackingSettings::new(60.0, 6.0, 100));
        for minute in 0..3 {
            tracking.evaluate(&view(60.0 * f64::from(minute), 500, 1));
        }
        let mut desired = Vec::new();
        for minute in 3..20 {
            // 95 waiting on 10 instances: 9.5 per instance, below the target but above 90 %.
            let visible = if minute < 5 { 95 } else { 20 };
            desired.push(tracking.evaluate(&view(60.0 * f64::from(minute), visible, 10)));
        }
        // Low points from minute 5: the fifteenth is minute 19.
        assert!(desired[..16].iter().all(|&d| d == 50), "{desired:?}");
        assert_eq!(desired[16], 2, "ceil(20 / 10)");
    }
}
