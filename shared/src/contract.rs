//! Contract test suites for the ports. Every backend runs the same suites (see each backend's
//! tests); a new backend is done when it passes them. Failures panic with a message saying which
//! clause of the contract broke.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use uuid::Uuid;

use crate::domain::{DocumentType, Job, JobId, JobStatus, Lease, NewJob, TenantId, TransitionError};
use crate::ports::{ApiKey, BlobStore, CreateOutcome, JobStore, Queue, QueueError, StoreError, TenantDirectory};

/// A queue and its dead-letter queue, fresh and empty, as a backend's test provides them.
pub struct QueueUnderTest {
    pub queue: Arc<dyn Queue>,
    pub dead_letter: Arc<dyn Queue>,
    /// The queue's redrive threshold.
    pub max_receives: u32,
}

const NO_WAIT: Duration = Duration::ZERO;
const LONG: Duration = Duration::from_secs(60);

fn bodies(n: usize, tag: &str) -> Vec<Bytes> {
    (0..n).map(|i| Bytes::from(format!("{tag}-{i}"))).collect()
}

async fn receive_all(queue: &dyn Queue, expected: usize, visibility: Duration) -> Vec<crate::ports::ReceivedMessage> {
    let mut got = Vec::new();
    for _ in 0..50 {
        if got.len() >= expected {
            break;
        }
        let batch = queue.receive(expected - got.len(), visibility, Duration::from_millis(200)).await.expect("receive");
        got.extend(batch);
    }
    got
}

/// Runs every queue clause; `fresh` must return a new, empty pair on each call.
pub async fn queue_contract(fresh: impl Fn() -> QueueUnderTest) {
    queue_delivers_batches_once_per_visibility(fresh()).await;
    queue_ack_deletes_and_is_idempotent(fresh()).await;
    queue_redelivers_after_visibility_timeout(fresh()).await;
    queue_extend_visibility_and_stale_receipts(fresh()).await;
    queue_dead_letters_after_max_receives(fresh()).await;
    queue_delays_and_long_polls(fresh()).await;
}

async fn queue_delivers_batches_once_per_visibility(q: QueueUnderTest) {
    let queue = q.queue.as_ref();
    queue.send_batch(bodies(25, "a"), Duration::ZERO).await.expect("send_batch");
    let got = receive_all(queue, 25, LONG).await;
    assert_eq!(got.len(), 25, "receive: every sent message is delivered");
    let mut texts: Vec<_> = got.iter().map(|m| String::from_utf8_lossy(&m.body).into_owned()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 25, "receive: no message is delivered twice within its visibility timeout");
    assert!(got.iter().all(|m| m.receive_count == 1), "receive count starts at 1");
    let again = queue.receive(10, LONG, NO_WAIT).await.expect("receive");
    assert!(again.is_empty(), "received messages are invisible to other receivers");
    let depth = queue.depth().await.expect("depth");
    assert_eq!((depth.visible, depth.in_flight), (0, 25), "depth counts in-flight messages");
}

async fn queue_ack_deletes_and_is_idempotent(q: QueueUnderTest) {
    let queue = q.queue.as_ref();
    queue.send_batch(bodies(4, "b"), Duration::ZERO).await.expect("send_batch");
    let got = receive_all(queue, 4, LONG).await;
    assert_eq!(got.len(), 4);
    let (acked, kept) = got.split_at(2);
    let receipts: Vec<_> = acked.iter().map(|m| m.receipt.clone()).collect();
    queue.ack(&receipts).await.expect("ack");
    queue.ack(&receipts).await.expect("ack is idempotent");
    let kept_receipts: Vec<_> = kept.iter().map(|m| m.receipt.clone()).collect();
    let results = queue.extend_visibility(&kept_receipts, Duration::ZERO).await.expect("extend");
    assert!(results.iter().all(Result::is_ok), "extend_visibility with current receipts succeeds");
    let again = receive_all(queue, 2, LONG).await;
    let mut ids: Vec<_> = again.iter().map(|m| m.message_id.clone()).collect();
    ids.sort();
    let mut expected: Vec<_> = kept.iter().map(|m| m.message_id.clone()).collect();
    expected.sort();
    assert_eq!(ids, expected, "acked messages are gone, the others come back");
    assert!(again.iter().all(|m| m.receive_count == 2), "receive count increments per delivery");
}

async fn queue_redelivers_after_visibility_timeout(q: QueueUnderTest) {
    let queue = q.queue.as_ref();
    queue.send_batch(bodies(1, "c"), Duration::ZERO).await.expect("send_batch");
    let first = queue.receive(1, Duration::from_secs(1), Duration::from_secs(5)).await.expect("receive");
    assert_eq!(first.len(), 1);
    let second = queue.receive(1, LONG, Duration::from_secs(10)).await.expect("receive");
    assert_eq!(second.len(), 1, "a message comes back when its visibility timeout expires");
    assert_eq!(second[0].message_id, first[0].message_id, "message id is stable across deliveries");
    assert_ne!(second[0].receipt, first[0].receipt, "each delivery has its own receipt");
}

async fn queue_extend_visibility_and_stale_receipts(q: QueueUnderTest) {
    let queue = q.queue.as_ref();
    queue.send_batch(bodies(1, "d"), Duration::ZERO).await.expect("send_batch");
    let first = queue.receive(1, LONG, Duration::from_secs(5)).await.expect("receive");
    assert_eq!(first.len(), 1);
    let receipt = first[0].receipt.clone();
    let extended = queue.extend_visibility(std::slice::from_ref(&receipt), LONG).await.expect("extend");
    assert!(extended[0].is_ok(), "the holder can extend visibility");
    assert!(queue.receive(1, LONG, NO_WAIT).await.expect("receive").is_empty(), "extended message stays hidden");
    queue.extend_visibility(std::slice::from_ref(&receipt), Duration::ZERO).await.expect("extend");
    let second = queue.receive(1, LONG, Duration::from_secs(5)).await.expect("receive");
    assert_eq!(second.len(), 1, "visibility 0 makes a message visible at once");
    let stale = queue.extend_visibility(&[receipt], LONG).await.expect("extend");
    assert!(
        matches!(stale[0], Ok(()) | Err(QueueError::ReceiptExpired)),
        "a receipt from an earlier delivery is refused as expired or honoured, never an outage"
    );
    queue.ack(&[second[0].receipt.clone()]).await.expect("ack");
    assert_eq!(queue.depth().await.expect("depth").in_flight, 0);
}

async fn queue_dead_letters_after_max_receives(q: QueueUnderTest) {
    let queue = q.queue.as_ref();
    queue.send_batch(bodies(1, "e"), Duration::ZERO).await.expect("send_batch");
    for delivery in 1..=q.max_receives {
        let got = queue.receive(1, LONG, Duration::from_secs(5)).await.expect("receive");
        assert_eq!(got.len(), 1, "delivery {delivery} of {} happens", q.max_receives);
        assert_eq!(got[0].receive_count, delivery);
        queue.extend_visibility(&[got[0].receipt.clone()], Duration::ZERO).await.expect("extend");
    }
    let after = queue.receive(1, LONG, Duration::from_millis(500)).await.expect("receive");
    assert!(after.is_empty(), "a message past max_receives is not delivered again");
    let dead = q.dead_letter.receive(1, LONG, Duration::from_secs(5)).await.expect("receive dlq");
    assert_eq!(dead.len(), 1, "it is in the dead-letter queue");
    assert_eq!(&dead[0].body[..], b"e-0", "with its body intact");
}

async fn queue_delays_and_long_polls(q: QueueUnderTest) {
    let queue = Arc::clone(&q.queue);
    queue.send_batch(bodies(1, "f"), Duration::from_secs(2)).await.expect("send_batch");
    assert!(queue.receive(1, LONG, NO_WAIT).await.expect("receive").is_empty(), "a delayed message is hidden");
    assert_eq!(queue.depth().await.expect("depth").delayed, 1, "depth counts delayed messages");
    let got = queue.receive(1, LONG, Duration::from_secs(10)).await.expect("receive");
    assert_eq!(got.len(), 1, "a delayed message appears after its delay within a long poll");
    queue.ack(&[got[0].receipt.clone()]).await.expect("ack");

    let sender = Arc::clone(&queue);
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sender.send_batch(bodies(1, "g"), Duration::ZERO).await.expect("send_batch");
    });
    let got = queue.receive(1, LONG, Duration::from_secs(10)).await.expect("receive");
    assert_eq!(got.len(), 1, "a long poll returns a message sent while it waits");
    send.await.expect("sender task");
}

/// Runs every blob store clause on an empty store.
pub async fn blob_contract(store: Arc<dyn BlobStore>) {
    let doc = Bytes::from_static(b"%PDF-1.7 hello");
    let meta = store.put("documents/acme/one", doc.clone()).await.expect("put");
    assert_eq!(meta.size, doc.len() as u64, "put reports the size");
    assert_eq!(store.get("documents/acme/one").await.expect("get"), Some(doc.clone()), "get returns what put stored");
    assert_eq!(store.head("documents/acme/one").await.expect("head").map(|m| m.size), Some(doc.len() as u64));
    assert_eq!(store.get("documents/acme/missing").await.expect("get"), None, "missing key is None");
    assert_eq!(store.head("documents/acme/missing").await.expect("head"), None);

    store.put("documents/acme/one", Bytes::from_static(b"v2")).await.expect("put replaces");
    assert_eq!(store.get("documents/acme/one").await.expect("get").as_deref(), Some(&b"v2"[..]));

    assert!(store.put_if_absent("documents/acme/one", Bytes::from_static(b"v3")).await.expect("pia").is_none());
    assert_eq!(store.get("documents/acme/one").await.expect("get").as_deref(), Some(&b"v2"[..]), "no overwrite");

    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.put_if_absent("results/acme/race", Bytes::from(format!("{i}"))).await })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        if racer.await.expect("task").expect("put_if_absent").is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one of racing put_if_absent calls wins");

    store.put("documents/bravo/two", Bytes::from_static(b"x")).await.expect("put");
    store.put("documents/acme/three", Bytes::from_static(b"x")).await.expect("put");
    assert_eq!(
        store.list("documents/acme/").await.expect("list"),
        vec!["documents/acme/one".to_owned(), "documents/acme/three".to_owned()],
        "list returns sorted keys under the prefix only"
    );
    assert_eq!(store.list("documents/ac").await.expect("list").len(), 2, "prefixes need not end at a slash");

    store.delete("documents/acme/one").await.expect("delete");
    store.delete("documents/acme/one").await.expect("delete of a missing key is fine");
    assert_eq!(store.get("documents/acme/one").await.expect("get"), None);

    for bad in ["", "../etc/passwd", "a//b", "a/./b", "with space", "/abs"] {
        assert!(store.put(bad, Bytes::new()).await.is_err(), "key {bad:?} is refused");
    }
}

/// A fresh `queued` XML job for `tenant`, as the suites (and backend-specific tests) create them.
pub fn new_job(tenant: &str, idempotency_key: Option<&str>) -> Job {
    Job::new(
        NewJob {
            id: JobId::new(),
            tenant: tenant.parse().expect("tenant"),
            idempotency_key: idempotency_key.map(str::to_owned),
            blob_key: format!("documents/{tenant}/x"),
            document_type: DocumentType::Xml,
            size: 3,
            sha256: "ab".into(),
            page_estimate: 1,
        },
        Utc::now(),
    )
}

fn claim_with(token: Uuid) -> crate::ports::Transition {
    Box::new(move |job: &Job| {
        job.claim(Lease { token, expires_at: Utc::now() + chrono::Duration::seconds(60) }, Utc::now())
    })
}

/// Runs every job store clause on an empty store.
pub async fn job_store_contract(store: Arc<dyn JobStore>) {
    let job = new_job("acme", Some("key-1"));
    let created = store.create(job.clone()).await.expect("create");
    assert_eq!(created, CreateOutcome::Created(job.clone()));
    let again = store.create(new_job("acme", Some("key-1"))).await.expect("create");
    assert_eq!(again, CreateOutcome::Existing(job.clone()), "same tenant and key returns the first job");
    let other_tenant = store.create(new_job("bravo", Some("key-1"))).await.expect("create");
    assert!(matches!(other_tenant, CreateOutcome::Created(_)), "idempotency keys are per tenant");
    assert_eq!(store.get(job.id).await.expect("get"), Some(job.clone()));
    assert_eq!(store.get(JobId::new()).await.expect("get"), None);

    // Racing claims: exactly one wins.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            let id = job.id;
            tokio::spawn(async move { store.update(id, claim_with(Uuid::new_v4())).await })
        })
        .collect();
    let mut wins = Vec::new();
    for racer in racers {
        match racer.await.expect("task") {
            Ok(job) => wins.push(job),
            Err(StoreError::Transition(TransitionError::LeaseHeld { .. })) => {}
            Err(other) => panic!("unexpected error from a losing claim: {other}"),
        }
    }
    assert_eq!(wins.len(), 1, "exactly one of racing claims wins");
    let token = wins[0].lease.as_ref().expect("lease").token;
    let stale = store.update(job.id, Box::new(|j: &Job| j.succeed(Uuid::new_v4(), Some("r".into()), Utc::now()))).await;
    assert!(matches!(stale, Err(StoreError::Transition(TransitionError::StaleLease))), "stale lease refused");
    assert_eq!(store.get(job.id).await.expect("get").expect("job").status, JobStatus::Processing, "untouched");
    let done = store
        .update(job.id, Box::new(move |j: &Job| j.succeed(token, Some("results/acme/x.json".into()), Utc::now())))
        .await
        .expect("succeed");
    assert_eq!(done.status, JobStatus::Succeeded);
    assert!(matches!(store.update(JobId::new(), claim_with(Uuid::new_v4())).await, Err(StoreError::NotFound(_))));

    // Listing: per tenant, newest first, paged; unfinished only.
    let tenant: TenantId = "paging".parse().expect("tenant");
    let mut ids = Vec::new();
    for _ in 0..7 {
        let job = new_job("paging", None);
        ids.push(job.id);
        store.create(job).await.expect("create");
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_by_tenant(&tenant, None, cursor, 3).await.expect("list");
        assert!(page.jobs.len() <= 3);
        assert!(page.jobs.iter().all(|j| j.tenant == tenant), "list_by_tenant returns only that tenant");
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids, "pages cover every job once, newest first");
    let succeeded = store.list_by_tenant(&tenant, Some(JobStatus::Succeeded), None, 10).await.expect("list");
    assert!(succeeded.jobs.is_empty(), "status filter applies");

    let unfinished = store.list_unfinished(None, 100).await.expect("unfinished");
    assert!(unfinished.iter().all(|j| !j.status.is_terminal()), "only unfinished jobs");
    assert!(!unfinished.iter().any(|j| j.id == job.id), "finished job excluded");
    assert_eq!(unfinished.len(), 7 + 1, "seven paging jobs and bravo's");
    let first_two = store.list_unfinished(None, 2).await.expect("unfinished");
    let rest = store.list_unfinished(first_two.last().map(|j| j.id), 100).await.expect("unfinished");
    assert_eq!(first_two.len() + rest.len(), unfinished.len(), "list_unfinished pages by id");

    let counts = store.count_by_status().await.expect("count");
    let count = |s: JobStatus| counts.iter().find(|(status, _)| *status == s).map(|(_, n)| *n).unwrap_or(0);
    assert_eq!((count(JobStatus::Queued), count(JobStatus::Succeeded)), (8, 1));

    // Replicas: copied as they are, never moved back, indexed like created jobs.
    let replica = new_job("mirrored", Some("key-m"));
    assert!(store.put_replica(replica.clone()).await.expect("replica"), "a new replica is written");
    assert_eq!(store.get(replica.id).await.expect("get"), Some(replica.clone()));
    assert!(!store.put_replica(replica.clone()).await.expect("replica"), "the same copy twice writes once");
    let token = Uuid::new_v4();
    let later = Utc::now() + chrono::Duration::seconds(1);
    let claimed =
        replica.claim(Lease { token, expires_at: later + chrono::Duration::seconds(60) }, later).expect("claim");
    let done = claimed.succeed(token, Some("results/mirrored/x.json".into()), later + chrono::Duration::seconds(1));
    let done = done.expect("succeed");
    assert!(store.put_replica(done.clone()).await.expect("replica"), "a newer copy replaces");
    assert!(!store.put_replica(claimed).await.expect("replica"), "an older copy arriving late is ignored");
    assert_eq!(store.get(replica.id).await.expect("get"), Some(done.clone()));
    let mirrored: TenantId = "mirrored".parse().expect("tenant");
    let listed = store.list_by_tenant(&mirrored, None, None, 10).await.expect("list");
    assert_eq!(listed.jobs, vec![done.clone()], "a replica is listed under its tenant");
    let unfinished = store.list_unfinished(None, 100).await.expect("unfinished");
    assert!(!unfinished.iter().any(|j| j.id == done.id), "a finished replica is not unfinished");
    let again = store.create(new_job("mirrored", Some("key-m"))).await.expect("create");
    assert_eq!(again, CreateOutcome::Existing(done), "a replica holds its idempotency key");
    let queued = new_job("mirrored", None);
    store.put_replica(queued.clone()).await.expect("replica");
    let unfinished = store.list_unfinished(None, 100).await.expect("unfinished");
    assert!(unfinished.iter().any(|j| j.id == queued.id), "an unfinished replica is listed as unfinished");
}

/// Runs every tenant directory clause on an empty directory.
pub async fn tenant_directory_contract(directory: Arc<dyn TenantDirectory>) {
    let acme: TenantId = "acme".parse().expect("tenant");
    directory.add_tenant(&acme).await.expect("add");
    directory.add_tenant(&acme).await.expect("add is idempotent");
    let key = ApiKey::generate();
    directory.add_key(&acme, &key.hash()).await.expect("add key");
    assert_eq!(
        directory.find_tenant_by_key(&ApiKey::hash_presented(key.expose())).await.expect("find"),
        Some(acme.clone())
    );
    assert_eq!(directory.find_tenant_by_key(&ApiKey::generate().hash()).await.expect("find"), None);
    let ghost: TenantId = "ghost".parse().expect("tenant");
    assert!(directory.add_key(&ghost, &ApiKey::generate().hash()).await.is_err(), "keys need a tenant");
    directory.add_key(&acme, &key.hash()).await.expect("adding the same key again is idempotent");
    let bravo: TenantId = "bravo".parse().expect("tenant");
    directory.add_tenant(&bravo).await.expect("add");
    assert!(directory.add_key(&bravo, &key.hash()).await.is_err(), "a key never changes owner");
    assert_eq!(directory.list_tenants().await.expect("list"), vec![acme.clone(), bravo]);
    assert_eq!(directory.list_keys().await.expect("keys"), vec![(key.hash(), acme)]);
}

fn beat(worker_id: Uuid, in_flight: usize) -> crate::ports::WorkerBeat {
    crate::ports::WorkerBeat {
        worker_id,
        lanes: vec![crate::domain::Lane::Small],
        pid: 4242,
        host: "test".into(),
        started_at: Utc::now(),
        last_seen: Utc::now(),
        in_flight: (0..in_flight)
            .map(|i| crate::ports::InFlightJob {
                job_id: JobId::new(),
                lane: crate::domain::Lane::Small,
                receipt: format!("receipt-{i}"),
                lease_token: Uuid::new_v4(),
            })
            .collect(),
        draining: false,
        completed_total: 1,
        failed_total: 0,
        completed: vec![crate::ports::CompletedJob {
            lane: crate::domain::Lane::Small,
            seconds: 0.5,
            size: 10,
            pages: 1,
        }],
    }
}

/// Runs every worker registry clause on an empty registry.
pub async fn worker_registry_contract(registry: Arc<dyn crate::ports::WorkerRegistry>) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let orders = registry.beat(&beat(a, 0)).await.expect("beat");
    assert!(!orders.drain, "a new worker is not asked to drain");
    let latest = beat(a, 2);
    registry.beat(&latest).await.expect("beat");
    registry.beat(&beat(b, 0)).await.expect("beat");
    let mut listed = registry.list().await.expect("list");
    listed.sort_by_key(|beat| beat.worker_id != a);
    assert_eq!(listed.len(), 2, "one entry per worker");
    assert_eq!(listed[0], latest, "the latest beat replaces the previous one, intact");

    registry.request_drain(b).await.expect("drain");
    assert!(registry.beat(&beat(b, 0)).await.expect("beat").drain, "a drain request reaches the worker");
    assert!(!registry.beat(&beat(a, 0)).await.expect("beat").drain, "and only that worker");

    registry.remove(b).await.expect("remove");
    registry.remove(b).await.expect("remove is idempotent");
    let listed = registry.list().await.expect("list");
    assert_eq!(listed.iter().map(|beat| beat.worker_id).collect::<Vec<_>>(), vec![a], "removed workers are gone");
    assert!(!registry.beat(&beat(b, 0)).await.expect("beat").drain, "a removed worker's drain request is gone too");
}
