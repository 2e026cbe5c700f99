//! Lending: while the large lane has no worker at all, idle small-lane workers take its jobs.
//! The rule is shared by the dispatcher and the simulator.

/// A lane's workers as the autoscaler last saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneWorkers {
    /// Workers asked for or up: the most of the scale target's desired count, its running
    /// and pending ones, and the workers beating.
    pub workers: usize,
    /// Workers beating (up and not draining).
    pub ready: usize,
    /// Of those, the ones with no job in flight.
    pub idle: usize,
}

/// Whether the large lane has no worker at all: asked for, starting or up. Its jobs are then
/// held rather than released into its queue, where no lent worker would see them.
pub fn asleep(large: LaneWorkers) -> bool {
    large.workers == 0
}

/// How many held large jobs idle small-lane workers may take now: none unless the large lane
/// is asleep and no small job waits (held or in the lane queue); then all idle small workers
/// but one, which stays free for the next small job. `in_flight` (the small lane queue's
/// messages being worked on) caps the idle count when the workers' beats lag behind.
pub fn lendable(small: LaneWorkers, large: LaneWorkers, small_waiting: u64, in_flight: u64) -> usize {
    if !asleep(large) || small_waiting > 0 {
        return 0;
    }
    let idle = small.idle.min(small.ready.saturating_sub(usize::try_from(in_flight).unwrap_or(usize::MAX)));
    idle.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::{LaneWorkers, asleep as asleep_rule, lendable};

    #[test]
    fn only_spare_small_workers_are_lent_and_only_to_a_sleeping_large_lane() {
        let small = |ready, idle| LaneWorkers { workers: ready, ready, idle };
        let asleep = LaneWorkers::default();
        assert_eq!(lendable(small(3, 3), asleep, 0, 0), 2, "one small worker stays idle");
        assert_eq!(lendable(small(1, 1), asleep, 0, 0), 0);
        assert_eq!(lendable(small(3, 3), asleep, 1, 0), 0, "a small job waits");
        assert_eq!(lendable(small(3, 3), LaneWorkers { workers: 1, ready: 0, idle: 0 }, 0, 0), 0, "waking");
        assert_eq!(lendable(small(3, 3), asleep, 0, 2), 0, "beats lag: the queue says two are busy");
        assert!(asleep_rule(asleep));
        assert!(!asleep_rule(LaneWorkers { workers: 1, ready: 0, idle: 0 }), "one asked for");
    }
}
