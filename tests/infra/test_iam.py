"""Every IAM and resource policy the program creates, parsed as JSON and read the way a security reviewer would."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers import capacity, dispatch, quota
from handlers.config import LauncherConfig
from handlers.jobmodel import STATUS_INDEX
from stackspec.settings import STACK_TAG, StackSettings
from tests.infra.conftest import ACCOUNT, PARTITION, REGION, STACK, TUNED, WORKER_TAG, Deployment

ALLOWED_STAR_RESOURCES: dict[str, str] = {
    "FindStackInstances": "ec2:DescribeInstances supports no resource-level permissions (the service authorization "
                          "reference lists no resource type for it); it only reads, and the sweeper filters by the "
                          "stack tag",
    "ListJobStreams": "dynamodb:ListStreams has no resource type in the service authorization reference (parliament's "
                      "copy of it agrees); it lists stream ARNs and reads no data",
}
"""Statements allowed to name the resource `"*"`, by Sid, with the reason AWS requires it.

Every other action the program grants supports resource-level permissions. The resources that usually tempt a `"*"`
are scoped instead, e.g. the AMI that `ec2:RunInstances` boots to `image/*` in the stack's region (its id is
resolved from SSM at launch time).
`Principal: "*"` does appear, in bucket and VPC endpoint policies: that is the principal element, which AWS requires
there (an endpoint policy applies to every caller in the VPC; a TLS-only Deny must catch every caller).
"""

POLICY_INPUTS = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "policy",
    "aws:iam/role:Role": "assumeRolePolicy",
}


def all_policies(deployment: Deployment) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for resource in deployment.resources:
        key = POLICY_INPUTS.get(resource.type)
        if key:
            assert key in resource.inputs, f"{resource.name} has no {key}"
            found.append((resource.name, json.loads(resource.inputs[key])))
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    assert policy["Version"] == "2012-10-17"
    return as_list(policy["Statement"])


def role_policy(deployment: Deployment, name: str) -> dict[str, dict[str, Any]]:
    """The named inline role policy's statements by Sid."""
    policy = deployment.one("aws:iam/rolePolicy:RolePolicy", name).policy()
    by_sid = {s["Sid"]: s for s in statements(policy)}
    assert len(by_sid) == len(statements(policy)), f"{name}: duplicate Sids"
    return by_sid


def granted(deployment: Deployment, name: str) -> set[tuple[str, str]]:
    """Every (action, resource) pair the named role policy allows."""
    return {
        (action, resource)
        for s in role_policy(deployment, name).values()
        if s["Effect"] == "Allow"
        for action in as_list(s["Action"])
        for resource in as_list(s["Resource"])
    }


def test_every_policy_is_json_with_exact_actions_and_scoped_resources(dev: Deployment) -> None:
    """Regression: a wildcard action (`s3:*`, `*`) or resource `"*"` in an Allow hands out far more than needed."""
    policies = all_policies(dev)
    assert {name for name, _ in policies} == {
        "api-upload-role", "api-jobs-role", "api-manage-role", "compute-launcher-role", "compute-release-role",
        "compute-sweeper-role", "compute-worker-role", "api-upload-policy", "api-jobs-policy", "api-manage-policy",
        "compute-launcher-policy",
        "compute-release-policy", "compute-sweeper-policy",
        "compute-worker-policy", "storage-data-policy", "site-files-policy", "compute-s3", "compute-dynamodb",
    }
    star = []
    for name, policy in policies:
        for s in statements(policy):
            if s["Effect"] != "Allow" or s.get("Action") == "sts:AssumeRole":
                continue
            for action in as_list(s["Action"]):
                assert "*" not in action, f"{name} {s.get('Sid')}: wildcard action {action}"
            resources = as_list(s["Resource"])
            if "*" in resources:
                assert s.get("Sid") in ALLOWED_STAR_RESOURCES, f"{name} {s.get('Sid')}: resource '*'"
                assert resources == ["*"], f"{name} {s.get('Sid')}: '*' next to scoped resources"
                star.append((name, s["Sid"], s["Action"]))
                continue
            for resource in resources:
                assert resource.startswith(f"arn:{PARTITION}:"), f"{name}: {resource!r} is not an ARN"
    assert sorted(star) == [
        ("compute-launcher-policy", "ListJobStreams", ["dynamodb:ListStreams"]),
        ("compute-sweeper-policy", "FindStackInstances", ["ec2:DescribeInstances"]),
    ], "DescribeInstances (sweeper) and ListStreams (launcher) must be the only Allows on '*'"


def test_deny_statements_are_the_tls_guard_only(dev: Deployment) -> None:
    """Regression: the only broad action (`s3:*`) must stay in a Deny, conditioned on insecure transport."""
    for name, policy in all_policies(dev):
        for s in statements(policy):
            if s["Effect"] == "Deny":
                assert s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, name
                assert s["Principal"] == "*", name


def test_roles_trust_only_their_service(dev: Deployment) -> None:
    """Regression: a trust policy naming the wrong service (or an account) lets something else assume the role."""
    trusted = {}
    for role in dev.of_type("aws:iam/role:Role"):
        [s] = statements(role.policy("assumeRolePolicy"))
        assert s["Action"] == "sts:AssumeRole" and s["Effect"] == "Allow"
        trusted[role.name] = s["Principal"]
    assert trusted == {
        "api-upload-role": {"Service": "lambda.amazonaws.com"},
        "api-jobs-role": {"Service": "lambda.amazonaws.com"},
        "api-manage-role": {"Service": "lambda.amazonaws.com"},
        "compute-launcher-role": {"Service": "lambda.amazonaws.com"},
        "compute-release-role": {"Service": "lambda.amazonaws.com"},
        "compute-sweeper-role": {"Service": "lambda.amazonaws.com"},
        "compute-worker-role": {"Service": "ec2.amazonaws.com"},
    }


def test_each_function_has_its_own_role(dev: Deployment) -> None:
    """Regression: functions sharing a role share each other's permissions (the API could launch VMs)."""
    roles = {f.name: f.inputs["role"] for f in dev.of_type("aws:lambda/function:Function")}
    assert len(set(roles.values())) == len(roles) == 6, roles
    for function, role_arn in roles.items():
        assert role_arn.endswith(f"role/{function}-role-1a2b3c4"), (function, role_arn)


def _arn(service: str, resource: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


BUCKET = "arn:aws:s3:::storage-data-1a2b3c4"
TABLE = _arn("dynamodb", "table/storage-jobs-1a2b3c4")


def _logs(function: str) -> set[tuple[str, str]]:
    group = _arn("logs", f"log-group:/filepipe/{function}-logs-1a2b3c4:*")
    return {("logs:CreateLogStream", group), ("logs:PutLogEvents", group)}


def test_upload_function_may_only_sign_uploads_into_inputs_and_count_its_grants(dev: Deployment) -> None:
    """Regression: a presigned POST is authorised with the signer's permissions, so without s3:PutObject on inputs/*
    every upload fails with 403; with more, a forged POST could overwrite outputs or the worker script. It counts
    each user's grants (UpdateItem on the `uploads#` counters only); the POST tags the upload as unclaimed, which S3
    authorises with the signer's s3:PutObjectTagging."""
    assert granted(dev, "api-upload-policy") == {("s3:PutObject", f"{BUCKET}/inputs/*"),
                                                 ("s3:PutObjectTagging", f"{BUCKET}/inputs/*"),
                                                 ("dynamodb:UpdateItem", TABLE)} | _logs("api-upload")
    counting = role_policy(dev, "api-upload-policy")["CountUploadGrantsPerUser"]
    assert counting["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["uploads#*"]}}


def test_jobs_function_reads_what_it_serves_and_writes_only_jobs(dev: Deployment) -> None:
    """Regression: the jobs handler HEADs inputs, signs GETs of outputs, conditionally puts and reads items, counts
    each user's jobs, and lists through the `by-owner` index; missing any one of these is a 5xx, more is needless
    exposure."""
    assert granted(dev, "api-jobs-policy") == {
        ("s3:GetObject", f"{BUCKET}/inputs/*"),
        ("s3:GetObject", f"{BUCKET}/outputs/*"),
        ("s3:ListBucket", BUCKET),
        ("dynamodb:GetItem", TABLE),
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:UpdateItem", TABLE),
        ("dynamodb:Query", f"{TABLE}/index/by-owner"),
    } | _logs("api-jobs")


def test_the_jobs_function_updates_only_the_per_user_counters(dev: Deployment) -> None:
    """Regression: UpdateItem on the whole table would let the API move any job's status; it may only touch the
    `user#` counter items (DynamoDB's LeadingKeys condition on the partition key)."""
    statements = role_policy(dev, "api-jobs-policy").values()
    [update] = [s for s in statements if "dynamodb:UpdateItem" in as_list(s["Action"])]
    assert update["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{quota.COUNTER_PREFIX}*"]}}


def test_manage_function_copies_inputs_deletes_job_files_and_manages_job_items(dev: Deployment) -> None:
    """Regression: the manage handler copies an input within inputs/ (GetObject + PutObject), deletes a job's
    input, output and log, reads jobs and the VM slots, and writes job items and counters in transactions; it signs
    the download of a finished job a repeated retry answers with (GetObject on outputs/); no index, no other prefix
    (the worker script). Missing one is a 5xx, more is needless exposure."""
    assert granted(dev, "api-manage-policy") == {
        ("s3:GetObject", f"{BUCKET}/inputs/*"),
        ("s3:GetObject", f"{BUCKET}/outputs/*"),
        ("s3:PutObject", f"{BUCKET}/inputs/*"),
        ("s3:DeleteObject", f"{BUCKET}/inputs/*"),
        ("s3:DeleteObject", f"{BUCKET}/outputs/*"),
        ("s3:ListBucket", BUCKET),
        ("dynamodb:GetItem", TABLE),
        ("dynamodb:BatchGetItem", TABLE),
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:UpdateItem", TABLE),
        ("dynamodb:DeleteItem", TABLE),
    } | _logs("api-manage")


def test_the_manage_function_never_writes_a_vm_slot(dev: Deployment) -> None:
    """Regression: a write to a `slot#` item (freeing a slot while its VM lives) breaks the VM cap; the manage
    function reads the slots but every write of its is conditioned away from them."""
    statements = role_policy(dev, "api-manage-policy").values()
    [write] = [s for s in statements if "dynamodb:UpdateItem" in as_list(s["Action"])]
    assert set(write["Action"]) == {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    assert write["Condition"] == {
        "ForAllValues:StringNotLike": {"dynamodb:LeadingKeys": [f"{capacity.SLOT_PREFIX}*"]}}


def test_worker_instance_role_is_limited_to_its_prefixes_and_the_table(dev: Deployment) -> None:
    """Regression: a VM that can write inputs or the worker script could poison other jobs."""
    assert granted(dev, "compute-worker-policy") == {
        ("s3:GetObject", f"{BUCKET}/worker/worker.py"),
        ("s3:GetObject", f"{BUCKET}/inputs/*"),
        ("s3:PutObject", f"{BUCKET}/outputs/*"),
        ("s3:AbortMultipartUpload", f"{BUCKET}/outputs/*"),
        ("dynamodb:GetItem", TABLE),
        ("dynamodb:UpdateItem", TABLE),
    }


class TestLauncherPolicy:
    """The launcher can start VMs: its policy is the one that matters most."""

    @pytest.fixture
    def launcher(self, dev: Deployment) -> dict[str, dict[str, Any]]:
        return role_policy(dev, "compute-launcher-policy")

    def test_run_instances_only_from_this_template_into_this_network(
        self, dev: Deployment, launcher: dict[str, dict[str, Any]]
    ) -> None:
        """Regression: RunInstances on "*" lets a compromised launcher start any AMI, size or network in the
        account; missing one of the touched resource types makes every launch fail with UnauthorizedOperation."""
        template = dev.one("aws:ec2/launchTemplate:LaunchTemplate").outputs["arn"]
        subnets = {s.outputs["arn"] for s in dev.of_type("aws:ec2/subnet:Subnet")}
        group = dev.one("aws:ec2/securityGroup:SecurityGroup").outputs["arn"]
        run = launcher["LaunchFromTemplate"]
        assert run["Action"] == ["ec2:RunInstances"]
        assert set(run["Resource"]) == {
            template, *subnets, group,
            _arn("ec2", "instance/*"), _arn("ec2", "volume/*"), _arn("ec2", "network-interface/*"),
            _arn("ec2", "image/*", account=""),
        }
        assert len(subnets) == 2

    def test_tags_only_while_launching(self, launcher: dict[str, dict[str, Any]]) -> None:
        """Regression: unconditioned CreateTags lets the launcher retag any instance, e.g. as another stack's."""
        tags = launcher["TagOnLaunchOnly"]
        assert tags["Action"] == ["ec2:CreateTags"]
        assert tags["Condition"] == {"StringEquals": {"ec2:CreateAction": "RunInstances"}}
        assert set(tags["Resource"]) == {_arn("ec2", "instance/*"), _arn("ec2", "volume/*")}

    def test_passes_only_the_worker_role_to_ec2(self, dev: Deployment, launcher: dict[str, dict[str, Any]]) -> None:
        """Regression: PassRole on "*" lets the launcher give a VM any role in the account (privilege escalation)."""
        worker_role = dev.one("aws:iam/role:Role", "compute-worker-role").outputs["arn"]
        assert launcher["PassWorkerRole"]["Resource"] == [worker_role]
        assert launcher["PassWorkerRole"]["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}

    def test_resolves_only_the_configured_ami_parameter(self, launcher: dict[str, dict[str, Any]]) -> None:
        """Regression: a template with `resolve:ssm:` needs ssm:GetParameters on that parameter, or every launch
        fails; AWS public parameters have no account in their ARN."""
        parameter = StackSettings().ami_parameter
        assert launcher["ResolveAmi"] == {
            "Sid": "ResolveAmi", "Effect": "Allow", "Action": ["ssm:GetParameters"],
            "Resource": [f"arn:{PARTITION}:ssm:{REGION}::parameter{parameter}"],
        }

    def test_reads_the_stream_moves_jobs_and_reports_failures(
        self, dev: Deployment, launcher: dict[str, dict[str, Any]]
    ) -> None:
        """Regression: without stream read the mapping cannot be created; without sqs:SendMessage failed batches
        are dropped instead of landing in the on-failure queue."""
        table = dev.one("aws:dynamodb/table:Table").outputs
        queue = dev.one("aws:sqs/queue:Queue").outputs["arn"]
        assert launcher["ReadJobStream"]["Resource"] == [table["streamArn"]]
        assert set(launcher["ReadJobStream"]["Action"]) == {
            "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
        }
        assert launcher["ListJobStreams"]["Action"] == ["dynamodb:ListStreams"]
        assert launcher["MoveJobs"]["Action"] == ["dynamodb:UpdateItem"]
        assert launcher["MoveJobs"]["Resource"] == [table["arn"]]
        assert launcher["FindQueuedJobs"]["Action"] == ["dynamodb:Query"]
        assert launcher["FindQueuedJobs"]["Resource"] == [f"{table['arn']}/index/{STATUS_INDEX}"]
        assert launcher["RecordFailedBatches"] == {
            "Sid": "RecordFailedBatches", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [queue],
        }
        assert set(launcher) == {
            "ReadJobStream", "ListJobStreams", "MoveJobs", "FindQueuedJobs", "LaunchFromTemplate", "TagOnLaunchOnly",
            "PassWorkerRole", "ResolveAmi", "TerminateStackInstances", "RecordFailedBatches", "OwnLogGroup",
            "ClaimUploads",
        }
        bucket = dev.one("aws:s3/bucket:Bucket", "storage-data").outputs["arn"]
        assert launcher["ClaimUploads"]["Action"] == ["s3:DeleteObjectTagging"]
        assert launcher["ClaimUploads"]["Resource"] == [f"{bucket}/inputs/*"]

    def test_terminates_only_this_stacks_instances_as_the_sweeper_does(
        self, dev: Deployment, launcher: dict[str, dict[str, Any]]
    ) -> None:
        """A cancelled job's VM is terminated by the launcher: regression, without the tag condition a launcher bug
        could terminate any instance of the account."""
        assert launcher["TerminateStackInstances"] == {
            "Sid": "TerminateStackInstances", "Effect": "Allow", "Action": ["ec2:TerminateInstances"],
            "Resource": [_arn("ec2", "instance/*")],
            "Condition": {"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": WORKER_TAG}},
        }


DISPATCH_SIDS = {"MoveJobs", "FindQueuedJobs", "LaunchFromTemplate", "TagOnLaunchOnly", "PassWorkerRole", "ResolveAmi"}
"""What `handlers.dispatch.dispatch` needs; both the launcher and the sweeper call it."""


def test_launcher_tags_are_allowed_by_create_tags(dev: Deployment) -> None:
    """Regression: RunInstances with TagSpecifications is also authorised as ec2:CreateTags on each tagged resource;
    a resource type the launcher tags but the policy omits (or a tag condition that excludes the stack tag) makes
    every launch fail with UnauthorizedOperation."""
    class RecordingEc2:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def run_instances(self, **kwargs: Any) -> dict[str, Any]:
            self.calls.append(kwargs)
            return {"Instances": [{"InstanceId": "i-0123456789abcdef0"}]}

    ec2 = RecordingEc2()
    config = LauncherConfig(table="t", launch_template_id="lt-1", subnet_ids=("subnet-1",), max_concurrent_vms=1,
                            job_timeout_minutes=5, stack_tag=STACK)
    dispatch.run_instance(ec2, config, "V1StGXR8_Z5jdHi6B-myT")
    [call] = ec2.calls
    tagged = {spec["ResourceType"] for spec in call["TagSpecifications"]}
    assert {"Key": STACK_TAG, "Value": STACK} in call["TagSpecifications"][0]["Tags"]
    tags = role_policy(dev, "compute-launcher-policy")["TagOnLaunchOnly"]
    assert {r.rsplit(":", 1)[1].split("/")[0] for r in tags["Resource"]} >= tagged
    assert tags["Condition"] == {"StringEquals": {"ec2:CreateAction": "RunInstances"}}, (
        "only the CreateAction condition: a tag-key or request-tag condition must list the stack tag"
    )


class TestReleasePolicy:
    """The slot release function frees a terminated VM's slot and starts queued jobs in it: dispatch, nothing more."""

    def test_dispatches_with_exactly_the_launchers_statements_and_nothing_else(self, dev: Deployment) -> None:
        """Regression: the function that every VM terminated in the account invokes must not read the stream or send
        to the failure queue; its dispatch statements must not drift from the launcher's, or the queue would move
        after a VM's end only when the sweeper came round; and it terminates only this stack's VMs, as the launcher
        does (a job cancelled while it starts the job's VM: its role had no TerminateInstances)."""
        release = role_policy(dev, "compute-release-policy")
        launcher = role_policy(dev, "compute-launcher-policy")
        assert set(release) == DISPATCH_SIDS | {"ReadSlots", "TerminateStackInstances", "OwnLogGroup"}
        assert release["TerminateStackInstances"] == launcher["TerminateStackInstances"]
        table = dev.one("aws:dynamodb/table:Table").outputs["arn"]
        assert release["ReadSlots"]["Action"] == ["dynamodb:BatchGetItem"]
        assert release["ReadSlots"]["Resource"] == [table]
        assert {sid: release[sid] for sid in DISPATCH_SIDS} == {sid: launcher[sid] for sid in DISPATCH_SIDS}
        logs = dev.one("aws:cloudwatch/logGroup:LogGroup", "compute-release-logs").outputs["arn"]
        assert release["OwnLogGroup"]["Resource"] == [f"{logs}:*"]


class TestSweeperPolicy:
    """The sweeper terminates VMs and starts queued jobs: terminate only this stack's, start only as the launcher."""

    @pytest.fixture
    def sweeper(self, dev: Deployment) -> dict[str, dict[str, Any]]:
        return role_policy(dev, "compute-sweeper-policy")

    def test_terminates_only_this_stacks_instances_in_this_account_and_region(
        self, sweeper: dict[str, dict[str, Any]]
    ) -> None:
        """Regression: TerminateInstances without the tag condition lets a sweeper bug (or a compromised function)
        terminate every instance in the account, including other stacks' workers and unrelated servers."""
        assert sweeper["TerminateStackInstances"] == {
            "Sid": "TerminateStackInstances", "Effect": "Allow", "Action": ["ec2:TerminateInstances"],
            "Resource": [_arn("ec2", "instance/*")],
            "Condition": {"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": WORKER_TAG}},
        }

    def test_describes_instances_and_nothing_else_on_star(self, sweeper: dict[str, dict[str, Any]]) -> None:
        """Regression: a second action slipped into the `"*"` statement inherits its unscoped resource."""
        assert sweeper["FindStackInstances"] == {
            "Sid": "FindStackInstances", "Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": ["*"],
        }
        assert "ec2:DescribeInstances" not in {a for s in sweeper.values() if s["Sid"] != "FindStackInstances"
                                                for a in s["Action"]}

    def test_dispatches_with_exactly_the_launchers_statements(
        self, dev: Deployment, sweeper: dict[str, dict[str, Any]]
    ) -> None:
        """Regression: a copy of the dispatch statements that drifts from the launcher's (say a new tag, a new
        subnet) makes the sweeper's restarts of queued jobs fail while the launcher's work."""
        launcher = role_policy(dev, "compute-launcher-policy")
        assert {sid: sweeper[sid] for sid in DISPATCH_SIDS} == {sid: launcher[sid] for sid in DISPATCH_SIDS}

    def test_reads_and_moves_jobs_and_slots_but_never_creates_or_deletes(
        self, dev: Deployment
    ) -> None:
        """Regression: the sweeper reads slot holders in batches, fails jobs and frees slots by conditional update,
        and finds LAUNCHING/RUNNING/QUEUED jobs by the status index; PutItem/DeleteItem or the stream are not its."""
        table = dev.one("aws:dynamodb/table:Table").outputs["arn"]
        dynamodb = {(a, r) for a, r in granted(dev, "compute-sweeper-policy") if a.startswith("dynamodb:")}
        assert dynamodb == {
            ("dynamodb:BatchGetItem", table), ("dynamodb:GetItem", table), ("dynamodb:UpdateItem", table),
            ("dynamodb:Query", f"{table}/index/{STATUS_INDEX}"),
        }

    def test_has_nothing_beyond_sweeping_dispatching_and_its_logs(
        self, sweeper: dict[str, dict[str, Any]]
    ) -> None:
        """Regression: the sweeper needs neither the stream nor the failure queue; extra grants are exposure."""
        assert set(sweeper) == DISPATCH_SIDS | {"FindStackInstances", "TerminateStackInstances", "ReadSlotsAndJobs",
                                                "OwnLogGroup"}
        assert sweeper["OwnLogGroup"]["Resource"] == [
            _arn("logs", "log-group:/filepipe/compute-sweeper-logs-1a2b3c4:*")
        ]


def test_custom_ami_parameter_reaches_template_and_policy(tuned: Deployment) -> None:
    """Regression: changing `amiParameter` must move both the template's `resolve:ssm:` and the permission to it;
    a private parameter's ARN carries the account."""
    deployment = tuned
    assert TUNED["amiParameter"] == "/filepipe/worker-ami"
    template = deployment.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["imageId"] == "resolve:ssm:/filepipe/worker-ami"
    resolve = role_policy(deployment, "compute-launcher-policy")["ResolveAmi"]
    assert resolve["Resource"] == [_arn("ssm", "parameter/filepipe/worker-ami")]


def test_data_bucket_policy_denies_plain_http(dev: Deployment) -> None:
    """Regression: without the TLS-only deny, presigned URLs also work over plain HTTP."""
    [deny] = statements(dev.one("aws:s3/bucketPolicy:BucketPolicy", "storage-data-policy").policy())
    assert deny["Effect"] == "Deny" and deny["Action"] == ["s3:*"]
    assert set(deny["Resource"]) == {BUCKET, f"{BUCKET}/*"}


def test_site_bucket_is_readable_only_by_this_distribution(dev: Deployment) -> None:
    """Regression: an OAC grant without the SourceArn condition lets any CloudFront distribution read the bucket."""
    distribution = dev.one("aws:cloudfront/distribution:Distribution").outputs["arn"]
    policy = statements(dev.one("aws:s3/bucketPolicy:BucketPolicy", "site-files-policy").policy())
    read = next(s for s in policy if s["Effect"] == "Allow")
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert read["Action"] == ["s3:GetObject"]
    assert read["Resource"] == ["arn:aws:s3:::site-files-1a2b3c4/*"]
    assert read["Condition"] == {"StringEquals": {"AWS:SourceArn": distribution}}
    assert any(s["Effect"] == "Deny" for s in policy), "site bucket lacks the TLS-only deny"


def test_s3_endpoint_reaches_amazon_linux_packages_and_the_data_bucket_only(dev: Deployment) -> None:
    """Regression: without the AL2023 repository bucket in the endpoint policy, `dnf install python3-boto3` hangs in
    the isolated subnet and every job fails; with `s3:*` on "*", a VM could copy data to any bucket."""
    endpoint = dev.one("aws:ec2/vpcEndpoint:VpcEndpoint", "compute-s3")
    by_sid = {s["Sid"]: s for s in statements(endpoint.policy())}
    assert by_sid["AmazonLinuxPackages"]["Resource"] == [f"arn:aws:s3:::al2023-repos-{REGION}-de612dc2/*"]
    assert by_sid["AmazonLinuxPackages"]["Action"] == ["s3:GetObject"]
    assert by_sid["StackDataBucket"]["Resource"] == [f"{BUCKET}/*"]
    assert set(by_sid) == {"AmazonLinuxPackages", "StackDataBucket"}


def test_dynamodb_endpoint_reaches_the_jobs_table_only(dev: Deployment) -> None:
    """Regression: an open DynamoDB endpoint lets a VM read or write any table in the account."""
    endpoint = dev.one("aws:ec2/vpcEndpoint:VpcEndpoint", "compute-dynamodb")
    [only] = statements(endpoint.policy())
    assert only["Resource"] == [TABLE]
    assert only["Action"] == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
