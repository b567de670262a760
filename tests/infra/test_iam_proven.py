"""IAM proven, not only read: every AWS call of a local end-to-end run, checked against the policy the Pulumi program
writes for the function (or VM) that made it.

One local pipeline runs what each component does on AWS: an upload (presigned POST), jobs created, listed and read
(a presigned GET), a job cancelled while it runs (the launcher terminates its VM), retried (twice: the second
answers with the first retry's job and its signed download) and deleted, the launcher starting VMs and releasing
quotas (and reading the stream, as its event source mapping does with its role), the release function freeing
slots and starting a queued job, the sweeper terminating an overdue VM and starting a job whose stream record was
lost, and the worker VMs (their Python processes record
their calls through `local/callhook`). `local.calls.CallLog` records each call with the function that made it;
`tests/iam_calls.py` turns it into the authorisations AWS makes (action, ARN in the deployed stack's names,
condition keys) and evaluates the role policy of the program built under mocks. A call the deployed role would deny
fails the test, and so does a granted action no call used, unless `NOT_EXERCISED` says why a local run cannot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handlers import capacity, jobmodel
from local.app import LocalPipeline
from local.calls import WORKER, AwsCall, CallLog
from local.streams import LambdaHandler
from stackspec.settings import STACK_TAG, StackSettings
from tests.faults.harness import hanging_worker_script, worker_script
from tests.iam_calls import Names, allowed_by, authorizations, denied_and_unused, permitted
from tests.infra.conftest import (
    ACCOUNT,
    PARTITION,
    REGION,
    ROOT,
    WORKER_TAG,
    Deployment,
    RecordingMocks,
    run_program,
)
from tests.local.harness import signed_in
from tests.records import wait_for_final
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e  # the `run` fixture exercises every component through a local stack

POLICIES = {
    "upload": "api-upload-policy", "jobs": "api-jobs-policy", "manage": "api-manage-policy",
    "launcher": "compute-launcher-policy",
    "release": "compute-release-policy", "sweeper": "compute-sweeper-policy", WORKER: "compute-worker-policy",
}
"""The role policy each component's calls are made with."""
ENDPOINTS = {"s3": "compute-s3", "dynamodb": "compute-dynamodb"}
"""The VPC endpoint policies a worker VM's calls also pass (its subnets have no other way out)."""
NOT_EXERCISED: dict[tuple[str, str], str] = {
    ("OwnLogGroup", "logs:CreateLogStream"): "the Lambda runtime writes a function's logs, not the function's code",
    ("OwnLogGroup", "logs:PutLogEvents"): "the Lambda runtime writes a function's logs, not the function's code",
    ("ListJobStreams", "dynamodb:ListStreams"): "the event source mapping lists the table's streams when it is "
                                                "created; local mode's poller is handed the stream ARN",
    ("RecordFailedBatches", "sqs:SendMessage"): "the event source mapping sends a batch there after its last retry; "
                                                "local mode logs it instead (tests/faults/test_deliveries.py)",
    ("NotFoundInsteadOfForbidden", "s3:ListBucket"): "no call names it: it makes S3 answer HeadObject of a missing "
                                                     "upload 404 instead of 403 (tests/api/test_bad_inputs.py)",
    ("TerminateStackInstances", "ec2:TerminateInstances"): "the release function terminates a VM only when its job "
                                                           "is cancelled while it starts the VM (a race a local run "
                                                           "cannot time); tests/infra/test_iam_static.py proves it",
    ("WriteOutputsAndLogs", "s3:AbortMultipartUpload"): "the worker aborts its output's multipart upload only "
                                                        "when a part fails (tests/runtime/test_worker.py)",
}
"""Granted (Sid, action) pairs a local run cannot exercise, with the reason."""
LOST = "this job's stream record is lost"
LARGE_INPUT = 6 * 1024 * 1024
"""An input the worker copies inside S3 (5 MiB or more)."""
SETTINGS = StackSettings(max_concurrent_vms=2, job_timeout_minutes=5)


def losing_new_records(launcher: LambdaHandler, pipeline: LocalPipeline) -> LambdaHandler:
    """Fault injection: the INSERT record of a job whose text is `LOST` never reaches the launcher (the sweeper
    queues such a job)."""
    def lost(record: Mapping[str, Any]) -> bool:
        text = record["dynamodb"].get("NewImage", {}).get("input_text", {}).get("S")
        return record.get("eventName") == "INSERT" and text == LOST

    def wrapped(event: Mapping[str, Any], context: object) -> Any:
        return launcher({**event, "Records": [r for r in event.get("Records", []) if not lost(r)]}, context)
    return wrapped


@dataclass
class Run:
    calls: list[AwsCall]
    names: Names


def slots_held(pipeline: LocalPipeline) -> int:
    return len(capacity.leases(pipeline.client("dynamodb"), pipeline.stack.table, SETTINGS.max_concurrent_vms))


def exercise(pipeline: LocalPipeline) -> None:
    """What each component does on AWS, through the local pipeline."""
    client = signed_in(pipeline)
    # More jobs than VM slots: the launcher starts two, the release function the third when a VM ends. The third's
    # input is over S3's 5 MiB part minimum: the worker copies it inside S3 (UploadPartCopy) into a multipart upload.
    jobs = [client.submit(f"in-{i}.txt", b"data %d" % i, f"text {i}") for i in range(2)]
    jobs.append(client.submit("large.bin", b"\x00" * LARGE_INPUT, "large"))
    for job in jobs:
        assert wait_for_final(client, job["id"], timeout=120)["status"] == "SUCCEEDED"
    assert client.get("/api/jobs").status_code == 200
    assert "output_url" in client.job(jobs[0]["id"])
    wait_for(lambda: slots_held(pipeline) == 0, 30, "every VM's slot to be released")
    manage_jobs(pipeline)
    # A job whose stream record is lost, and a VM past the job timeout: the sweeper (its clock a day ahead)
    # terminates the VM and queues and starts the job.
    lost = client.submit("lost.txt", b"lost", LOST)
    leaked = capacity.acquire(pipeline.client("dynamodb"), pipeline.stack.table, jobmodel.new_id(),
                              SETTINGS.max_concurrent_vms)  # by a launcher that crashed right after
    ec2 = pipeline.client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tags = [{"Key": jobmodel.JOB_ID_TAG, "Value": jobmodel.new_id()}, {"Key": STACK_TAG, "Value": pipeline.stack.stack}]
    ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=pipeline.stack.subnet_ids[0],
                      TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
    report = pipeline.sweep(now=datetime.now(UTC) + timedelta(days=1))
    assert len(report.terminated) == 1 and report.queued == [lost["id"]] and report.started == 1, report
    assert report.slots_freed == [leaked], report
    assert wait_for_final(client, lost["id"], timeout=120)["status"] == "SUCCEEDED"


def manage_jobs(pipeline: LocalPipeline) -> None:
    """Its owner cancels a RUNNING job (its worker hangs reading the input): the launcher terminates its VM, and the
    VM's termination gives the slot back. The job is retried (its input copied), and both are deleted with their
    files."""
    client = signed_in(pipeline)
    with worker_script(pipeline, hanging_worker_script()):
        job = client.submit("hangs.txt", b"hangs", "hangs")
        wait_for(lambda: client.job(job["id"])["status"] == "RUNNING", 60, "the job to run")
        assert client.cancel(job["id"]).status_code == 200
        wait_for(lambda: slots_held(pipeline) == 0, 30, "the cancelled job's VM to be terminated")
    again = client.retry(job["id"])
    assert again.status_code == 201, again.text
    assert wait_for_final(client, again.json()["id"], timeout=120)["status"] == "SUCCEEDED"
    # Retried again: the answer is the job the first retry made, with its output's download signed.
    repeated = client.retry(job["id"])
    assert repeated.status_code == 200 and "output_url" in repeated.json(), repeated.text
    wait_for(lambda: slots_held(pipeline) == 0, 30, "the retried job's VM to be gone")
    for job_id in (job["id"], again.json()["id"]):
        assert client.delete_job(job_id).status_code == 204


def deployed_names(dev: Deployment, pipeline: LocalPipeline) -> Names:
    stack = pipeline.stack
    subnets = sorted(dev.of_type("aws:ec2/subnet:Subnet"), key=lambda subnet: subnet.name)
    table = dev.one("aws:dynamodb/table:Table").outputs
    described = pipeline.client("ec2").describe_instances()["Reservations"]
    return Names(
        partition=PARTITION, region=REGION, account=ACCOUNT,
        tables={stack.table: table["name"]},
        buckets={stack.bucket: dev.exports["bucketName"]},
        streams={stack.stream_arn: table["streamArn"]},
        launch_templates={stack.launch_template_id: dev.one("aws:ec2/launchTemplate:LaunchTemplate").outputs["arn"]},
        subnets={local: subnet.outputs["arn"] for local, subnet in zip(stack.subnet_ids, subnets, strict=True)},
        security_group_arn=dev.one("aws:ec2/securityGroup:SecurityGroup", "compute-worker").outputs["arn"],
        worker_role_arn=dev.one("aws:iam/role:Role", "compute-worker-role").outputs["arn"],
        ami_parameter_arn=f"arn:{PARTITION}:ssm:{REGION}::parameter{StackSettings().ami_parameter}",
        stack_tags={stack.stack: WORKER_TAG},
        instance_tags={i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                       for r in described for i in r["Instances"]},
    )


@pytest.fixture(scope="module")
def run(dev: Deployment) -> Iterator[Run]:
    log = CallLog()
    with LocalPipeline(port=0, settings=SETTINGS, stack="iamproof", sweep_seconds=None, call_log=log,
                       wrap_launcher=losing_new_records) as pipeline:
        exercise(pipeline)
        yield Run(calls=log.calls, names=deployed_names(dev, pipeline))
    log.close()


def test_the_worker_copied_a_large_input_inside_s3(run: Run) -> None:
    """Guards the evidence of the server-side copy: without it UploadPartCopy's grants would go unproven."""
    operations = {call.operation for call in run.calls if call.function == WORKER and call.service == "s3"}
    assert {"CreateMultipartUpload", "UploadPartCopy", "UploadPart", "CompleteMultipartUpload"} <= operations


def test_every_component_made_calls(run: Run) -> None:
    """Guards the evidence itself: a component whose calls went unrecorded would pass every check below."""
    assert {call.function for call in run.calls} == set(POLICIES)


@pytest.mark.parametrize("function", sorted(POLICIES))
def test_no_call_would_be_denied_by_the_deployed_role(dev: Deployment, run: Run, function: str) -> None:
    """Regression: an AccessDenied that mocks and moto cannot show (a resource, a condition or an action the
    program's policy lacks) fails the component on its first call on AWS."""
    policy = dev.one("aws:iam/rolePolicy:RolePolicy", POLICIES[function]).policy()
    calls = [call for call in run.calls if call.function == function]
    denied, _ = denied_and_unused(policy, calls, run.names)
    assert denied == [], f"{POLICIES[function]} would deny:\n" + "\n".join(denied)


@pytest.mark.parametrize("function", sorted(POLICIES))
def test_every_granted_action_is_used(dev: Deployment, run: Run, function: str) -> None:
    """Least privilege the other way: a grant no call needs is a permission an attacker gets for free."""
    policy = dev.one("aws:iam/rolePolicy:RolePolicy", POLICIES[function]).policy()
    calls = [call for call in run.calls if call.function == function]
    _, unused = denied_and_unused(policy, calls, run.names)
    assert unused - set(NOT_EXERCISED) == set(), f"{POLICIES[function]} grants what no call used"


def test_the_worker_calls_pass_the_vpc_endpoint_policies(dev: Deployment, run: Run) -> None:
    """The worker's subnets reach S3 and DynamoDB only through the gateway endpoints, whose policies also decide."""
    for service, endpoint in ENDPOINTS.items():
        policy = dev.one("aws:ec2/vpcEndpoint:VpcEndpoint", endpoint).policy()
        calls = [call for call in run.calls if call.function == WORKER and call.service == service]
        assert calls, f"the worker made no {service} call"
        denied = [(call.operation, check.resource) for call in calls for check in authorizations(call, run.names)
                  if not allowed_by(policy, check)]
        assert denied == [], f"{endpoint} would deny {denied}"


def test_every_exemption_is_a_grant_of_some_policy(dev: Deployment) -> None:
    """An exemption left behind after its grant was removed would hide the next unused grant of that name."""
    granted = {(s["Sid"], action) for name in POLICIES.values()
               for s in dev.one("aws:iam/rolePolicy:RolePolicy", name).policy()["Statement"] for action in s["Action"]}
    assert set(NOT_EXERCISED) <= granted


def test_no_call_falls_outside_the_ci_permissions_boundary(mocks: RecordingMocks, tuned: Deployment, run: Run) -> None:
    """Regression: a permissions boundary (deploy/ci-identity's, which every role carries once a stack names it)
    narrower than a call a function or the worker really makes: its role allows the call, AWS still denies it.
    The worker role is the one under the role path, as a bounded stack passes it."""
    ci = run_program(mocks, {"ci-identity:subjectPrefix": "repo:octo-org/filepipe"},
                     path=ROOT / "deploy" / "ci-identity" / "__main__.py")
    boundary = ci.one("aws:iam/policy:Policy", "boundary").policy()
    names = replace(run.names, worker_role_arn=tuned.one("aws:iam/role:Role", "compute-worker-role").outputs["arn"])
    outside = [f"{call.function} {call.operation}: {check.action} on {check.resource}"
               for call in run.calls for check in authorizations(call, names) if not permitted([boundary], check)]
    assert outside == [], "\n".join(outside)
