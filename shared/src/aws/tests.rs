//! The AWS backend against an SQS/S3-compatible server (moto, started by `scripts/test` or by
//! `scripts/moto start`): the contract suites every backend runs, plus what only this backend
//! has (claim checks, multipart uploads, checksums, bootstrap). Each test works in its own
//! bucket and queue prefix.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use uuid::Uuid;

use super::objects::{Bucket, MULTIPART_THRESHOLD};
use super::sqs::{MAX_INLINE_BODY, PAYLOAD_PREFIX};
use super::*;
use crate::contract;
use crate::domain::{Job, JobError, JobStatus, Lease};
use crate::ports::{BlobError, CreateOutcome};

const MISSING_SERVER: &str = "SQS/S3 test server not running: run scripts/test, or `scripts/moto start /tmp/moto.url` \
     and export SURGE_TEST_AWS_ENDPOINT=$(cat /tmp/moto.url)";

/// Settings for a new bucket and queue prefix on the test server.
fn settings() -> AwsSettings {
    let endpoint = std::env::var("SURGE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| panic!("{MISSING_SERVER}"));
    let run = Uuid::new_v4().simple().to_string();
    AwsSettings {
        region: "eu-central-1".to_owned(),
        endpoint_url: Some(endpoint),
        queue_prefix: format!("t{}-", &run[..12]),
        bucket: format!("surge-test-{}", &run[..20]),
        force_path_style: None,
    }
}

async fn clients(settings: &AwsSettings) -> Clients {
    connect(settings, Some(Credentials::new("test", "test", None, None, "static"))).await
}

/// Bootstraps and opens `settings`.
async fn open_fresh(settings: &AwsSettings, max_attempts: u32) -> Backends {
    let clients = clients(settings).await;
    provision::bootstrap_with(&clients, settings, max_attempts).await.expect("bootstrap");
    open_with(&clients, settings, max_attempts).await.expect("open")
}

use crate::contract::new_job as job;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_passes_the_contract() {
    // The contract asks for fresh queues synchronously; SQS queues are made up front.
    let base = settings();
    let mut pairs = Vec::new();
    for n in 0..6 {
        let settings = AwsSettings { queue_prefix: format!("{}{n}-", base.queue_prefix), ..base.clone() };
        let backends = open_fresh(&settings, 1).await;
        pairs.push(contract::QueueUnderTest {
            queue: backends.incoming,
            dead_letter: backends.dead_letter,
            max_receives: provision::max_receives(1),
        });
    }
    let pairs = Mutex::new(pairs);
    contract::queue_contract(|| pairs.lock().unwrap().remove(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_passes_the_contract() {
    contract::blob_contract(open_fresh(&settings(), 3).await.blobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_store_passes_the_contract() {
    contract::job_store_contract(open_fresh(&settings(), 3).await.jobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_directory_passes_the_contract() {
    contract::tenant_directory_contract(open_fresh(&settings(), 3).await.tenants).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_registry_passes_the_contract() {
    contract::worker_registry_contract(open_fresh(&settings(), 3).await.workers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_binary_bodies_travel_by_claim_check() {
    let settings = settings();
    let backends = open_fresh(&settings, 3).await;
    let payloads = Bucket::new(clients(&settings).await.s3, &settings.bucket);
    let large = Bytes::from(vec![b'x'; 300 * 1024]);
    let binary = Bytes::from_static(b"\x00\xff not text");
    let inline = Bytes::from(vec![b'y'; MAX_INLINE_BODY]);
    let queue = &backends.incoming;
    queue.send_batch(vec![large.clone(), binary.clone(), inline.clone()], Duration::ZERO).await.unwrap();
    assert_eq!(payloads.list_all(PAYLOAD_PREFIX).await.unwrap().len(), 2, "two bodies went to the bucket");

    let mut got = Vec::new();
    while got.len() < 3 {
        let batch = queue.receive(10, Duration::from_secs(60), Duration::from_secs(5)).await.unwrap();
        assert!(!batch.is_empty(), "all three messages arrive");
        got.extend(batch);
    }
    let mut bodies: Vec<_> = got.iter().map(|m| m.body.clone()).collect();
    bodies.sort();
    let mut sent = vec![large, binary, inline];
    sent.sort();
    assert_eq!(bodies, sent, "receive resolves claim checks transparently");

    let receipts: Vec<_> = got.iter().map(|m| m.receipt.clone()).collect();
    queue.ack(&receipts).await.unwrap();
    assert!(payloads.list_all(PAYLOAD_PREFIX).await.unwrap().is_empty(), "ack deletes the payloads");
    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 0), "ack deletes the messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs_are_uploaded_in_parts() {
    let settings = settings();
    let backends = open_fresh(&settings, 3).await;
    let body: Bytes = (0..20 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect::<Vec<_>>().into();
    assert!(body.len() >= MULTIPART_THRESHOLD);
    let meta = backends.blobs.put("documents/acme/big", body.clone()).await.unwrap();
    assert_eq!(meta.size, body.len() as u64);
    assert_eq!(backends.blobs.get("documents/acme/big").await.unwrap(), Some(body.clone()));
    let bucket = Bucket::new(clients(&settings).await.s3, &settings.bucket);
    let head = bucket.client().head_object().bucket(&settings.bucket).key("documents/acme/big").send().await.unwrap();
    let etag = head.e_tag().unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-3"), "three 8 MiB parts, etag {etag}");
    let again = backends.blobs.put_if_absent("documents/acme/big", body).await.unwrap();
    assert!(again.is_none(), "a multipart put_if_absent respects the existing object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_blob_is_reported_corrupt() {
    let settings = settings();
    let backends = open_fresh(&settings, 3).await;
    backends.blobs.put("results/acme/one.json", Bytes::from_static(b"{\"ok\":true}")).await.unwrap();
    let bucket = Bucket::new(clients(&settings).await.s3, &settings.bucket);
    let original = bucket.client().head_object().bucket(&settings.bucket).key("results/acme/one.json").send().await;
    let checksum = original.unwrap().metadata().and_then(|m| m.get("sha256")).cloned().expect("sha256 metadata");
    bucket
        .client()
        .put_object()
        .bucket(&settings.bucket)
        .key("results/acme/one.json")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{\"ok\":false}"))
        .metadata("sha256", checksum)
        .send()
        .await
        .unwrap();
    let read = backends.blobs.get("results/acme/one.json").await;
    assert!(matches!(read, Err(BlobError::Corrupt(_))), "a body that does not match its checksum: {read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_keys_cannot_reach_other_adapters_objects() {
    let backends = open_fresh(&settings(), 3).await;
    let job = job("acme", None);
    backends.jobs.create(job.clone()).await.unwrap();
    let record = format!("jobs/by-id/{}.json", job.id);
    assert!(matches!(backends.blobs.put(&record, Bytes::new()).await, Err(BlobError::InvalidKey(_))));
    assert!(matches!(backends.blobs.get(&record).await, Err(BlobError::InvalidKey(_))));
    assert!(backends.blobs.list("").await.unwrap().is_empty(), "listing shows blobs only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_with_one_idempotency_key_yield_one_job() {
    let backends = open_fresh(&settings(), 3).await;
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let jobs = Arc::clone(&backends.jobs);
            let job = job("acme", Some("same-key"));
            tokio::spawn(async move { (job.id, jobs.create(job).await.unwrap()) })
        })
        .collect();
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            (_, CreateOutcome::Created(job)) => created.push(job),
            (own_id, CreateOutcome::Existing(job)) => existing.push((own_id, job)),
        }
    }
    assert_eq!(created.len(), 1, "exactly one create wins");
    let winner = &created[0];
    for (own_id, job) in &existing {
        assert_eq!(job.id, winner.id, "losers get the winner's job");
        assert_eq!(backends.jobs.get(*own_id).await.unwrap(), None, "losers leave no record behind");
    }
    let tenant = "acme".parse().unwrap();
    let page = backends.jobs.list_by_tenant(&tenant, None, None, 10).await.unwrap();
    assert_eq!(page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![winner.id], "one listed job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeued_job_is_unfinished_again() {
    let backends = open_fresh(&settings(), 3).await;
    let job = job("acme", None);
    backends.jobs.create(job.clone()).await.unwrap();
    let token = Uuid::new_v4();
    let lease = Lease { token, expires_at: Utc::now() + chrono::Duration::seconds(60) };
    backends.jobs.update(job.id, Box::new(move |j: &Job| j.claim(lease.clone(), Utc::now()))).await.unwrap();
    let error = JobError { code: crate::domain::ErrorCode::WorkerLost, message: "worker died".into() };
    let bury = move |j: &Job| j.bury(token, error.clone(), Utc::now());
    assert_eq!(backends.jobs.update(job.id, Box::new(bury)).await.unwrap().status, JobStatus::Dead);
    assert!(backends.jobs.list_unfinished(None, 10).await.unwrap().is_empty(), "a dead job is finished");
    backends.jobs.update(job.id, Box::new(|j: &Job| j.requeue(Utc::now()))).await.unwrap();
    let unfinished = backends.jobs.list_unfinished(None, 10).await.unwrap();
    assert_eq!(unfinished.iter().map(|j| j.id).collect::<Vec<_>>(), vec![job.id], "requeue brings it back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_is_idempotent() {
    let settings = settings();
    let clients = clients(&settings).await;
    let first = provision::bootstrap_with(&clients, &settings, 3).await.unwrap();
    assert!(first.iter().all(|line| line.starts_with("created")), "{first:?}");
    assert_eq!(first.len(), 6, "bucket and five queues: {first:?}");
    let second = provision::bootstrap_with(&clients, &settings, 4).await.unwrap();
    assert!(second.iter().all(|line| line.contains("exists")), "{second:?}");
    open_with(&clients, &settings, 4).await.expect("open after a second bootstrap");
    let lane = provision::queue_name(&settings, queue_names::lane(Lane::Large));
    let url = provision::queue_url(&clients.sqs, &lane).await.unwrap().expect("lane queue");
    let threshold = provision::redrive_threshold(&clients.sqs, &url).await.unwrap();
    assert_eq!(threshold, Some(provision::max_receives(4)), "a second bootstrap updates the redrive policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_without_bootstrap_names_the_command() {
    let settings = settings();
    let clients = clients(&settings).await;
    let err = open_with(&clients, &settings, 3).await.err().expect("open fails").to_string();
    assert!(err.contains("bucket") && err.contains("surge aws bootstrap"), "{err}");

    Bucket::new(clients.s3.clone(), &settings.bucket).create(&settings.region).await.unwrap();
    let err = open_with(&clients, &settings, 3).await.err().expect("open fails").to_string();
    assert!(err.contains("queue") && err.contains("surge aws bootstrap"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_scale_target_resizes_a_service() {
    use crate::domain::Lane;
    use crate::ports::ScaleTarget;

    let aws = settings();
    let run = Uuid::new_v4().simple().to_string();
    let ecs_settings = crate::config::EcsSettings {
        region: aws.region.clone(),
        endpoint_url: aws.endpoint_url.clone(),
        cluster: format!("surge-{}", &run[..12]),
        small_service: "surge-worker-small".to_owned(),
        large_service: "surge-worker-large".to_owned(),
    };
    // Set the cluster up the way infra/ would: a task definition and a service per lane.
    let mut loader =
        super::sdk_loader(&aws.region).credentials_provider(Credentials::new("test", "test", None, None, "static"));
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let ecs = aws_sdk_ecs::Client::new(&loader.load().await);
    ecs.create_cluster().cluster_name(&ecs_settings.cluster).send().await.expect("cluster");
    let container = aws_sdk_ecs::types::ContainerDefinition::builder()
        .name("surge-worker")
        .image("surge:latest")
        .memory(512)
        .command("surge-worker")
        .build();
    ecs.register_task_definition().family("surge-worker").container_definitions(container).send().await.expect("task");
    for service in [&ecs_settings.small_service, &ecs_settings.large_service] {
        ecs.create_service()
            .cluster(&ecs_settings.cluster)
            .service_name(service)
            .task_definition("surge-worker")
            .desired_count(1)
            .send()
            .await
            .expect("service");
    }

    let target = crate::aws::EcsScaleTarget::connect(&ecs_settings).await;
    assert_eq!(target.observe(Lane::Small).await.expect("observe").desired, 1);
    target.set_desired(Lane::Small, 4, &[]).await.expect("scale up");
    assert_eq!(target.observe(Lane::Small).await.expect("observe").desired, 4, "UpdateService took effect");
    assert_eq!(target.observe(Lane::Large).await.expect("observe").desired, 1, "the other lane is untouched");
    target.set_desired(Lane::Small, 0, &[]).await.expect("scale to zero");
    assert_eq!(target.observe(Lane::Small).await.expect("observe").desired, 0);

    // Rolling the workers is a new deployment of each service.
    let deployment = |described: aws_sdk_ecs::operation::describe_services::DescribeServicesOutput| {
        described.services()[0].deployments().first().and_then(|d| d.id()).map(str::to_owned)
    };
    let describe =
        || ecs.describe_services().cluster(&ecs_settings.cluster).services(&ecs_settings.large_service).send();
    let before = deployment(describe().await.expect("describe"));
    let started = target.redeploy().await.expect("redeploy");
    assert_eq!(started.len(), 2, "{started:?}");
    let after = deployment(describe().await.expect("describe"));
    assert!(after.is_some() && after != before, "a new deployment: {before:?} -> {after:?}");

    let missing = crate::config::EcsSettings { small_service: "nope".to_owned(), ..ecs_settings };
    let err = crate::aws::EcsScaleTarget::connect(&missing).await.observe(Lane::Small).await.unwrap_err();
    assert!(err.to_string().contains("nope"), "a missing service is named: {err}");
}
