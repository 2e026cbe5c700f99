//! The autoscaler loop: every second, observe each lane (waiting work from the dispatcher,
//! workers from their heartbeats, cost of work from their completions), ask the scaling policy
//! for a worker count and hand it to the scale target. A restarted dispatcher first adopts the
//! workers the scale target already has ([`ScalingPolicy::adopt`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use shared::config::LaneConfig;
use shared::domain::{Lane, TenantId};
use shared::ports::{PoolSize, ScaleTarget, WorkerBeat};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::board::{LaneSample, Sample, SharedBoard, quantile};
use crate::lifecycle;
use scaling::lending::LaneWorkers;
use scaling::{Completion, Decision, LaneObservation, ScalingConfig, ScalingPolicy, work_units};

use crate::schedule::{LaneLoad, LoadBoard, WorkerBoard};

/// How often the autoscaler decides.
const TICK: Duration = Duration::from_secs(1);

/// What the previous tick saw, to turn cumulative counters and repeated beats into deltas.
#[derive(Default)]
struct Previous {
    arrivals: BTreeMap<Lane, (u64, f64)>,
    /// The last beat time seen per worker: a beat's completions are counted once.
    beats: HashMap<Uuid, chrono::DateTime<Utc>>,
    /// Each worker's `completed_total` and `failed_total` when last seen.
    totals: HashMap<Uuid, (u64, u64)>,
}

/// What the autoscaler reads and publishes besides the scale target.
pub(crate) struct Boards {
    /// Waiting work per lane, published by the dispatcher loop.
    pub load: LoadBoard,
    /// Workers per lane, published here for the dispatcher (which lends idle small workers).
    pub workers: WorkerBoard,
    /// The operator's dashboard.
    pub dashboard: SharedBoard,
}

/// The settings the autoscaler runs with.
pub(crate) struct Settings {
    pub scaling: ScalingConfig,
    /// Which lane a document belongs in: a completion teaches its own lane's cost, whichever
    /// lane's worker did it (a large document done by a lent small worker).
    pub lanes: LaneConfig,
}

/// Logs a decision (a change at info, a hold at debug) and exports it as metrics:
/// `surge_workers_desired{lane}` and
/// `surge_scaling_decisions_total{lane, direction, reason}`.
fn record(lane: Lane, decision: &Decision) {
    if decision.changed() {
        info!(%lane, from = decision.previous, to = decision.desired, reason = %decision.reason, "scaling");
    } else {
        debug!(%lane, workers = decision.desired, reason = %decision.reason, "scaling decision");
    }
    metrics::gauge!(shared::series::WORKERS_DESIRED, "lane" => lane.as_str()).set(decision.desired as f64);
    metrics::counter!(
        shared::series::SCALING_DECISIONS_TOTAL,
        "lane" => lane.as_str(),
        "direction" => decision.direction(),
        "reason" => decision.reason.kind(),
    )
    .increment(1);
}

/// Runs until `shutdown`.
pub(crate) async fn run(
    target: Arc<dyn ScaleTarget>,
    settings: Settings,
    boards: Boards,
    mut alive: lifecycle::AliveWorkers,
    shutdown: CancellationToken,
) {
    let Boards { load, workers: workers_seen, dashboard: board } = boards;
    let Settings { scaling: config, lanes } = settings;
    let started = Instant::now();
    let mut policies: BTreeMap<Lane, ScalingPolicy> =
        Lane::ALL.iter().map(|&l| (l, ScalingPolicy::new(config.lane(l).clone()))).collect();
    let mut previous = Previous::default();
    let mut ticks = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let beats = alive.borrow_and_update().clone();
        let completions = new_completions(&beats, &mut previous, &lanes);
        let finished = finished_since(&beats, &mut previous.totals);
        let loads = load.lock().unwrap_or_else(|p| p.into_inner()).clone();
        publish_busiest(&loads, &board);
        let mut sample = Sample { at: Utc::now(), lanes: BTreeMap::new() };
        let mut seen: BTreeMap<Lane, LaneWorkers> = BTreeMap::new();
        let tick = Tick {
            beats: &beats,
            completions: &completions,
            finished: &finished,
            loads: &loads,
            elapsed: started.elapsed(),
        };
        for (&lane, policy) in policies.iter_mut() {
            if let Some((workers, lane_sample)) = decide_lane(target.as_ref(), lane, policy, &tick, &mut previous).await
            {
                seen.insert(lane, workers);
                sample.lanes.insert(lane, lane_sample);
            }
        }
        board.lock().unwrap_or_else(|p| p.into_inner()).push(sample);
        let mut snapshot = workers_seen.lock().unwrap_or_else(|p| p.into_inner());
        snapshot.seq += 1;
        snapshot.taken_at = Some(Instant::now());
        snapshot.lanes = seen;
    }
}

/// What one tick saw, the input of every lane's decision.
struct Tick<'a> {
    beats: &'a [WorkerBeat],
    completions: &'a BTreeMap<Lane, Vec<Completion>>,
    finished: &'a BTreeMap<Lane, (u64, u64)>,
    loads: &'a BTreeMap<Lane, LaneLoad>,
    /// Since the autoscaler started.
    elapsed: Duration,
}

/// Observes one lane, lets its policy decide, records and applies the decision. Returns the
/// lane's workers (for the dispatcher's lending) and its dashboard sample; `None` when the
/// scale target cannot be read this tick.
async fn decide_lane(
    target: &dyn ScaleTarget,
    lane: Lane,
    policy: &mut ScalingPolicy,
    tick: &Tick<'_>,
    previous: &mut Previous,
) -> Option<(LaneWorkers, LaneSample)> {
    let pool = match target.observe(lane).await {
        Ok(pool) => pool,
        Err(err) => {
            warn!(%lane, error = %err, "scale target unavailable");
            return None;
        }
    };
    // Before the policy's first decision only; a no-op after it.
    if policy.adopt(pool.desired) {
        info!(%lane, workers = pool.desired, "adopting the workers the scale target already has");
    }
    let lane_beats: Vec<&WorkerBeat> =
        tick.beats.iter().filter(|b| b.lanes.first() == Some(&lane) && !b.draining).collect();
    let lane_completions = tick.completions.get(&lane).cloned().unwrap_or_default();
    let durations = record_completions(lane, &lane_completions, tick.finished.get(&lane).copied());
    let load = tick.loads.get(&lane).cloned().unwrap_or_default();
    let observation = observe(lane, load, &lane_beats, pool.running + pool.pending, lane_completions, previous);
    let decision = policy.decide(tick.elapsed, &observation);
    record(lane, &decision);
    let (ready, busy) = (observation.ready_workers, observation.busy_workers);
    let workers = decision.desired.max(pool.running + pool.pending).max(ready);
    let backlog_secs = policy.backlog_secs(&observation);
    metrics::gauge!(shared::series::WORKERS_RUNNING, "lane" => lane.as_str()).set(lane_beats.len() as f64);
    metrics::gauge!(shared::series::BACKLOG_JOBS, "lane" => lane.as_str()).set(observation.visible_jobs as f64);
    metrics::gauge!(shared::series::BACKLOG_SECONDS, "lane" => lane.as_str()).set(backlog_secs);
    let sample = LaneSample {
        backlog_jobs: observation.visible_jobs,
        backlog_secs,
        in_flight_jobs: observation.in_flight_jobs,
        desired: decision.desired,
        running: lane_beats.len(),
        completed: tick.finished.get(&lane).map_or(0, |(done, _)| *done),
        duration_p50_secs: quantile(&durations, 0.5),
        duration_p95_secs: quantile(&durations, 0.95),
        duration_p99_secs: quantile(&durations, 0.99),
    };
    apply(target, lane, &decision, &pool, &observation, &lane_beats).await;
    Some((LaneWorkers { workers, ready, idle: ready.saturating_sub(busy) }, sample))
}

/// Exports a lane's completions since the last tick (durations, finished and failed counts) and
/// returns their durations, sorted.
fn record_completions(lane: Lane, completions: &[Completion], finished: Option<(u64, u64)>) -> Vec<f64> {
    let mut durations: Vec<f64> = completions.iter().map(|c| c.duration.as_secs_f64()).collect();
    durations.sort_by(f64::total_cmp);
    for &secs in &durations {
        metrics::histogram!(shared::series::JOB_DURATION_SECONDS, "lane" => lane.as_str()).record(secs);
    }
    let (finished, failed) = finished.unwrap_or((0, 0));
    metrics::counter!(shared::series::JOBS_COMPLETED_TOTAL, "lane" => lane.as_str()).increment(finished);
    metrics::counter!(shared::series::JOBS_FINISHED_TOTAL, "lane" => lane.as_str(), "status" => "succeeded")
        .increment(finished.saturating_sub(failed));
    metrics::counter!(shared::series::JOBS_FINISHED_TOTAL, "lane" => lane.as_str(), "status" => "failed")
        .increment(failed);
    durations
}

/// Hands a decision to the scale target: a new size, or, at the same size, the retirement of
/// workers above the target once nothing waits (they leave as they run out of work).
async fn apply(
    target: &dyn ScaleTarget,
    lane: Lane,
    decision: &Decision,
    pool: &PoolSize,
    observation: &LaneObservation,
    lane_beats: &[&WorkerBeat],
) {
    let resize = decision.desired != pool.desired;
    let retire = pool.running > decision.desired && observation.visible_jobs == 0;
    if !resize && !retire {
        return;
    }
    let mut idle: Vec<WorkerBeat> =
        lane_beats.iter().filter(|b| b.in_flight.is_empty()).map(|b| (*b).clone()).collect();
    // Longest-running idle workers go first: the young ones are the likeliest to be needed
    // again soon and have paid their start-up cost most recently.
    idle.sort_by_key(|b| b.started_at);
    let applied = if resize {
        target.set_desired(lane, decision.desired, &idle).await
    } else {
        target.retire_idle(lane, decision.desired, &idle).await
    };
    if let Err(err) = applied {
        warn!(%lane, error = %err, "could not resize the pool");
    }
}

/// The busiest tenants over all lanes, on the board and as `surge_tenant_backlog_jobs{tenant}`.
/// Only the busiest few get a series; the exporter drops a tenant's series a while after it
/// left them (gauges idle out), so the label set stays bounded.
fn publish_busiest(loads: &BTreeMap<Lane, LaneLoad>, board: &SharedBoard) {
    let mut by_tenant: BTreeMap<TenantId, u64> = BTreeMap::new();
    for load in loads.values() {
        for (tenant, jobs) in &load.busiest {
            *by_tenant.entry(tenant.clone()).or_default() += jobs;
        }
    }
    let mut busiest: Vec<(TenantId, u64)> = by_tenant.into_iter().collect();
    busiest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    busiest.truncate(crate::schedule::BUSIEST);
    for (tenant, jobs) in &busiest {
        metrics::gauge!(shared::series::TENANT_BACKLOG_JOBS, "tenant" => tenant.to_string()).set(*jobs as f64);
    }
    board.lock().unwrap_or_else(|p| p.into_inner()).set_busiest(busiest);
}

/// The completions in beats not seen before, by the lane each document belongs in.
fn new_completions(
    beats: &[WorkerBeat],
    previous: &mut Previous,
    lanes: &LaneConfig,
) -> BTreeMap<Lane, Vec<Completion>> {
    let mut by_lane: BTreeMap<Lane, Vec<Completion>> = BTreeMap::new();
    for beat in beats {
        if previous.beats.insert(beat.worker_id, beat.last_seen) == Some(beat.last_seen) {
            continue;
        }
        for done in &beat.completed {
            by_lane.entry(lanes.lane_of(done.size, done.pages)).or_default().push(Completion {
                duration: Duration::from_secs_f64(done.seconds.max(0.0)),
                units: work_units(done.size, done.pages),
            });
        }
    }
    let alive: std::collections::HashSet<Uuid> = beats.iter().map(|b| b.worker_id).collect();
    previous.beats.retain(|id, _| alive.contains(id));
    by_lane
}

/// Jobs finished and, of those, failed per lane (a worker's first lane) since the previous
/// tick, from the workers' running totals. A worker seen for the first time counts from zero:
/// it started after the previous tick or the dispatcher did.
fn finished_since(beats: &[WorkerBeat], totals: &mut HashMap<Uuid, (u64, u64)>) -> BTreeMap<Lane, (u64, u64)> {
    let mut by_lane: BTreeMap<Lane, (u64, u64)> = BTreeMap::new();
    for beat in beats {
        let now = (beat.completed_total, beat.failed_total);
        let before = totals.insert(beat.worker_id, now).unwrap_or((0, 0));
        if let Some(&lane) = beat.lanes.first() {
            let entry = by_lane.entry(lane).or_default();
            entry.0 += now.0.saturating_sub(before.0);
            entry.1 += now.1.saturating_sub(before.1);
        }
    }
    let alive: std::collections::HashSet<Uuid> = beats.iter().map(|b| b.worker_id).collect();
    totals.retain(|id, _| alive.contains(id));
    by_lane
}

fn observe(
    lane: Lane,
    load: LaneLoad,
    beats: &[&WorkerBeat],
    workers_asked: usize,
    completions: Vec<Completion>,
    previous: &mut Previous,
) -> LaneObservation {
    let (last_jobs, last_units) =
        previous.arrivals.insert(lane, (load.arrived_jobs, load.arrived_units)).unwrap_or_default();
    let mean_units = if load.held_jobs > 0 { load.held_units / load.held_jobs as f64 } else { 1.0 };
    let in_flight_jobs: u64 = beats.iter().map(|b| b.in_flight.len() as u64).sum();
    let busy_workers = beats.iter().filter(|b| !b.in_flight.is_empty()).count();
    LaneObservation {
        visible_jobs: load.held_jobs + load.released_waiting,
        visible_units: load.held_units + load.released_waiting as f64 * mean_units,
        in_flight_jobs,
        in_flight_units: in_flight_jobs as f64 * mean_units,
        oldest_wait: load.oldest_enqueued.and_then(|at| (Utc::now() - at).to_std().ok()).unwrap_or_default(),
        arrived_jobs: load.arrived_jobs.saturating_sub(last_jobs),
        arrived_units: (load.arrived_units - last_units).max(0.0),
        completions,
        ready_workers: beats.len(),
        busy_workers,
        starting_workers: workers_asked.saturating_sub(beats.len()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use shared::domain::JobId;
    use shared::ports::{CompletedJob, InFlightJob, PoolSize, ScaleError};

    use super::*;

    fn beat(worker_id: Uuid, lane: Lane, completed_total: u64, failed_total: u64) -> WorkerBeat {
        WorkerBeat {
            worker_id,
            lanes: vec![lane],
            pid: 1,
            host: "test".into(),
            started_at: Utc::now(),
            last_seen: Utc::now(),
            in_flight: Vec::new(),
            draining: false,
            completed: Vec::new(),
            completed_total,
            failed_total,
        }
    }

    #[test]
    fn a_lent_job_teaches_its_own_lanes_cost() {
        // A small-lane worker did an invoice and, lent to the sleeping large lane, a 40-page scan.
        let mut small = beat(Uuid::new_v4(), Lane::Small, 2, 0);
        small.completed = vec![
            CompletedJob { lane: Lane::Small, seconds: 0.5, size: 10_000, pages: 1 },
            CompletedJob { lane: Lane::Small, seconds: 150.0, size: 3_000_000, pages: 40 },
        ];
        let by_lane = new_completions(&[small], &mut Previous::default(), &LaneConfig::default());
        let durations = |lane| by_lane[&lane].iter().map(|c| c.duration.as_secs_f64()).collect::<Vec<_>>();
        assert_eq!(durations(Lane::Small), vec![0.5]);
        assert_eq!(durations(Lane::Large), vec![150.0], "not the small lane's cost");
    }

    #[test]
    fn throughput_comes_from_running_totals_so_a_missed_beat_loses_nothing() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut totals = HashMap::new();
        let first = finished_since(&[beat(a, Lane::Small, 3, 1), beat(b, Lane::Large, 2, 0)], &mut totals);
        assert_eq!(first, BTreeMap::from([(Lane::Small, (3, 1)), (Lane::Large, (2, 0))]));
        // Several beats of `a` went by unread: the difference of the totals still counts them.
        let second = finished_since(&[beat(a, Lane::Small, 10, 2), beat(b, Lane::Large, 2, 0)], &mut totals);
        assert_eq!(second, BTreeMap::from([(Lane::Small, (7, 1)), (Lane::Large, (0, 0))]));
        // A worker that left is forgotten; one that comes back new counts from zero.
        let third = finished_since(&[beat(a, Lane::Small, 10, 2)], &mut totals);
        assert_eq!(third, BTreeMap::from([(Lane::Small, (0, 0))]));
        assert!(!totals.contains_key(&b));
    }

    /// A scale target that already runs `running` small workers and records every resize.
    struct Recording {
        running: usize,
        calls: Mutex<Vec<(&'static str, Lane, usize)>>,
    }

    #[async_trait]
    impl ScaleTarget for Recording {
        fn kind(&self) -> &'static str {
            "recording"
        }

        async fn observe(&self, lane: Lane) -> Result<PoolSize, ScaleError> {
            let running = if lane == Lane::Small { self.running } else { 0 };
            Ok(PoolSize { desired: running, running, pending: 0 })
        }

        async fn set_desired(&self, lane: Lane, desired: usize, _idle: &[WorkerBeat]) -> Result<(), ScaleError> {
            self.calls.lock().unwrap().push(("set_desired", lane, desired));
            Ok(())
        }

        async fn retire_idle(&self, lane: Lane, desired: usize, _idle: &[WorkerBeat]) -> Result<(), ScaleError> {
            self.calls.lock().unwrap().push(("retire_idle", lane, desired));
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_restarted_autoscaler_keeps_the_workers_it_finds() {
        // Twelve small workers, ten of them busy, and nothing waiting: what a dispatcher finds
        // when it restarts under load. Starting from its minimum it would drain the idle two at
        // once and the busy ten as they finish.
        let target = Arc::new(Recording { running: 12, calls: Mutex::new(Vec::new()) });
        let beats: Vec<WorkerBeat> = (0..12)
            .map(|n| {
                let mut beat = beat(Uuid::new_v4(), Lane::Small, 0, 0);
                if n < 10 {
                    let job = InFlightJob {
                        job_id: JobId::new(),
                        lane: Lane::Small,
                        receipt: format!("r{n}"),
                        lease_token: Uuid::new_v4(),
                    };
                    beat.in_flight.push(job);
                }
                beat
            })
            .collect();
        let (_beats, alive) = tokio::sync::watch::channel(beats);
        let shutdown = CancellationToken::new();
        let workers_seen = WorkerBoard::default();
        let boards =
            Boards { load: LoadBoard::default(), workers: workers_seen.clone(), dashboard: SharedBoard::default() };
        let run = tokio::spawn(run(
            target.clone(),
            Settings { scaling: ScalingConfig::default(), lanes: LaneConfig::default() },
            boards,
            alive,
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        shutdown.cancel();
        run.await.unwrap();
        let calls = target.calls.lock().unwrap();
        let small: Vec<_> = calls.iter().filter(|(_, lane, _)| *lane == Lane::Small).collect();
        assert!(small.iter().all(|(_, _, desired)| *desired >= 12), "{small:?}");
        // What the dispatcher is told: twelve small workers beating, two of them idle; no large one.
        let snapshot = workers_seen.lock().unwrap().clone();
        assert!(snapshot.seq >= 2, "published every tick: {snapshot:?}");
        assert_eq!(snapshot.lanes[&Lane::Small], LaneWorkers { workers: 12, ready: 12, idle: 2 });
        assert_eq!(snapshot.lanes[&Lane::Large], LaneWorkers { workers: 0, ready: 0, idle: 0 });
    }

    /// The scaling policy's own test lane: 60 s target, 20 s start-up.
    fn policy_config() -> scaling::LaneScalingConfig {
        scaling::LaneScalingConfig {
            min_workers: 1,
            max_workers: Some(50),
            latency_target_secs: 60,
            scale_down_stabilisation_secs: 120,
            scale_down_min_saving_worker_secs: 100,
            activation_wait_secs: 30,
            startup_delay_secs: 20,
            backlog_drain_secs: 60,
            scale_up_min_wait_secs: 0,
            initial_cost_secs_per_unit: 1.0,
            ..scaling::LaneScalingConfig::default()
        }
    }

    /// 600 one-unit jobs waiting.
    fn waiting() -> LaneObservation {
        LaneObservation { visible_jobs: 600, visible_units: 600.0, ..LaneObservation::default() }
    }

    #[test]
    fn decisions_can_be_recorded_without_a_recorder() {
        let mut policy = ScalingPolicy::new(policy_config());
        record(Lane::Small, &policy.decide(Duration::ZERO, &waiting()));
    }

    #[test]
    fn decisions_are_exported_with_direction_and_reason() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let mut policy = ScalingPolicy::new(policy_config());
        metrics::with_local_recorder(&recorder, || {
            record(Lane::Small, &policy.decide(Duration::ZERO, &waiting()));
            record(Lane::Small, &policy.decide(Duration::from_secs(1), &waiting()));
        });
        let text = handle.render();
        for line in [
            r#"surge_scaling_decisions_total{lane="small",direction="up",reason="demand"} 1"#,
            r#"surge_scaling_decisions_total{lane="small",direction="hold",reason="demand"} 1"#,
            r#"surge_workers_desired{lane="small"} 10"#,
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }
}
