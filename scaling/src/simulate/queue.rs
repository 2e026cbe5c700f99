//! The waiting jobs of one simulated lane, released round robin across tenants like the
//! dispatcher's `FairQueue` (`crate::schedule`), and tracked by age for the latency metrics.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Job ids waiting in one lane. Job ids are indexes into the trace, so a lower id arrived
/// earlier.
#[derive(Debug, Default)]
pub(crate) struct LaneQueue {
    by_tenant: BTreeMap<u32, VecDeque<usize>>,
    /// Tenants with waiting jobs, in turn order.
    turns: VecDeque<u32>,
    /// Every waiting job, to find the oldest.
    waiting: BTreeSet<usize>,
    /// Sum of the waiting jobs' work units.
    units: f64,
}

impl LaneQueue {
    /// Queues a new job behind the tenant's others.
    pub(crate) fn push(&mut self, tenant: u32, job: usize, units: f64) {
        self.tenant_queue(tenant).push_back(job);
        self.added(job, units);
    }

    /// Queues a job again (its attempt was lost) ahead of the tenant's newer ones.
    pub(crate) fn push_again(&mut self, tenant: u32, job: usize, units: f64) {
        self.tenant_queue(tenant).push_front(job);
        self.added(job, units);
    }

    /// The next job: the first of the tenant whose turn it is.
    pub(crate) fn pop(&mut self, units_of: impl Fn(usize) -> f64) -> Option<usize> {
        let tenant = self.turns.pop_front()?;
        let queue = self.by_tenant.get_mut(&tenant)?;
        let job = queue.pop_front()?;
        if queue.is_empty() {
            self.by_tenant.remove(&tenant);
        } else {
            self.turns.push_back(tenant);
        }
        self.waiting.remove(&job);
        self.units = if self.waiting.is_empty() { 0.0 } else { (self.units - units_of(job)).max(0.0) };
        Some(job)
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub(crate) fn units(&self) -> f64 {
        self.units
    }

    /// The job waiting longest.
    pub(crate) fn oldest(&self) -> Option<usize> {
        self.waiting.first().copied()
    }

    fn tenant_queue(&mut self, tenant: u32) -> &mut VecDeque<usize> {
        let queue = self.by_tenant.entry(tenant).or_default();
        if queue.is_empty() {
            self.turns.push_back(tenant);
        }
        queue
    }

    fn added(&mut self, job: usize, units: f64) {
        self.waiting.insert(job);
        self.units += units;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_across_tenants_and_oldest_tracking() {
        let mut queue = LaneQueue::default();
        for job in 0..5 {
            queue.push(0, job, 1.0);
        }
        queue.push(1, 5, 2.0);
        assert_eq!((queue.len(), queue.units(), queue.oldest()), (6, 7.0, Some(0)));
        let order: Vec<_> = std::iter::from_fn(|| queue.pop(|j| if j == 5 { 2.0 } else { 1.0 })).take(3).collect();
        assert_eq!(order, vec![0, 5, 1], "the other tenant's job goes second");
        queue.push_again(0, 0, 1.0);
        assert_eq!(queue.oldest(), Some(0));
        assert_eq!(queue.pop(|_| 1.0), Some(0), "a retried job goes before the tenant's newer ones");
        assert_eq!(queue.units(), 3.0);
    }
}
