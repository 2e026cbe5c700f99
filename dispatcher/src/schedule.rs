//! The decision loop: move jobs from the incoming queue into lanes, fairly across tenants.
//!
//! The dispatcher holds received incoming messages (in flight, their visibility extended while
//! held) in per-lane, per-tenant FIFOs and releases them round-robin across tenants, keeping each
//! lane queue only a little ahead of its workers. So a tenant's 10,000-document burst occupies
//! the lane only a few jobs deep, and another tenant's document is released on the next turn.
//! A message is acked on the incoming queue only after it was sent to its lane; a crash in
//! between delivers it twice, which the workers' idempotency absorbs.
//!
//! While the large lane has no worker at all, its jobs stay held, and idle small-lane workers
//! are lent to them ([`scaling::lending::lendable`]): a night-time scan is done at once by a worker that was idle
//! anyway, instead of waking the large lane for it.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use shared::backend::Backends;
use shared::config::{DispatcherConfig, LaneConfig};
use shared::domain::{JobId, JobMessage, JobStatus, Lane, PerLane, TenantId};
use shared::ports::{QueueDepth, Receipt, ReceivedMessage};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use scaling::lending::{LaneWorkers, asleep, lendable};
use scaling::work_units;

fn units_of(message: &JobMessage) -> f64 {
    work_units(message.size, message.page_estimate)
}

/// What the autoscaler needs to know about a lane's waiting work, published by the dispatcher
/// loop on every tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LaneLoad {
    /// Jobs held by the dispatcher for fair release.
    pub held_jobs: u64,
    pub held_units: f64,
    /// Jobs visible in the lane queue (released, not yet taken by a worker).
    pub released_waiting: u64,
    /// When the oldest waiting job was accepted.
    pub oldest_enqueued: Option<chrono::DateTime<Utc>>,
    /// Jobs admitted since start, and their work (cumulative: the reader takes differences).
    pub arrived_jobs: u64,
    pub arrived_units: f64,
    /// The tenants with the most jobs held, most first (at most [`BUSIEST`]).
    pub busiest: Vec<(TenantId, u64)>,
}

/// Tenants named on the load board (and in metrics) per lane.
pub(crate) const BUSIEST: usize = 5;

/// The dispatcher's published [`LaneLoad`] per lane. A std mutex: held only to copy or update.
pub(crate) type LoadBoard = Arc<std::sync::Mutex<BTreeMap<Lane, LaneLoad>>>;

/// The autoscaler's latest [`LaneWorkers`] per lane. Without an autoscaler it stays empty, and
/// the dispatcher then neither holds a lane back nor lends workers.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkerSnapshot {
    /// Increases with every snapshot: the dispatcher lends at most once per snapshot, since
    /// the workers it lent to still look idle in it.
    pub seq: u64,
    pub taken_at: Option<Instant>,
    pub lanes: BTreeMap<Lane, LaneWorkers>,
}

/// A snapshot older than this is ignored (the autoscaler stopped or stalls).
const SNAPSHOT_TTL: Duration = Duration::from_secs(5);

impl WorkerSnapshot {
    /// `lane`'s workers, if the snapshot is fresh and has them.
    fn lane(&self, lane: Lane, now: Instant) -> Option<LaneWorkers> {
        let fresh = self.taken_at.is_some_and(|at| now.saturating_duration_since(at) <= SNAPSHOT_TTL);
        if fresh { self.lanes.get(&lane).copied() } else { None }
    }
}

/// The autoscaler's published [`WorkerSnapshot`]. A std mutex: held only to copy or update.
pub(crate) type WorkerBoard = Arc<std::sync::Mutex<WorkerSnapshot>>;

/// The lane a job belongs in.
pub(crate) fn lane_for(message: &JobMessage, config: &LaneConfig) -> Lane {
    config.lane_of(message.size, message.page_estimate)
}

/// A job the dispatcher holds until its lane has room.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub message: JobMessage,
    /// The incoming message's id, to recognise its redelivery.
    pub message_id: String,
    pub body: Bytes,
    pub receipt: Receipt,
    /// When the incoming message's visibility was last extended.
    pub hidden_since: Instant,
}

/// What the dispatcher holds back: the jobs' ids (to recognise a redelivery) and the room left
/// in its bounded buffer (one permit per job).
struct Holding {
    ids: HashSet<JobId>,
    room: Arc<Semaphore>,
}

impl Holding {
    /// `jobs` left the dispatcher (sent to a lane): their ids and their room are free again.
    fn left(&mut self, jobs: &[Held]) {
        for held in jobs {
            self.ids.remove(&held.message.job_id);
        }
        self.room.add_permits(jobs.len());
    }
}

/// Per-tenant round-robin queues for one lane. Pure and synchronous, so tests can drive it.
#[derive(Debug, Default)]
pub(crate) struct FairQueue {
    by_tenant: BTreeMap<TenantId, VecDeque<Held>>,
    /// Tenants with waiting jobs, in turn order.
    turns: VecDeque<TenantId>,
    len: usize,
    /// Estimated work of the held jobs, in [`work_units`].
    units: f64,
}

impl FairQueue {
    pub(crate) fn push(&mut self, held: Held) {
        let tenant = held.message.tenant.clone();
        let queue = self.by_tenant.entry(tenant.clone()).or_default();
        if queue.is_empty() {
            self.turns.push_back(tenant);
        }
        self.units += units_of(&held.message);
        queue.push_back(held);
        self.len += 1;
    }

    /// The next job: the oldest of the tenant whose turn it is.
    pub(crate) fn pop(&mut self) -> Option<Held> {
        let tenant = self.turns.pop_front()?;
        let queue = self.by_tenant.get_mut(&tenant)?;
        let held = queue.pop_front();
        if queue.is_empty() {
            self.by_tenant.remove(&tenant);
        } else {
            self.turns.push_back(tenant);
        }
        if let Some(held) = &held {
            self.len -= 1;
            self.units = if self.len == 0 { 0.0 } else { (self.units - units_of(&held.message)).max(0.0) };
        }
        held
    }

    /// Estimated work of the held jobs.
    pub(crate) fn units(&self) -> f64 {
        self.units
    }

    /// When the longest-waiting held job was accepted.
    pub(crate) fn oldest_enqueued(&self) -> Option<chrono::DateTime<Utc>> {
        self.by_tenant.values().filter_map(|q| q.front()).map(|h| h.message.enqueued_at).min()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Jobs waiting per tenant, largest first, at most `n` tenants.
    pub(crate) fn busiest(&self, n: usize) -> Vec<(TenantId, usize)> {
        let mut counts: Vec<_> = self.by_tenant.iter().map(|(t, q)| (t.clone(), q.len())).collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts.truncate(n);
        counts
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Held> {
        self.by_tenant.values_mut().flat_map(|q| q.iter_mut())
    }
}

/// How deep a lane queue should be kept, from the rate its workers drain it.
#[derive(Debug, Clone)]
pub(crate) struct LaneGauge {
    /// Smoothed jobs per second leaving the lane queue.
    rate: f64,
    last_total: u64,
    released_since: u64,
    last_sample: Option<Instant>,
}

/// Jobs kept visible in a lane even when its drain rate is unknown or tiny.
const MIN_LANE_DEPTH: u64 = 4;

impl Default for LaneGauge {
    fn default() -> LaneGauge {
        LaneGauge { rate: 0.0, last_total: 0, released_since: 0, last_sample: None }
    }
}

impl LaneGauge {
    /// Records a depth sample (`total` = visible + in flight) and returns the target number of
    /// visible jobs: enough for `lookahead` of work at the observed rate.
    pub(crate) fn sample(&mut self, total: u64, now: Instant, lookahead: Duration) -> u64 {
        if let Some(last) = self.last_sample {
            let elapsed = now.duration_since(last).as_secs_f64();
            if elapsed > 0.0 {
                let drained = (self.last_total + self.released_since).saturating_sub(total) as f64;
                let instant_rate = drained / elapsed;
                // React fast to a rising rate, decay slowly.
                let weight = if instant_rate > self.rate { 0.5 } else { 0.1 };
                self.rate += weight * (instant_rate - self.rate);
            }
        }
        self.last_sample = Some(now);
        self.last_total = total;
        self.released_since = 0;
        ((self.rate * lookahead.as_secs_f64()).ceil() as u64).max(MIN_LANE_DEPTH)
    }

    pub(crate) fn released(&mut self, n: u64) {
        self.released_since += n;
    }
}

/// How often the loop looks at lane depths.
const TICK: Duration = Duration::from_millis(10);
/// Visibility of held incoming messages, and when to extend it.
const HOLD_VISIBILITY: Duration = Duration::from_secs(30);
const HOLD_REFRESH: Duration = Duration::from_secs(10);

/// Runs the dispatcher until `shutdown`. Held messages are simply left in flight on shutdown:
/// they become visible again and the next dispatcher picks them up.
pub(crate) async fn run(
    backends: Backends,
    lanes: LaneConfig,
    config: DispatcherConfig,
    load: LoadBoard,
    workers: WorkerBoard,
    shutdown: CancellationToken,
) {
    let mut holding = Holding { ids: HashSet::new(), room: Arc::new(Semaphore::new(config.buffer_limit)) };
    let (batches, mut inbox) = mpsc::channel::<Vec<ReceivedMessage>>(64);
    let receiver =
        tokio::spawn(receive_incoming(backends.clone(), Arc::clone(&holding.room), batches, shutdown.clone()));
    let sweeper = tokio::spawn(sweep_orphans(backends.clone(), config.clone(), shutdown.clone()));

    let mut fair: PerLane<FairQueue> = PerLane::default();
    let mut gauges: PerLane<LaneGauge> = PerLane::default();
    let lookahead = Duration::from_millis(config.lane_lookahead_ms);
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_refresh = Instant::now();
    // The worker snapshot last lent against.
    let mut lent_for = 0;
    info!("dispatcher started");

    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            batch = inbox.recv() => {
                let Some(batch) = batch else { break };
                admit(&backends, batch, &lanes, &mut fair, &mut holding, &load).await;
            }
            _ = ticks.tick() => {
                let (seq, small_workers, large_workers) = if config.lend_small_workers {
                    let now = Instant::now();
                    let snapshot = workers.lock().unwrap_or_else(|p| p.into_inner());
                    (snapshot.seq, snapshot.lane(Lane::Small, now), snapshot.lane(Lane::Large, now))
                } else {
                    (0, None, None)
                };
                let mut small_depth = None;
                for lane in Lane::ALL {
                    let queue = &mut fair[lane];
                    let gauge = &mut gauges[lane];
                    let hold = lane == Lane::Large && large_workers.is_some_and(asleep);
                    let depth = release(&backends, lane, queue, gauge, lookahead, hold, &mut holding).await;
                    if lane == Lane::Small {
                        small_depth = depth;
                    }
                    publish_load(&load, lane, queue, depth.map(|d| d.visible));
                }
                if let (Some(small), Some(large), Some(depth)) = (small_workers, large_workers, small_depth)
                    && seq != lent_for
                {
                    let small_waiting = fair[Lane::Small].len() as u64 + depth.visible;
                    let wanted = lendable(small, large, small_waiting, depth.in_flight);
                    let queue = &mut fair[Lane::Large];
                    if wanted > 0 && !queue.is_empty() {
                        lent_for = seq;
                        let jobs: Vec<Held> = std::iter::from_fn(|| queue.pop()).take(wanted).collect();
                        let sent = forward(&backends, Lane::Large, Lane::Small, jobs, queue, &mut holding).await;
                        gauges[Lane::Small].released(sent);
                    }
                }
                if last_refresh.elapsed() >= HOLD_REFRESH / 4 {
                    last_refresh = Instant::now();
                    refresh_held(&backends, &mut fair).await;
                }
            }
        }
    }
    sweeper.abort();
    // The receiver sees the cancellation after its current long poll; what it got meanwhile is
    // still in the inbox.
    let _ = receiver.await;
    hand_back_held(&backends, &mut fair, inbox).await;
}

/// Publishes a lane's held work for the autoscaler and as `surge_dispatcher_held_jobs`.
fn publish_load(load: &LoadBoard, lane: Lane, queue: &FairQueue, visible: Option<u64>) {
    metrics::gauge!(shared::series::DISPATCHER_HELD_JOBS, "lane" => lane.as_str()).set(queue.len() as f64);
    let mut board = load.lock().unwrap_or_else(|p| p.into_inner());
    let entry = board.entry(lane).or_default();
    entry.held_jobs = queue.len() as u64;
    entry.held_units = queue.units();
    entry.oldest_enqueued = queue.oldest_enqueued();
    entry.busiest = queue.busiest(BUSIEST).into_iter().map(|(t, n)| (t, n as u64)).collect();
    if let Some(visible) = visible {
        entry.released_waiting = visible;
    }
}

/// On shutdown, hands every held job (and every one still in the inbox) back to the incoming
/// queue at once, rather than after its visibility timeout.
async fn hand_back_held(
    backends: &Backends,
    fair: &mut PerLane<FairQueue>,
    mut inbox: mpsc::Receiver<Vec<ReceivedMessage>>,
) {
    inbox.close();
    let mut receipts: Vec<Receipt> =
        fair.values_mut().flat_map(FairQueue::iter_mut).map(|h| h.receipt.clone()).collect();
    while let Some(batch) = inbox.recv().await {
        receipts.extend(batch.into_iter().map(|m| m.receipt));
    }
    if !receipts.is_empty()
        && let Err(err) = backends.incoming.extend_visibility(&receipts, Duration::ZERO).await
    {
        warn!(error = %err, "could not hand held jobs back; they return after their visibility timeout");
    }
    info!(held = receipts.len(), "dispatcher stopped; held jobs returned to the incoming queue");
}

async fn receive_incoming(
    backends: Backends,
    room: Arc<Semaphore>,
    batches: mpsc::Sender<Vec<ReceivedMessage>>,
    shutdown: CancellationToken,
) {
    const BATCH: u32 = 256;
    while !shutdown.is_cancelled() {
        // Reserve buffer room before receiving; released as jobs leave the dispatcher.
        let Ok(permit) = room.acquire().await else { return };
        permit.forget();
        let extra = (1..BATCH).take_while(|_| room.try_acquire().map(|p| p.forget()).is_ok()).count() as u32;
        let want = (1 + extra) as usize;
        match backends.incoming.receive(want, HOLD_VISIBILITY, Duration::from_secs(1)).await {
            Ok(messages) => {
                room.add_permits(want - messages.len());
                if !messages.is_empty() && batches.send(messages).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                room.add_permits(want);
                warn!(error = %err, "incoming receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn admit(
    backends: &Backends,
    batch: Vec<ReceivedMessage>,
    lanes: &LaneConfig,
    fair: &mut PerLane<FairQueue>,
    holding: &mut Holding,
    load: &LoadBoard,
) {
    let mut duplicates = Vec::new();
    let mut undecodable = Vec::new();
    for received in batch {
        let message = match JobMessage::decode(&received.body) {
            Ok(message) => message,
            Err(err) => {
                warn!(error = %err, "undecodable incoming message; moving it to the dead-letter queue");
                undecodable.push(received);
                continue;
            }
        };
        if !holding.ids.insert(message.job_id) {
            // The same message again (its hold lapsed): keep holding it under the new receipt.
            // A different message for the same job is a true duplicate: drop it.
            let redelivered = fair
                .values_mut()
                .flat_map(FairQueue::iter_mut)
                .find(|h| h.message.job_id == message.job_id && h.message_id == received.message_id);
            match redelivered {
                Some(held) => {
                    held.receipt = received.receipt;
                    held.hidden_since = Instant::now();
                    holding.room.add_permits(1);
                }
                None => duplicates.push(received.receipt),
            }
            continue;
        }
        let lane = lane_for(&message, lanes);
        {
            let mut board = load.lock().unwrap_or_else(|p| p.into_inner());
            let entry = board.entry(lane).or_default();
            entry.arrived_jobs += 1;
            entry.arrived_units += units_of(&message);
        }
        let held = Held {
            message,
            message_id: received.message_id,
            body: received.body,
            receipt: received.receipt,
            hidden_since: Instant::now(),
        };
        fair[lane].push(held);
    }
    holding.room.add_permits(duplicates.len() + undecodable.len());
    if !duplicates.is_empty() {
        debug!(count = duplicates.len(), "acking duplicate incoming messages");
        let _ = backends.incoming.ack(&duplicates).await;
    }
    if !undecodable.is_empty() {
        let bodies = undecodable.iter().map(|m| m.body.clone()).collect();
        if backends.dead_letter.send_batch(bodies, Duration::ZERO).await.is_ok() {
            let receipts: Vec<_> = undecodable.into_iter().map(|m| m.receipt).collect();
            let _ = backends.incoming.ack(&receipts).await;
        }
    }
}

/// Releases held jobs into `lane`'s queue up to its target depth; none while `hold`. Returns the
/// lane queue's depth afterwards, or `None` if it could not be read.
async fn release(
    backends: &Backends,
    lane: Lane,
    queue: &mut FairQueue,
    gauge: &mut LaneGauge,
    lookahead: Duration,
    hold: bool,
    holding: &mut Holding,
) -> Option<QueueDepth> {
    let mut depth = match backends.lane(lane).depth().await {
        Ok(depth) => depth,
        Err(err) => {
            warn!(%lane, error = %err, "lane depth unavailable");
            return None;
        }
    };
    let target = gauge.sample(depth.visible + depth.in_flight, Instant::now(), lookahead);
    metrics::gauge!(shared::series::LANE_DEPTH, "lane" => lane.as_str(), "state" => "visible")
        .set(depth.visible as f64);
    metrics::gauge!(shared::series::LANE_DEPTH, "lane" => lane.as_str(), "state" => "in_flight")
        .set(depth.in_flight as f64);
    if hold || queue.is_empty() || depth.visible >= target {
        return Some(depth);
    }
    let room_in_lane = (target - depth.visible) as usize;
    let releasing: Vec<Held> = std::iter::from_fn(|| queue.pop()).take(room_in_lane).collect();
    let sent = forward(backends, lane, lane, releasing, queue, holding).await;
    gauge.released(sent);
    depth.visible += sent;
    Some(depth)
}

/// Sends `jobs` (held for lane `from`) to lane `to`'s queue, then acks them on the incoming
/// queue; if the send fails they go back into `queue`. Returns how many were sent.
async fn forward(
    backends: &Backends,
    from: Lane,
    to: Lane,
    jobs: Vec<Held>,
    queue: &mut FairQueue,
    holding: &mut Holding,
) -> u64 {
    if jobs.is_empty() {
        return 0;
    }
    let bodies: Vec<Bytes> = jobs.iter().map(|h| h.body.clone()).collect();
    if let Err(err) = backends.lane(to).send_batch(bodies, Duration::ZERO).await {
        warn!(lane = %to, error = %err, "lane send failed; keeping the jobs");
        for held in jobs {
            queue.push(held);
        }
        return 0;
    }
    let receipts: Vec<Receipt> = jobs.iter().map(|h| h.receipt.clone()).collect();
    if let Err(err) = backends.incoming.ack(&receipts).await {
        // The messages will come back and be sent again: a duplicate, absorbed by the workers.
        warn!(error = %err, "incoming ack failed");
    }
    holding.left(&jobs);
    for held in &jobs {
        let waited = (Utc::now() - held.message.enqueued_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::histogram!(shared::series::DISPATCH_WAIT_SECONDS, "lane" => from.as_str()).record(waited);
        if from != to {
            debug!(job = %held.message.job_id, %from, %to, "lent a worker of another lane");
        }
    }
    let sent = jobs.len() as u64;
    metrics::counter!(shared::series::DISPATCHED_TOTAL, "lane" => from.as_str()).increment(sent);
    if from != to {
        metrics::counter!(shared::series::LENT_JOBS_TOTAL, "from" => from.as_str(), "to" => to.as_str())
            .increment(sent);
    }
    sent
}

/// Keeps held messages hidden on the incoming queue while they wait for their turn.
async fn refresh_held(backends: &Backends, fair: &mut PerLane<FairQueue>) {
    let now = Instant::now();
    let mut due: Vec<&mut Held> = fair
        .values_mut()
        .flat_map(FairQueue::iter_mut)
        .filter(|h| now.duration_since(h.hidden_since) >= HOLD_REFRESH)
        .collect();
    if due.is_empty() {
        return;
    }
    let receipts: Vec<Receipt> = due.iter().map(|h| h.receipt.clone()).collect();
    match backends.incoming.extend_visibility(&receipts, HOLD_VISIBILITY).await {
        Ok(_) => due.iter_mut().for_each(|h| h.hidden_since = now),
        Err(err) => warn!(error = %err, "could not extend held messages"),
    }
}

/// Re-sends jobs that may have lost their message: `queued` jobs untouched for
/// `orphan_after_secs` (a crash between job record and queue send), and `processing` jobs whose
/// lease expired that long ago (their message was dropped while the worker that held it died).
/// Duplicates are harmless: workers ack copies of finished jobs.
async fn sweep_orphans(backends: Backends, config: DispatcherConfig, shutdown: CancellationToken) {
    let orphan_after = chrono::Duration::seconds(i64::try_from(config.orphan_after_secs).unwrap_or(i64::MAX));
    let every = Duration::from_secs(config.orphan_after_secs.max(1));
    loop {
        let mut after = None;
        let mut resent = 0usize;
        loop {
            let page = match backends.jobs.list_unfinished(after, 500).await {
                Ok(page) => page,
                Err(err) => {
                    warn!(error = %err, "orphan sweep failed");
                    break;
                }
            };
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let cutoff = Utc::now() - orphan_after;
            let orphans: Vec<_> = page
                .into_iter()
                .filter(|job| match job.status {
                    JobStatus::Queued => job.updated_at < cutoff,
                    JobStatus::Processing => job.lease.as_ref().is_none_or(|lease| lease.expires_at < cutoff),
                    _ => false,
                })
                .collect();
            if !orphans.is_empty() && crate::intake::enqueue(&backends, &orphans).await.is_ok() {
                resent += orphans.len();
            }
        }
        if resent > 0 {
            info!(resent, "re-sent queued jobs that may have lost their message");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::DocumentType;

    fn held(tenant: &str) -> Held {
        Held {
            message: JobMessage {
                job_id: JobId::new(),
                tenant: tenant.parse().unwrap(),
                document_type: DocumentType::Xml,
                size: 100,
                page_estimate: 1,
                enqueued_at: Utc::now(),
                deferrals: 0,
            },
            message_id: String::new(),
            body: Bytes::new(),
            receipt: Receipt(String::new()),
            hidden_since: Instant::now(),
        }
    }

    #[test]
    fn a_single_job_of_a_quiet_tenant_is_next_after_a_burst() {
        let mut queue = FairQueue::default();
        for _ in 0..10_000 {
            queue.push(held("burst"));
        }
        queue.push(held("quiet"));
        let first = queue.pop().unwrap();
        let second = queue.pop().unwrap();
        assert_eq!(first.message.tenant.as_str(), "burst");
        assert_eq!(second.message.tenant.as_str(), "quiet", "the quiet tenant's job is released second");
        assert_eq!(queue.len(), 9_999);
    }

    #[test]
    fn round_robin_keeps_each_tenants_order() {
        let mut queue = FairQueue::default();
        let a: Vec<_> = (0..3).map(|_| held("a")).collect();
        let b: Vec<_> = (0..2).map(|_| held("b")).collect();
        for h in a.iter().chain(&b) {
            queue.push(h.clone());
        }
        let order: Vec<_> = std::iter::from_fn(|| queue.pop()).map(|h| h.message.job_id).collect();
        let expected = vec![
            a[0].message.job_id,
            b[0].message.job_id,
            a[1].message.job_id,
            b[1].message.job_id,
            a[2].message.job_id,
        ];
        assert_eq!(order, expected);
        assert!(queue.is_empty());
        assert_eq!(queue.busiest(5), vec![]);
    }

    #[test]
    fn lanes_split_by_size_and_pages() {
        let config = LaneConfig { large_from_bytes: 1000, large_from_pages: 5 };
        let mut message = held("a").message;
        assert_eq!(lane_for(&message, &config), Lane::Small);
        message.size = 1000;
        assert_eq!(lane_for(&message, &config), Lane::Large);
        message.size = 10;
        message.page_estimate = 5;
        assert_eq!(lane_for(&message, &config), Lane::Large);
    }

    #[test]
    fn lane_target_follows_the_drain_rate() {
        let mut gauge = LaneGauge::default();
        let start = Instant::now();
        let lookahead = Duration::from_millis(100);
        assert_eq!(gauge.sample(0, start, lookahead), MIN_LANE_DEPTH);
        // 1000 released, all drained within a second: ~1000 jobs/s.
        gauge.released(1000);
        let target = gauge.sample(0, start + Duration::from_secs(1), lookahead);
        assert!(target >= 50, "target {target} grows with the rate");
        // Nothing drains for a while: the target decays back toward the minimum.
        let mut t = start + Duration::from_secs(1);
        let mut last = target;
        for _ in 0..100 {
            t += Duration::from_secs(1);
            last = gauge.sample(0, t, lookahead);
        }
        assert_eq!(last, MIN_LANE_DEPTH);
    }

    #[test]
    fn a_stale_snapshot_holds_nothing_back() {
        let asleep = LaneWorkers::default();
        let stale = WorkerSnapshot {
            seq: 1,
            taken_at: Some(Instant::now() - 2 * SNAPSHOT_TTL),
            lanes: BTreeMap::from([(Lane::Large, asleep)]),
        };
        assert_eq!(stale.lane(Lane::Large, Instant::now()), None, "a stale snapshot holds nothing back");
    }

    fn large_scan() -> Bytes {
        let message = JobMessage {
            job_id: JobId::new(),
            tenant: "acme".parse().unwrap(),
            document_type: DocumentType::Pdf,
            size: 3_000_000,
            page_estimate: 40,
            enqueued_at: Utc::now(),
            deferrals: 0,
        };
        Bytes::from(serde_json::to_vec(&message).unwrap())
    }

    async fn wait_for_depth(backends: &Backends, lane: Lane, visible: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let depth = backends.lane(lane).depth().await.unwrap();
            if depth.visible == visible {
                return;
            }
            assert!(Instant::now() < deadline, "{lane}: {depth:?}, expected {visible} visible");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sleeping_large_lane_holds_its_jobs_and_borrows_spare_small_workers() {
        let dir = tempfile::tempdir().unwrap();
        let backends = Backends::open_embedded(dir.path(), 3).unwrap();
        let workers = WorkerBoard::default();
        let publish = |small: LaneWorkers, large: LaneWorkers| {
            let mut snapshot = workers.lock().unwrap();
            snapshot.seq += 1;
            snapshot.taken_at = Some(Instant::now());
            snapshot.lanes = BTreeMap::from([(Lane::Small, small), (Lane::Large, large)]);
        };
        let shutdown = CancellationToken::new();
        let dispatcher = tokio::spawn(run(
            backends.clone(),
            LaneConfig::default(),
            DispatcherConfig::default(),
            LoadBoard::default(),
            workers.clone(),
            shutdown.clone(),
        ));
        // The large lane is asleep and the small lane has one worker: three scans are held.
        publish(LaneWorkers { workers: 1, ready: 1, idle: 1 }, LaneWorkers::default());
        backends.incoming.send_batch(vec![large_scan(), large_scan(), large_scan()], Duration::ZERO).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(backends.lane(Lane::Large).depth().await.unwrap().visible, 0, "held, not released");
        assert_eq!(backends.lane(Lane::Small).depth().await.unwrap().visible, 0, "no worker to spare");
        // Three idle small workers: two scans go to the small lane, one small worker stays idle.
        publish(LaneWorkers { workers: 3, ready: 3, idle: 3 }, LaneWorkers::default());
        wait_for_depth(&backends, Lane::Small, 2).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(backends.lane(Lane::Small).depth().await.unwrap().visible, 2, "lent once per snapshot");
        assert_eq!(backends.lane(Lane::Large).depth().await.unwrap().visible, 0);
        // The large lane wakes: the last scan goes to its own queue.
        publish(LaneWorkers { workers: 3, ready: 3, idle: 3 }, LaneWorkers { workers: 1, ready: 0, idle: 0 });
        wait_for_depth(&backends, Lane::Large, 1).await;
        assert_eq!(backends.lane(Lane::Small).depth().await.unwrap().visible, 2);
        shutdown.cancel();
        dispatcher.await.unwrap();
        assert_eq!(backends.incoming.depth().await.unwrap().visible, 0, "every scan was acked on incoming");
    }
}
