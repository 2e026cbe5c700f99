# Smoke test of infra/cloudformation/surge-region.yaml against moto (run by `scripts/infra smoke`).
#
# Deploys the template in the order infra/README.md gives: the secondary (eu-west-1, standby),
# then the primary (eu-central-1, serving), then an update of the secondary that turns on backup
# replication. Each stack must reach CREATE_COMPLETE / UPDATE_COMPLETE; then what it created is
# checked through the service APIs ("live").
#
# moto 5.2.5 deploys most of the template but not all of it (infra/README.md, "Smoke test"):
# it skips AWS::CloudWatch::Alarm, AWS::S3::BucketPolicy and AWS::SNS::Subscription entirely,
# and of an AWS::S3::Bucket applies only the name, encryption and tags (no versioning,
# lifecycle, public access block or replication). For those, each check looks at the live
# resource first and, only when moto has nothing there, checks the template's definition
# instead and says so ("template"). Everything else must be live.
#
# Usage: smoke.py ENDPOINT_URL TEMPLATE (credentials from the environment; moto takes any).
import ast
import json
import sys
import time
import uuid

import boto3
import yaml

PRIMARY_REGION = "eu-central-1"
SECONDARY_REGION = "eu-west-1"
QUEUES = ["incoming", "lane-small", "lane-large", "replication", "dead-letter"]
REDRIVEN = ["incoming", "lane-small", "lane-large"]
MAX_RECEIVE_COUNT = 7  # worker.max_attempts (5) + 2
FOURTEEN_DAYS = 1209600
STACK_TIMEOUT_SECS = 180


class CfnLoader(yaml.SafeLoader):
    """YAML loader that reads CloudFormation's short-form tags (!Ref, !Sub, ...)."""


def _construct_intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


class Checks:
    """Collects check results; prints each as it is made."""

    def __init__(self):
        self.failures = []
        self.template_only = set()
        # Which stack the checks are about, for the summary.
        self.context = ""

    def check(self, ok, what, detail=""):
        if ok:
            print(f"  ok    {what}")
        else:
            print(f"  FAIL  {what}{': ' + detail if detail else ''}")
            self.failures.append(f"{self.context}: {what}" if self.context else what)
        return ok

    def template(self, ok, what, gap, detail=""):
        """A check of the template's definition, for something moto does not deploy."""
        self.template_only.add(gap)
        return self.check(ok, f"{what} [template: {gap}]", detail)


class Region:
    """boto3 clients for one region of the moto server."""

    def __init__(self, endpoint, region):
        self.name = region

        def client(service):
            return boto3.client(service, endpoint_url=endpoint, region_name=region)

        self.cfn = client("cloudformation")
        self.sqs = client("sqs")
        self.s3 = client("s3")
        self.kms = client("kms")
        self.sns = client("sns")
        self.cloudwatch = client("cloudwatch")
        self.ecs = client("ecs")
        self.iam = client("iam")
        self.logs = client("logs")
        self.ssm = client("ssm")
        self.elbv2 = client("elbv2")
        self.ec2 = client("ec2")
        self.secrets = client("secretsmanager")
        self.acm = client("acm")


def network(region):
    """A VPC with two private and two public subnets in two AZs, as an account would have."""
    vpc = region.ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = {}
    for kind, cidrs in (
        ("private", ["10.40.0.0/20", "10.40.16.0/20"]),
        ("public", ["10.40.128.0/20", "10.40.144.0/20"]),
    ):
        subnets[kind] = [
            region.ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=f"{region.name}{zone}")["Subnet"][
                "SubnetId"
            ]
            for cidr, zone in zip(cidrs, "ab", strict=True)
        ]
    return vpc, subnets["private"], subnets["public"]


def parameters(values):
    return [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in values.items()]


def wait_for_stack(region, stack, want):
    deadline = time.monotonic() + STACK_TIMEOUT_SECS
    while True:
        description = region.cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = description["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"stack {stack} in {region.name} still {status} after {STACK_TIMEOUT_SECS} s")
        time.sleep(0.5)
    if status != want:
        reasons = [
            f"    {e['LogicalResourceId']} {e['ResourceStatus']}: {e.get('ResourceStatusReason', '')}"
            for e in region.cfn.describe_stack_events(StackName=stack)["StackEvents"]
            if e["ResourceStatus"].endswith("FAILED")
        ]
        raise SystemExit(
            f"stack {stack} in {region.name}: {status}, expected {want}: {description.get('StackStatusReason', '')}\n"
            + "\n".join(reasons)
        )
    print(f"stack {stack} ({region.name}): {status}")
    return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}


def physical_ids(region, stack):
    resources = region.cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in resources if r.get("LogicalResourceId")}


def check_queues(checks, region, prefix, outputs):
    attributes = {}
    for queue in QUEUES:
        name = f"{prefix}{queue}"
        try:
            url = region.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except region.sqs.exceptions.QueueDoesNotExist:
            checks.check(False, f"queue {name} exists")
            continue
        attributes[queue] = region.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        checks.check(attributes[queue].get("SqsManagedSseEnabled") == "true", f"queue {name} exists, SSE on")
    for key, queue in (
        ("IncomingQueueUrl", "incoming"),
        ("SmallLaneQueueUrl", "lane-small"),
        ("LargeLaneQueueUrl", "lane-large"),
        ("ReplicationQueueUrl", "replication"),
        ("DeadLetterQueueUrl", "dead-letter"),
    ):
        checks.check(outputs.get(key, "").endswith(f"/{prefix}{queue}"), f"output {key}", outputs.get(key, "missing"))
    dead_letter = attributes.get("dead-letter", {})
    checks.check(
        dead_letter.get("MessageRetentionPeriod") == str(FOURTEEN_DAYS),
        "dead-letter keeps 14 days",
        dead_letter.get("MessageRetentionPeriod", ""),
    )
    for queue in REDRIVEN:
        policy = json.loads(attributes.get(queue, {}).get("RedrivePolicy", "{}"))
        checks.check(
            int(policy.get("maxReceiveCount", 0)) == MAX_RECEIVE_COUNT
            and policy.get("deadLetterTargetArn") == dead_letter.get("QueueArn"),
            f"{prefix}{queue} redrives to dead-letter after {MAX_RECEIVE_COUNT} receives",
            json.dumps(policy),
        )
    replication = attributes.get("replication", {})
    checks.check(
        "RedrivePolicy" not in replication and replication.get("MessageRetentionPeriod") == str(FOURTEEN_DAYS),
        f"{prefix}replication: no redrive, keeps 14 days",
    )


def check_bucket(checks, region, name, bucket, outputs, template):
    definition = template["Resources"]["DataBucket"]["Properties"]
    checks.check(
        outputs.get("BucketName") == bucket, f"bucket {bucket} is the stack's", outputs.get("BucketName", "missing")
    )
    try:
        region.s3.head_bucket(Bucket=bucket)
        checks.check(True, f"bucket {bucket} exists")
    except Exception as err:  # report whatever moto says
        checks.check(False, f"bucket {bucket} exists", str(err))
        return
    rules = region.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    default = rules[0]["ApplyServerSideEncryptionByDefault"] if rules else {}
    checks.check(
        default.get("SSEAlgorithm") == "aws:kms" and default.get("KMSMasterKeyID") == outputs.get("DataKeyArn"),
        "bucket encrypted with the stack's KMS key",
        json.dumps(default),
    )
    alias = region.kms.list_aliases()["Aliases"]
    target = next((a.get("TargetKeyId") for a in alias if a["AliasName"] == f"alias/{name}-data"), None)
    checks.check(
        target is not None and outputs.get("DataKeyArn", "").endswith(target or "-"),
        f"alias/{name}-data names the key",
    )

    versioning = region.s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if versioning:
        checks.check(versioning == "Enabled", "bucket versioning enabled", versioning)
    else:
        checks.template(
            definition.get("VersioningConfiguration", {}).get("Status") == "Enabled",
            "bucket versioning enabled",
            "moto ignores VersioningConfiguration",
        )
    try:
        block = region.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        checks.check(all(block.values()) and len(block) == 4, "bucket blocks all public access", json.dumps(block))
    except region.s3.exceptions.ClientError:
        block = definition.get("PublicAccessBlockConfiguration", {})
        checks.template(
            len(block) == 4 and all(v is True for v in block.values()),
            "bucket blocks all public access",
            "moto ignores PublicAccessBlockConfiguration",
        )
    try:
        lifecycle = region.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        live = True
    except region.s3.exceptions.ClientError:
        lifecycle, live = definition.get("LifecycleConfiguration", {}).get("Rules", []), False

    def prefix_of(rule):
        return rule.get("Prefix") or rule.get("Filter", {}).get("Prefix", "")

    def days(rule, *path):
        value = rule
        for key in path:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        return value if isinstance(value, int) else None

    noncurrent = any(prefix_of(r) == "" and r.get("NoncurrentVersionExpiration") for r in lifecycle)
    multipart = any(prefix_of(r) == "" and r.get("AbortIncompleteMultipartUpload") for r in lifecycle)
    payloads = any(
        prefix_of(r) == "queue-payloads/" and 14 in (days(r, "ExpirationInDays"), days(r, "Expiration", "Days"))
        for r in lifecycle
    )
    backups = any(prefix_of(r) == "backups/" for r in lifecycle)
    ok = noncurrent and multipart and payloads and backups
    what = "lifecycle: noncurrent versions expire, multipart aborted, queue-payloads/ 14 days, backups/ backstop"
    if live:
        checks.check(ok, what)
    else:
        checks.template(ok, what, "moto ignores LifecycleConfiguration")

    policy_definition = template["Resources"]["DataBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    try:
        statements = json.loads(region.s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
        live = True
    except region.s3.exceptions.ClientError:
        statements, live = policy_definition, False
    tls = any(
        s.get("Effect") == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in statements
    )
    if live:
        checks.check(tls, "bucket policy denies non-TLS requests")
    else:
        checks.template(tls, "bucket policy denies non-TLS requests", "moto skips AWS::S3::BucketPolicy")


def check_replication(checks, region, bucket, peer_bucket, resources, template):
    checks.check(bool(resources.get("BackupReplicationRole")), "backup replication role created")
    role = resources.get("BackupReplicationRole")
    if role:
        document = _policy_document(
            region.iam.get_role_policy(RoleName=role, PolicyName="replicate-backups")["PolicyDocument"]
        )
        targets = [
            r for s in document["Statement"] if "s3:ReplicateObject" in s["Action"] for r in _list(s["Resource"])
        ]
        checks.check(
            targets == [f"arn:aws:s3:::{peer_bucket}/backups/*"],
            "replication role writes only the peer's backups/",
            json.dumps(targets),
        )
    try:
        rules = region.s3.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]["Rules"]
        checks.check(
            any(r.get("Filter", {}).get("Prefix") == "backups/" for r in rules), "backups/ replicated to the primary"
        )
    except region.s3.exceptions.ClientError:
        configuration = template["Resources"]["DataBucket"]["Properties"]["ReplicationConfiguration"]["Fn::If"]
        rule = configuration[1]["Rules"][0]
        checks.template(
            configuration[0] == "ReplicatesBackups" and rule["Filter"] == {"Prefix": "backups/"},
            "backups/ replicated to the primary",
            "moto ignores ReplicationConfiguration",
        )


def _policy_document(document):
    """A role's inline policy document. moto returns one created by CloudFormation as the
    Python repr of the dict rather than JSON."""
    if isinstance(document, dict):
        return document
    try:
        return json.loads(document)
    except json.JSONDecodeError:
        return ast.literal_eval(document)


def _list(value):
    return value if isinstance(value, list) else [value]


def _env(container):
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def check_ecs(checks, region, name, role, outputs, buckets):
    cluster = outputs.get("ClusterName")
    checks.check(cluster == name, "output ClusterName", str(cluster))
    found = region.ecs.describe_clusters(clusters=[name])["clusters"]
    checks.check(bool(found) and found[0].get("status") == "ACTIVE", f"ECS cluster {name} active")
    services = {
        s["serviceName"]: s
        for s in region.ecs.describe_services(
            cluster=name, services=[f"{name}-dispatcher", f"{name}-worker-small", f"{name}-worker-large"]
        )["services"]
    }
    serving = role == "primary"
    for service, want in (
        (f"{name}-dispatcher", 1 if serving else 0),
        (f"{name}-worker-small", None if serving else 0),
        (f"{name}-worker-large", None if serving else 0),
    ):
        found = services.get(service)
        ok = found is not None and (want is None or found.get("desiredCount") == want)
        label = "owned by the dispatcher" if want is None else f"desired {want}"
        checks.check(ok, f"service {service} ({label})", json.dumps(found and found.get("desiredCount")))

    peer = "secondary" if role == "primary" else "primary"
    regions = {role: region.name, peer: PRIMARY_REGION if peer == "primary" else SECONDARY_REGION}
    families = {
        f"{name}-dispatcher": ("surge", ["surge", "--log-format", "json", "up"], 60),
        f"{name}-worker-small": (
            "surge-worker",
            ["surge-worker", "--log-format", "json", "run", "--lane", "small"],
            120,
        ),
        f"{name}-worker-large": (
            "surge-worker",
            ["surge-worker", "--log-format", "json", "run", "--lane", "large"],
            120,
        ),
    }
    for family, (container_name, command, stop_timeout) in families.items():
        definition = region.ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        containers = {c["name"]: c for c in definition["containerDefinitions"]}
        container = containers.get(container_name, {})
        env = _env(container)
        checks.check(
            container.get("command") == command and container.get("stopTimeout") == stop_timeout,
            f"task {family}: `{' '.join(command)}`, stopTimeout {stop_timeout}",
            f"{container.get('command')} {container.get('stopTimeout')}",
        )
        want_env = {
            "SURGE_PRIMARY__BACKEND": "aws",
            "SURGE_PRIMARY__REGION": regions["primary"],
            "SURGE_PRIMARY__BUCKET": buckets["primary"],
            "SURGE_SECONDARY__BACKEND": "aws",
            "SURGE_SECONDARY__REGION": regions["secondary"],
            "SURGE_SECONDARY__BUCKET": buckets["secondary"],
            "SURGE_PRIMARY__QUEUE_PREFIX": f"{name}-",
            "SURGE_SECONDARY__QUEUE_PREFIX": f"{name}-",
            "SURGE_REPLICATION__MODE": "sync",
            "SURGE_WORKER__DRAIN_TIMEOUT_SECS": "30",
        }
        if container_name == "surge":
            want_env.update(
                {
                    "SURGE_API__LISTEN": "0.0.0.0:8080",
                    "SURGE_POOL__ECS__REGION": region.name,
                    "SURGE_POOL__ECS__CLUSTER": name,
                    "SURGE_POOL__ECS__SMALL_SERVICE": f"{name}-worker-small",
                    "SURGE_POOL__ECS__LARGE_SERVICE": f"{name}-worker-large",
                }
            )
        wrong = {k: env.get(k) for k, v in want_env.items() if env.get(k) != v}
        unknown = sorted(k for k in env if not k.startswith("SURGE_"))
        checks.check(
            not wrong and not unknown,
            f"task {family}: Surge configuration for the {role}",
            json.dumps({"wrong": wrong, "unexpected": unknown}),
        )
        if container_name == "surge":
            secrets = {s["name"] for s in container.get("secrets", [])}
            checks.check("SURGE_API__ADMIN_TOKEN" in secrets, f"task {family}: admin token from Secrets Manager")
            collector = containers.get("otel-collector", {})
            checks.check(
                {s["name"] for s in collector.get("secrets", [])} == {"AOT_CONFIG_CONTENT"}
                and collector.get("essential") is False,
                f"task {family}: non-essential otel-collector sidecar configured from SSM",
            )
            health = " ".join(container.get("healthCheck", {}).get("command", []))
            checks.check("/healthz" in health, f"task {family}: container health check on /healthz", health)


def check_iam(checks, region, name, role, resources, buckets):
    peer_region = SECONDARY_REGION if role == "primary" else PRIMARY_REGION
    account = boto3.client(
        "sts", endpoint_url=region.sqs.meta.endpoint_url, region_name=region.name
    ).get_caller_identity()["Account"]

    def statements(logical, policy):
        document = _policy_document(
            region.iam.get_role_policy(RoleName=resources[logical], PolicyName=policy)["PolicyDocument"]
        )
        return {s.get("Sid"): s for s in document["Statement"]}

    dispatcher = statements("DispatcherTaskRole", "surge-dispatcher")
    queue_arns = set(_list(dispatcher["QueuesBothRegions"]["Resource"]))
    want = {f"arn:aws:sqs:{r}:{account}:{name}-{q}" for r in (region.name, peer_region) for q in QUEUES}
    checks.check(
        queue_arns == want,
        "dispatcher role: exactly the ten Surge queues of both regions",
        json.dumps(sorted(queue_arns ^ want)),
    )
    checks.check(
        set(_list(dispatcher["QueuesBothRegions"]["Action"]))
        == {
            "sqs:SendMessage",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueUrl",
            "sqs:GetQueueAttributes",
        },
        "dispatcher role: queue actions are Surge's data plane only",
    )
    objects = set(_list(dispatcher["ObjectsBothBuckets"]["Resource"]))
    checks.check(
        objects == {f"arn:aws:s3:::{b}/*" for b in buckets.values()},
        "dispatcher role: objects of both buckets",
        json.dumps(sorted(objects)),
    )
    services = set(_list(dispatcher["ResizeWorkerServices"]["Resource"]))
    checks.check(
        len(services) == 2 and all(s.endswith(("-worker-small", "-worker-large")) for s in services),
        "dispatcher role: resizes the two worker services only",
        json.dumps(sorted(services)),
    )

    worker = statements("WorkerTaskRole", "surge-worker")
    consumed = set(_list(worker["ConsumeLanes"]["Resource"]))
    checks.check(
        consumed == {f"arn:aws:sqs:{region.name}:{account}:{name}-lane-{lane}" for lane in ("small", "large")},
        "worker role: consumes this region's lanes only",
        json.dumps(sorted(consumed)),
    )
    sends = set(_list(worker["BuryAndOutbox"]["Resource"]))
    checks.check(
        sends == {f"arn:aws:sqs:{region.name}:{account}:{name}-{q}" for q in ("dead-letter", "replication")},
        "worker role: sends to dead-letter and replication only",
        json.dumps(sorted(sends)),
    )
    protect = worker["ProtectOwnTask"]
    checks.check(
        set(_list(protect["Action"])) == {"ecs:UpdateTaskProtection", "ecs:GetTaskProtection"}
        and _list(protect["Resource"]) == [f"arn:aws:ecs:{region.name}:{account}:task/{name}/*"],
        "worker role: protects tasks of this cluster only",
        json.dumps(protect),
    )
    everything = [r for s in worker.values() for r in _list(s["Resource"])]
    checks.check(
        not any(r.endswith(":::" + b + "/*") for r in everything for b in buckets.values()),
        "worker role: no whole-bucket object access",
    )


def check_rest(checks, region, name, outputs, resources):
    topics = [t["TopicArn"] for t in region.sns.list_topics()["Topics"]]
    checks.check(
        outputs.get("AlarmTopicArn") in topics and outputs["AlarmTopicArn"].endswith(f":{name}-alarms"),
        f"SNS topic {name}-alarms",
    )
    found = region.logs.describe_log_groups(logGroupNamePrefix=f"/surge/{name}/")["logGroups"]
    groups = {g["logGroupName"]: g.get("retentionInDays") for g in found}
    for group, days in (
        (f"/surge/{name}/dispatcher", 30),
        (f"/surge/{name}/worker", 30),
        (f"/surge/{name}/otel-collector", 7),
        (f"/surge/{name}/metrics", 7),
    ):
        checks.check(groups.get(group) == days, f"log group {group}, {days} days", str(groups.get(group)))
    config = region.ssm.get_parameter(Name=f"/{name}/otel-collector-config")["Parameter"]["Value"]
    parsed = yaml.safe_load(config)
    emf = parsed["exporters"]["awsemf"]
    selectors = [s for d in emf["metric_declarations"] for s in d["metric_name_selectors"]]
    checks.check(
        emf["namespace"] == "Surge"
        and emf["region"] == region.name
        and "^surge_replication_lag_seconds" in selectors
        and parsed["receivers"]["prometheus"]["config"]["scrape_configs"][0]["static_configs"][0]["targets"]
        == ["127.0.0.1:8080"],
        "collector config: scrapes 127.0.0.1:8080, awsemf into Surge with the replication lag",
    )
    dns = outputs.get("LoadBalancerDnsName", "")
    balancers = region.elbv2.describe_load_balancers()["LoadBalancers"]
    balancer = next((b for b in balancers if b["DNSName"] == dns), None)
    checks.check(balancer is not None, "load balancer (output LoadBalancerDnsName)", dns)
    groups = region.elbv2.describe_target_groups(TargetGroupArns=[resources["DispatcherTargetGroup"]])["TargetGroups"]
    checks.check(
        groups
        and groups[0].get("HealthCheckPath") == "/readyz"
        and groups[0].get("Port") == 8080
        and groups[0].get("TargetType") == "ip",
        "target group: ip targets on 8080, health check /readyz",
    )
    if balancer:
        listeners = region.elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
        hidden = False
        for listener in listeners:
            for rule in region.elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
                paths = [
                    v
                    for c in rule.get("Conditions", [])
                    for v in c.get("PathPatternConfig", {}).get("Values", c.get("Values", []))
                ]
                hidden |= "/metrics" in paths and rule["Actions"][0]["Type"] == "fixed-response"
        checks.check(hidden, "load balancer answers /metrics itself (404), never the dispatcher")
        ports = sorted(listener["Port"] for listener in listeners)
        checks.check(
            ports == ([80, 443] if resources.get("HttpsListener") else [80]),
            "listeners: 80 (+443 with a certificate)",
            json.dumps(ports),
        )


def check_alarms(checks, region, name, template):
    queues = {"IncomingQueue": "incoming", "SmallLaneQueue": "lane-small", "LargeLaneQueue": "lane-large"}
    live = {a["AlarmName"]: a for a in region.cloudwatch.describe_alarms(AlarmNamePrefix=f"{name}-")["MetricAlarms"]}
    if live:
        for queue in queues.values():
            alarm = live.get(f"{name}-{region.name}-{queue}-backlog-age", {})
            checks.check(alarm.get("MetricName") == "ApproximateAgeOfOldestMessage", f"alarm: {queue} backlog age")
        alarm = live.get(f"{name}-{region.name}-dead-letters", {})
        checks.check(alarm.get("MetricName") == "ApproximateNumberOfMessagesVisible", "alarm: dead letters")
        alarm = live.get(f"{name}-{region.name}-replication-lag", {})
        checks.check(
            alarm.get("Namespace") == "Surge" and alarm.get("Threshold") == 60.0, "alarm: replication lag > 60 s"
        )
        return
    gap = "moto skips AWS::CloudWatch::Alarm"
    alarms = {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    to_topic = all(a.get("AlarmActions") == [{"Ref": "AlarmTopic"}] for a in alarms.values())
    checks.template(to_topic, f"all {len(alarms)} alarms notify the SNS topic", gap)

    def watches(props, namespace, metric, queue=None):
        dimensions = props.get("Dimensions", [])
        on_queue = queue is None or dimensions == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
        return props.get("Namespace") == namespace and props.get("MetricName") == metric and on_queue

    for logical, queue in queues.items():
        checks.template(
            any(watches(a, "AWS/SQS", "ApproximateAgeOfOldestMessage", logical) for a in alarms.values()),
            f"alarm: {queue} backlog age (ApproximateAgeOfOldestMessage)",
            gap,
        )
    checks.template(
        any(
            watches(a, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "DeadLetterQueue")
            and a.get("Threshold") == 0
            and a.get("ComparisonOperator") == "GreaterThanThreshold"
            for a in alarms.values()
        ),
        "alarm: any message in dead-letter",
        gap,
    )
    checks.template(
        any(
            watches(a, "Surge", "surge_replication_lag_seconds")
            and not a.get("Dimensions")
            and a.get("Threshold") == {"Ref": "ReplicationLagAlarmSeconds"}
            for a in alarms.values()
        ),
        "alarm: Surge/surge_replication_lag_seconds above ReplicationLagAlarmSeconds",
        gap,
    )


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: smoke.py ENDPOINT_URL TEMPLATE")
    endpoint, template_path = sys.argv[1], sys.argv[2]
    body = open(template_path, encoding="utf-8").read()
    template = yaml.load(body, Loader=CfnLoader)
    run = uuid.uuid4().hex[:6]
    name = f"smoke{run}"  # unique per run: the same moto server can take several runs
    primary, secondary = Region(endpoint, PRIMARY_REGION), Region(endpoint, SECONDARY_REGION)
    try:
        account = boto3.client("sts", endpoint_url=endpoint, region_name=PRIMARY_REGION).get_caller_identity()[
            "Account"
        ]
    except Exception as err:
        raise SystemExit(f"cannot reach the moto server at {endpoint}: {err}") from None
    buckets = {"primary": f"{name}-{account}-{PRIMARY_REGION}", "secondary": f"{name}-{account}-{SECONDARY_REGION}"}
    stacks = {"primary": f"{name}-primary", "secondary": f"{name}-secondary"}

    def stack_parameters(region, role, **overrides):
        vpc, private, public = network(region)
        secret = region.secrets.create_secret(Name=f"{name}/admin-token", SecretString=uuid.uuid4().hex)["ARN"]
        values = {
            "Role": role,
            "Name": name,
            "PeerRegion": SECONDARY_REGION if role == "primary" else PRIMARY_REGION,
            "BucketName": buckets[role],
            "PeerBucketName": buckets["secondary" if role == "primary" else "primary"],
            "QueuePrefix": f"{name}-",
            "ImageUri": f"{account}.dkr.ecr.{region.name}.amazonaws.com/surge:smoke",
            "AdminTokenSecretArn": secret,
            "VpcId": vpc,
            "PrivateSubnetIds": ",".join(private),
            "PublicSubnetIds": ",".join(public),
        }
        values.update(overrides)
        return values

    # The template is over CloudFormation's 51,200-byte limit for an inline TemplateBody, so it
    # goes through S3 as `aws cloudformation deploy --s3-bucket` sends it (infra/README.md).
    template_urls = {}
    for region in (primary, secondary):
        artifacts = f"{name}-cfn-{region.name}"
        region.s3.create_bucket(Bucket=artifacts, CreateBucketConfiguration={"LocationConstraint": region.name})
        region.s3.put_object(Bucket=artifacts, Key="surge-region.yaml", Body=body.encode("utf-8"))
        template_urls[region.name] = f"https://{artifacts}.s3.{region.name}.amazonaws.com/surge-region.yaml"

    print(f"deploying {template_path} to {endpoint} as {stacks['secondary']} and {stacks['primary']}")
    # 1. The standby secondary, without backup replication (the primary bucket does not exist yet).
    secondary_values = stack_parameters(secondary, "secondary", DispatcherDesiredCount=0)
    secondary.cfn.create_stack(
        StackName=stacks["secondary"],
        TemplateURL=template_urls[SECONDARY_REGION],
        Parameters=parameters(secondary_values),
        Capabilities=["CAPABILITY_IAM"],
    )
    wait_for_stack(secondary, stacks["secondary"], "CREATE_COMPLETE")
    # 2. The serving primary, with HTTPS and an alarm e-mail to take the conditional branches.
    certificate = primary.acm.request_certificate(DomainName="surge.example.com")["CertificateArn"]
    primary.cfn.create_stack(
        StackName=stacks["primary"],
        TemplateURL=template_urls[PRIMARY_REGION],
        Capabilities=["CAPABILITY_IAM"],
        Parameters=parameters(
            stack_parameters(
                primary,
                "primary",
                DispatcherDesiredCount=1,
                CertificateArn=certificate,
                AlarmEmail="oncall@example.com",
            )
        ),
    )
    outputs = {"primary": wait_for_stack(primary, stacks["primary"], "CREATE_COMPLETE")}
    # 3. Backup replication on the secondary, now that the primary's bucket and key exist.
    secondary_values["EnableBackupReplication"] = "true"
    secondary.cfn.update_stack(
        StackName=stacks["secondary"],
        TemplateURL=template_urls[SECONDARY_REGION],
        Parameters=parameters(secondary_values),
        Capabilities=["CAPABILITY_IAM"],
    )
    outputs["secondary"] = wait_for_stack(secondary, stacks["secondary"], "UPDATE_COMPLETE")

    checks = Checks()
    for role, region in (("primary", primary), ("secondary", secondary)):
        print(f"\n{role} ({region.name}), stack {stacks[role]}:")
        checks.context = f"{role} ({region.name})"
        resources = physical_ids(region, stacks[role])
        check_queues(checks, region, f"{name}-", outputs[role])
        check_bucket(checks, region, name, buckets[role], outputs[role], template)
        if role == "secondary":
            check_replication(checks, region, buckets[role], buckets["primary"], resources, template)
        else:
            checks.check("BackupReplicationRole" not in resources, "no backup replication from the primary")
        check_ecs(checks, region, name, role, outputs[role], buckets)
        check_iam(checks, region, name, role, resources, buckets)
        check_rest(checks, region, name, outputs[role], resources)
        check_alarms(checks, region, name, template)

    print()
    if checks.template_only:
        print("checked in the template only, moto does not deploy them: " + "; ".join(sorted(checks.template_only)))
    if checks.failures:
        print(f"smoke FAILED: {len(checks.failures)} check(s) failed:")
        for failure in checks.failures:
            print(f"  {failure}")
        sys.exit(1)
    print("smoke passed: both stacks deployed and checked")


if __name__ == "__main__":
    main()
