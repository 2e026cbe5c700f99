//! The discrete-event loop every policy shares: arrivals, worker start-ups, job completions,
//! redeliveries of lost jobs and autoscaler periods, processed in time order.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use crate::Lane;

use super::SimJob;
use super::models::{Autoscaler, LaneView};
use super::pool::{Pool, Resize};
use super::queue::LaneQueue;
use super::report::LaneTally;
use crate::Completion;
use crate::lending::{self, LaneWorkers};

/// Index of a lane in the engine's arrays.
pub(crate) fn lane_index(lane: Lane) -> usize {
    match lane {
        Lane::Small => 0,
        Lane::Large => 1,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum EventKind {
    Arrival {
        job: usize,
    },
    WorkerReady {
        lane: usize,
        worker: usize,
    },
    JobDone {
        lane: usize,
        worker: usize,
        job: usize,
    },
    /// A job lost with its worker becomes visible again (its visibility timeout expired).
    Redeliver {
        job: usize,
        /// The lane whose worker lost it (its home lane, or the small lane if borrowed).
        lane: usize,
    },
    ScalerPeriod {
        lane: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Event {
    at: f64,
    /// Insertion order: ties are processed first come, first served (deterministic).
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Event) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    fn cmp(&self, other: &Event) -> Ordering {
        self.at.total_cmp(&other.at).then(self.seq.cmp(&other.seq))
    }
}

/// Engine parameters that do not depend on the policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineSettings {
    pub(crate) startup_delay_secs: f64,
    pub(crate) visibility_timeout_secs: f64,
    /// Latency target per lane (for the time-over-target metric).
    pub(crate) latency_target_secs: [f64; 2],
    /// The trace's length: the simulation runs at least this long.
    pub(crate) horizon_secs: f64,
}

/// One lane's state and tallies.
struct LaneState {
    queue: LaneQueue,
    pool: Pool,
    scaler: Box<dyn Autoscaler>,
    /// Jobs received by a worker or awaiting redelivery, and their units.
    in_flight_jobs: u64,
    in_flight_units: f64,
    /// Since the scaler's previous period.
    arrived_jobs: u64,
    arrived_units: f64,
    completions: Vec<Completion>,
    tally: LaneTally,
    /// Up to when the time-over-target metric is accounted.
    accounted_until: f64,
}

/// The simulation of one policy on one trace.
pub(crate) struct Engine<'a> {
    jobs: &'a [SimJob],
    settings: EngineSettings,
    lanes: Vec<LaneState>,
    events: BinaryHeap<Reverse<Event>>,
    seq: u64,
    now: f64,
    completed: usize,
    last_completion: f64,
    /// Wait of each job's latest attempt (the successful one, in the end).
    waits: Vec<f64>,
}

impl<'a> Engine<'a> {
    /// An engine with one autoscaler per lane (in [`Lane::ALL`] order).
    pub(crate) fn new(jobs: &'a [SimJob], settings: EngineSettings, scalers: [Box<dyn Autoscaler>; 2]) -> Engine<'a> {
        let lanes = scalers
            .into_iter()
            .map(|scaler| {
                let mut pool = Pool::new(scaler.scale_in());
                pool.warm_start(0.0, scaler.initial_workers());
                LaneState {
                    queue: LaneQueue::default(),
                    pool,
                    scaler,
                    in_flight_jobs: 0,
                    in_flight_units: 0.0,
                    arrived_jobs: 0,
                    arrived_units: 0.0,
                    completions: Vec::new(),
                    tally: LaneTally::default(),
                    accounted_until: 0.0,
                }
            })
            .collect();
        Engine {
            jobs,
            settings,
            lanes,
            events: BinaryHeap::new(),
            seq: 0,
            now: 0.0,
            completed: 0,
            last_completion: 0.0,
            waits: vec![0.0; jobs.len()],
        }
    }

    /// Runs to the end: every job completed and the horizon reached. Returns the tallies per
    /// lane (in [`Lane::ALL`] order), the end time and the reasons of the scaling actions.
    pub(crate) fn run(mut self) -> (Vec<LaneTally>, f64, BTreeMap<String, u64>) {
        for (job, sim_job) in self.jobs.iter().enumerate() {
            self.schedule(sim_job.arrival, EventKind::Arrival { job });
        }
        for lane in 0..self.lanes.len() {
            self.schedule(0.0, EventKind::ScalerPeriod { lane });
        }
        while let Some(Reverse(event)) = self.events.pop() {
            if self.completed == self.jobs.len() && event.at >= self.settings.horizon_secs {
                break;
            }
            self.advance(event.at);
            self.handle(event.kind);
        }
        let end = self.settings.horizon_secs.max(self.last_completion);
        self.advance(end);
        self.finish(end)
    }

    fn finish(mut self, end: f64) -> (Vec<LaneTally>, f64, BTreeMap<String, u64>) {
        for (job, sim_job) in self.jobs.iter().enumerate() {
            self.lanes[lane_index(sim_job.lane)].tally.waits.push(self.waits[job]);
        }
        let mut reasons = BTreeMap::new();
        let tallies = self
            .lanes
            .into_iter()
            .map(|lane| {
                for (reason, count) in lane.scaler.reasons() {
                    *reasons.entry(reason).or_insert(0) += count;
                }
                let mut tally = lane.tally;
                tally.worker_secs = lane.pool.worker_secs(end);
                tally.peak_workers = lane.pool.peak();
                tally
            })
            .collect();
        (tallies, end, reasons)
    }

    fn schedule(&mut self, at: f64, kind: EventKind) {
        self.seq += 1;
        self.events.push(Reverse(Event { at, seq: self.seq, kind }));
    }

    /// Moves the clock to `to`, accounting the time each lane's oldest waiting job spends over
    /// the lane's latency target.
    fn advance(&mut self, to: f64) {
        self.now = to;
        for (index, lane) in self.lanes.iter_mut().enumerate() {
            if let Some(oldest) = lane.queue.oldest() {
                let over_from = self.jobs[oldest].arrival + self.settings.latency_target_secs[index];
                let from = lane.accounted_until.max(over_from);
                if to > from {
                    lane.tally.over_target_secs += to - from;
                }
            }
            lane.accounted_until = to;
        }
    }

    fn handle(&mut self, kind: EventKind) {
        match kind {
            EventKind::Arrival { job } => self.arrive(job),
            EventKind::WorkerReady { lane, worker } => {
                if self.lanes[lane].pool.worker_ready(worker) {
                    self.dispatch(lane);
                }
            }
            EventKind::JobDone { lane, worker, job } => self.job_done(lane, worker, job),
            EventKind::Redeliver { job, lane } => self.redeliver(job, lane),
            EventKind::ScalerPeriod { lane } => self.scaler_period(lane),
        }
    }

    fn arrive(&mut self, job: usize) {
        let sim_job = &self.jobs[job];
        let lane = lane_index(sim_job.lane);
        let state = &mut self.lanes[lane];
        state.queue.push(sim_job.tenant, job, sim_job.units);
        state.arrived_jobs += 1;
        state.arrived_units += sim_job.units;
        self.dispatch(lane);
    }

    /// Gives waiting jobs to idle workers: the lane's own, then idle small-lane workers lent to
    /// the large lane.
    fn dispatch(&mut self, lane: usize) {
        self.dispatch_within(lane);
        self.lend();
    }

    /// The dispatcher's lending rule ([`lending::lendable`]), for every policy alike: large jobs
    /// waiting while the large lane has no worker at all go to idle small-lane workers, if no
    /// small job waits and another small-lane worker stays idle. Their arrivals and their cost
    /// count in the large lane; the small workers are busy with them.
    fn lend(&mut self) {
        let (small, large) = (lane_index(Lane::Small), lane_index(Lane::Large));
        let workers = |pool: &Pool| {
            let ready = pool.idle() + pool.busy();
            LaneWorkers { workers: pool.target().max(ready + pool.starting()), ready, idle: pool.idle() }
        };
        let (small_state, large_state) = (&self.lanes[small], &self.lanes[large]);
        let wanted = lending::lendable(
            workers(&small_state.pool),
            workers(&large_state.pool),
            small_state.queue.len() as u64,
            small_state.in_flight_jobs,
        );
        for _ in 0..wanted {
            let jobs = self.jobs;
            let Some(job) = self.lanes[large].queue.pop(|j| jobs[j].units) else { return };
            self.start(small, job);
        }
    }

    /// Gives waiting jobs of `lane` to its idle workers.
    fn dispatch_within(&mut self, lane: usize) {
        loop {
            let state = &mut self.lanes[lane];
            if state.queue.is_empty() || state.pool.idle() == 0 {
                return;
            }
            let jobs = self.jobs;
            let Some(job) = state.queue.pop(|j| jobs[j].units) else { return };
            self.start(lane, job);
        }
    }

    /// An idle worker of `lane` starts `job` (popped from its queue).
    fn start(&mut self, lane: usize, job: usize) {
        let jobs = self.jobs;
        let state = &mut self.lanes[lane];
        let Some(worker) = state.pool.assign(self.now, job) else { return };
        state.in_flight_jobs += 1;
        state.in_flight_units += jobs[job].units;
        self.waits[job] = self.now - jobs[job].arrival;
        let done_at = self.now + jobs[job].service_secs;
        self.schedule(done_at, EventKind::JobDone { lane, worker, job });
    }

    fn job_done(&mut self, lane: usize, worker: usize, job: usize) {
        let now = self.now;
        let sim_job = &self.jobs[job];
        let state = &mut self.lanes[lane];
        let work_waiting = !state.queue.is_empty();
        if !state.pool.finish(now, worker, job, work_waiting) {
            return;
        }
        state.in_flight_jobs -= 1;
        state.in_flight_units = (state.in_flight_units - sim_job.units).max(0.0);
        // The cost of a lent job is the cost of its own lane's work, as the autoscaler counts it.
        let home = lane_index(sim_job.lane);
        self.lanes[home]
            .completions
            .push(Completion { duration: Duration::from_secs_f64(sim_job.service_secs), units: sim_job.units });
        self.lanes[home].tally.completed += 1;
        self.completed += 1;
        self.last_completion = now;
        self.dispatch(lane);
    }

    fn redeliver(&mut self, job: usize, lost_in: usize) {
        let sim_job = &self.jobs[job];
        let state = &mut self.lanes[lost_in];
        state.in_flight_jobs -= 1;
        state.in_flight_units = (state.in_flight_units - sim_job.units).max(0.0);
        let lane = lane_index(sim_job.lane);
        self.lanes[lane].queue.push_again(sim_job.tenant, job, sim_job.units);
        self.dispatch(lane);
    }

    fn scaler_period(&mut self, lane: usize) {
        let now = self.now;
        let state = &mut self.lanes[lane];
        let oldest_wait = state.queue.oldest().map_or(0.0, |job| now - self.jobs[job].arrival);
        let view = LaneView {
            now,
            visible_jobs: state.queue.len() as u64,
            visible_units: state.queue.units(),
            in_flight_jobs: state.in_flight_jobs,
            in_flight_units: state.in_flight_units,
            oldest_wait,
            arrived_jobs: state.arrived_jobs,
            arrived_units: state.arrived_units,
            completions: &state.completions,
            starting: state.pool.starting(),
            idle: state.pool.idle(),
            busy: state.pool.busy(),
        };
        let target = state.scaler.evaluate(&view);
        state.arrived_jobs = 0;
        state.arrived_units = 0.0;
        state.completions.clear();
        let period = state.scaler.period_secs();
        if target != state.pool.target() {
            state.tally.scaling_actions += 1;
            let resize = state.pool.set_target(now, target);
            self.resized(lane, resize);
        }
        self.schedule(now + period, EventKind::ScalerPeriod { lane });
    }

    /// Schedules the start-ups of new workers; a job lost with a terminated worker becomes
    /// visible again after the visibility timeout (its work is redone).
    fn resized(&mut self, lane: usize, resize: Resize) {
        let ready_at = self.now + self.settings.startup_delay_secs;
        for worker in resize.started {
            self.schedule(ready_at, EventKind::WorkerReady { lane, worker });
        }
        let visible_at = self.now + self.settings.visibility_timeout_secs;
        for killed in resize.killed {
            let tally = &mut self.lanes[lane].tally;
            tally.jobs_interrupted += 1;
            tally.work_lost_secs += self.now - killed.since;
            self.schedule(visible_at, EventKind::Redeliver { job: killed.job, lane });
        }
        self.dispatch(lane);
    }
}
