//! The simulated worker pool of one lane: workers starting, idle and busy, and how a lower
//! target removes them (drain idle ones, or terminate whichever the platform picks).

use std::collections::{BTreeSet, VecDeque};

/// How a pool removes workers when its target drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScaleIn {
    /// Surge: starting and idle workers go at once; a busy worker goes once it runs out of work.
    Drain,
    /// Kubernetes / EC2 Auto Scaling: starting workers first, then the newest ready ones, busy
    /// or not (a Kubernetes ReplicaSet deletes the pods ready for the shortest time first; an
    /// Auto Scaling group does not look at work in progress either). Their jobs are lost.
    Terminate,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Starting,
    Idle,
    Busy { job: usize, since: f64 },
    Gone,
}

#[derive(Debug, Clone)]
struct Worker {
    created: f64,
    state: State,
}

/// A job whose worker was terminated under it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Killed {
    pub(crate) job: usize,
    /// When the lost attempt started.
    pub(crate) since: f64,
}

/// What a change of target did.
#[derive(Debug, Default)]
pub(crate) struct Resize {
    /// New workers, starting now.
    pub(crate) started: Vec<usize>,
    pub(crate) killed: Vec<Killed>,
}

/// Workers of one lane. Worker ids are indexes, never reused, increasing with creation time.
#[derive(Debug)]
pub(crate) struct Pool {
    workers: Vec<Worker>,
    scale_in: ScaleIn,
    /// Workers asked for and not up yet, oldest first.
    starting: Vec<usize>,
    /// Idle and busy workers.
    ready: BTreeSet<usize>,
    /// Idle workers, the longest idle first (it gets the next job, as with long polling).
    idle: VecDeque<usize>,
    target: usize,
    /// Worker-seconds of workers already gone.
    closed_secs: f64,
    peak: usize,
}

impl Pool {
    pub(crate) fn new(scale_in: ScaleIn) -> Pool {
        Pool {
            workers: Vec::new(),
            scale_in,
            starting: Vec::new(),
            ready: BTreeSet::new(),
            idle: VecDeque::new(),
            target: 0,
            closed_secs: 0.0,
            peak: 0,
        }
    }

    /// Starts with `n` workers already up (a warm pool at the beginning of the trace).
    pub(crate) fn warm_start(&mut self, now: f64, n: usize) {
        for _ in 0..n {
            let id = self.add(now, State::Idle);
            self.ready.insert(id);
            self.idle.push_back(id);
        }
        self.target = n;
        self.peak = self.peak.max(n);
    }

    pub(crate) fn target(&self) -> usize {
        self.target
    }

    pub(crate) fn starting(&self) -> usize {
        self.starting.len()
    }

    pub(crate) fn idle(&self) -> usize {
        self.idle.len()
    }

    pub(crate) fn busy(&self) -> usize {
        self.ready.len() - self.idle.len()
    }

    fn live(&self) -> usize {
        self.starting.len() + self.ready.len()
    }

    pub(crate) fn peak(&self) -> usize {
        self.peak
    }

    /// Worker-seconds used until `now`, start-ups included.
    pub(crate) fn worker_secs(&self, now: f64) -> f64 {
        let live: f64 = self.starting.iter().chain(&self.ready).map(|&id| now - self.workers[id].created).sum();
        self.closed_secs + live
    }

    /// Moves to `target` workers: starts new ones, or removes according to [`ScaleIn`].
    pub(crate) fn set_target(&mut self, now: f64, target: usize) -> Resize {
        let mut resize = Resize::default();
        self.target = target;
        while self.live() < target {
            let id = self.add(now, State::Starting);
            self.starting.push(id);
            resize.started.push(id);
        }
        self.peak = self.peak.max(self.live());
        while self.live() > target {
            let Some(removed) = self.remove_one(now) else { break };
            if let Some(killed) = removed {
                resize.killed.push(killed);
            }
        }
        resize
    }

    /// Removes the next worker to go. `None`: nothing removable (only busy workers, draining);
    /// `Some(Some(_))`: a busy worker was terminated.
    fn remove_one(&mut self, now: f64) -> Option<Option<Killed>> {
        if let Some(id) = self.starting.pop() {
            self.close(now, id);
            return Some(None);
        }
        let id = match self.scale_in {
            ScaleIn::Drain => self.idle.pop_front()?,
            ScaleIn::Terminate => *self.ready.last()?,
        };
        let killed = match self.workers[id].state {
            State::Busy { job, since } => Some(Killed { job, since }),
            _ => None,
        };
        self.idle.retain(|&i| i != id);
        self.ready.remove(&id);
        self.close(now, id);
        Some(killed)
    }

    /// A started worker is up. `false` if it was cancelled meanwhile.
    pub(crate) fn worker_ready(&mut self, id: usize) -> bool {
        if self.workers[id].state != State::Starting {
            return false;
        }
        self.starting.retain(|&i| i != id);
        self.workers[id].state = State::Idle;
        self.ready.insert(id);
        self.idle.push_back(id);
        true
    }

    /// Gives `job` to the longest-idle worker, if any.
    pub(crate) fn assign(&mut self, now: f64, job: usize) -> Option<usize> {
        let id = self.idle.pop_front()?;
        self.workers[id].state = State::Busy { job, since: now };
        Some(id)
    }

    /// A worker finished `job`. `false` if the worker was terminated meanwhile (a stale
    /// completion). A worker above the target takes the next job while `work_waiting`, and
    /// leaves once it runs out of work (drained) instead of idling.
    pub(crate) fn finish(&mut self, now: f64, id: usize, job: usize, work_waiting: bool) -> bool {
        match self.workers[id].state {
            State::Busy { job: running, .. } if running == job => {}
            _ => return false,
        }
        if self.live() > self.target && !work_waiting {
            self.ready.remove(&id);
            self.close(now, id);
        } else {
            self.workers[id].state = State::Idle;
            self.idle.push_back(id);
        }
        true
    }

    fn add(&mut self, now: f64, state: State) -> usize {
        self.workers.push(Worker { created: now, state });
        self.workers.len() - 1
    }

    fn close(&mut self, now: f64, id: usize) {
        self.closed_secs += now - self.workers[id].created;
        self.workers[id].state = State::Gone;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_removes_starting_then_idle_and_lets_busy_workers_finish() {
        let mut pool = Pool::new(ScaleIn::Drain);
        pool.warm_start(0.0, 3);
        let busy = [pool.assign(0.0, 10).unwrap(), pool.assign(0.0, 11).unwrap()];
        assert_eq!(pool.set_target(1.0, 5).started.len(), 2);
        let resize = pool.set_target(2.0, 1);
        assert!(resize.killed.is_empty(), "no busy worker is terminated");
        assert_eq!((pool.starting(), pool.idle(), pool.busy()), (0, 0, 2));
        assert!(pool.finish(5.0, busy[0], 10, false));
        assert_eq!(pool.busy(), 1, "the first to finish leaves: above target");
        assert!(pool.finish(6.0, busy[1], 11, false));
        assert_eq!(pool.idle(), 1, "the last one stays: at target");
        // 3 warm workers: 2 s, 5 s, 6 s; 2 cancelled start-ups: 1 s each.
        assert!((pool.worker_secs(6.0) - (2.0 + 5.0 + 6.0 + 2.0)).abs() < 1e-9);
    }

    #[test]
    fn a_worker_above_the_target_keeps_working_while_jobs_wait() {
        let mut pool = Pool::new(ScaleIn::Drain);
        pool.warm_start(0.0, 2);
        let busy = [pool.assign(0.0, 1).unwrap(), pool.assign(0.0, 2).unwrap()];
        pool.set_target(1.0, 1);
        assert!(pool.finish(2.0, busy[0], 1, true));
        assert_eq!(pool.assign(2.0, 3), Some(busy[0]), "work waits: it takes the next job");
        assert!(pool.finish(3.0, busy[0], 3, false));
        assert_eq!((pool.idle(), pool.busy()), (0, 1), "out of work: it leaves");
    }

    #[test]
    fn terminate_kills_the_newest_ready_workers_busy_or_not() {
        let mut pool = Pool::new(ScaleIn::Terminate);
        pool.warm_start(0.0, 2);
        pool.set_target(0.0, 3);
        let newest = 2;
        assert!(pool.worker_ready(newest));
        let first = pool.assign(1.0, 7).unwrap();
        assert_eq!(first, 0, "the longest idle gets the job");
        let second = pool.assign(1.0, 8).unwrap();
        assert_eq!(second, 1);
        let third = pool.assign(1.0, 9).unwrap();
        assert_eq!(third, newest);
        let resize = pool.set_target(4.0, 1);
        assert_eq!(resize.killed, vec![Killed { job: 9, since: 1.0 }, Killed { job: 8, since: 1.0 }]);
        assert!(!pool.finish(5.0, third, 9, false), "a terminated worker's completion is stale");
        assert!(pool.finish(5.0, first, 7, false));
    }

    #[test]
    fn a_cancelled_start_up_never_becomes_ready() {
        let mut pool = Pool::new(ScaleIn::Drain);
        let started = pool.set_target(0.0, 1).started;
        pool.set_target(1.0, 0);
        assert!(!pool.worker_ready(started[0]));
        assert_eq!(pool.peak(), 1);
    }
}
