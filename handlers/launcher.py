"""DynamoDB stream -> one new EC2 VM per job, from the stack's launch template, never more than the cap at once.

The stream also brings finished jobs that still count against their owner's active-job quota (`handlers.quota`);
a CANCELLED one that has a VM also gets its VM terminated here (the API never calls EC2).

Every new job goes PENDING -> QUEUED, then the oldest queued jobs are started while VM slots are free
(`handlers.capacity`). Starting a job claims it with a conditional QUEUED -> LAUNCHING write *before* RunInstances,
so a duplicate delivery or a second launcher finds it LAUNCHING and starts nothing; RunInstances also carries the
job id as ClientToken, which makes a retried call idempotent on AWS. When a VM is terminated, EC2's state-change
event (an EventBridge rule) brings its instance id to `handlers.release`, which gives its slot back and moves the
queue with `dispatch_logged`.

A cancel can land at any point of a job start. Before the claim, the claim (conditional on QUEUED) skips the job.
Between the claim and RunInstances, recording the slot returns the job, and a job no longer LAUNCHING is not
started. After RunInstances, recording the instance id returns the job: if it is CANCELLED (or gone) by then, the
VM is terminated at once; if the cancel comes after that write, the cancel's stream record carries the instance id
and `stop_cancelled_vm` terminates it. Either way one of the two sees the VM (both may: termination is idempotent).
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers import capacity, jobmodel, quota
from handlers.batch import process_partial_response
from handlers.config import LauncherConfig
from handlers.jobmodel import Actor, Status
from handlers.services import (
    DISPATCH_CALLS,
    LauncherServices,
    function_timeout_seconds,
    launcher_services,
    seconds_left,
)

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = frozenset({
    "InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity", "RequestLimitExceeded",
    "Throttling", "ThrottlingException", "ServiceUnavailable", "Unavailable", "InternalError", "InternalFailure",
    "InsufficientFreeAddressesInSubnet",
})
"""RunInstances errors that heal with time; any other ClientError (bad template, no permission) will not."""
ZONE_ERRORS = frozenset({
    "Unsupported", "InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity",
    "InsufficientFreeAddressesInSubnet",
})
"""RunInstances errors about the subnet's zone (the instance type is not offered there, or not now): another of
the stack's subnets, in another zone, may succeed at once."""

SECONDS_PER_DAY = 24 * 3600
LAUNCH_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 0.5
LAUNCH_BACKOFF_SECONDS = sum(BACKOFF_BASE_SECONDS * 2**k for k in range(LAUNCH_ATTEMPTS - 1))
"""The longest `launch` sleeps between its attempts."""
JOB_START_SLOW_CALLS = 5
"""The steps of a job start, each one AWS call that may be slow: claim the job, take a slot, RunInstances, record
the VM, and terminate it when the job was cancelled meanwhile."""
JOB_START_SECONDS = JOB_START_SLOW_CALLS * DISPATCH_CALLS.worst_call_seconds() + LAUNCH_BACKOFF_SECONDS
"""What `dispatch` keeps in hand before it starts another job: one job start with every step at its slowest."""
RECORD_SLOW_CALLS = 2
"""The calls of handling one record, each may be slow: claim a new job's upload and queue it (or terminate a
cancelled job's VM and release its quota)."""
TIMEOUT_SECONDS = function_timeout_seconds(DISPATCH_CALLS, RECORD_SLOW_CALLS + JOB_START_SLOW_CALLS,
                                           LAUNCH_BACKOFF_SECONDS)
"""The launcher's (and slot release's) Lambda timeout: one record handled at its slowest, then one job start at its
slowest; `dispatch` starts a further job only while `JOB_START_SECONDS` remain."""


class Outcome(Enum):
    LAUNCHED = "launched"
    NO_SLOT = "no free VM slot"
    RETRY_LATER = "queued again after transient launch errors"
    FAILED = "failed"
    SKIPPED = "not queued (duplicate or late)"
    WITHDRAWN = "cancelled or deleted by its owner while it was being started"


@dataclass(frozen=True)
class LaunchResult:
    """What RunInstances came to: an instance id, or a reason and whether the job should wait and try again."""

    instance_id: str | None = None
    reason: str = ""
    retry_later: bool = False


def subnet_for(job_id: str, subnet_ids: tuple[str, ...]) -> str:
    """Spread jobs over the stack's subnets (and so its availability zones), stably per job."""
    return subnet_ids[zlib.crc32(job_id.encode()) % len(subnet_ids)]


def subnet_order(job_id: str, subnet_ids: tuple[str, ...]) -> tuple[str, ...]:
    """The job's own subnet (`subnet_for`) first, then the others in the stack's order."""
    first = subnet_for(job_id, subnet_ids)
    return (first, *(subnet for subnet in subnet_ids if subnet != first))


def run_instance(ec2: Any, config: LauncherConfig, job_id: str, subnet_id: str | None = None) -> str:
    """RunInstances for the job in `subnet_id` (default: the job's own subnet)."""
    tags = [{"Key": jobmodel.JOB_ID_TAG, "Value": job_id}, {"Key": jobmodel.STACK_TAG, "Value": config.stack}]
    response = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": config.launch_template_id, "Version": "$Default"},
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet_id or subnet_for(job_id, config.subnet_ids),
        ClientToken=job_id,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags}],
    )
    return str(response["Instances"][0]["InstanceId"])


def run_in_any_subnet(ec2: Any, config: LauncherConfig, job_id: str) -> str:
    """RunInstances in the job's subnet, then in each other subnet while the error is about the zone.

    Only a zone error moves on: it is a refusal, so no VM exists and the job id stays free as ClientToken (a
    timeout, after which a VM may exist, is retried in the same subnet with the same parameters). When every subnet
    refuses, the error raised is a transient one if any was (capacity may come back), else the first.
    """
    refusals: list[ClientError] = []
    for subnet_id in subnet_order(job_id, config.subnet_ids):
        try:
            return run_instance(ec2, config, job_id, subnet_id)
        except ClientError as err:
            if error_code(err) not in ZONE_ERRORS:
                raise
            log.warning("RunInstances refused in this subnet; trying the next", extra={
                "job_id": job_id, "subnet_id": subnet_id, "error_code": error_code(err)})
            refusals.append(err)
    raise next((err for err in refusals if is_transient(err)), refusals[0])


def error_code(err: Exception) -> str:
    return err.response["Error"].get("Code", "") if isinstance(err, ClientError) else type(err).__name__


def is_transient(err: Exception) -> bool:
    return not isinstance(err, ClientError) or error_code(err) in TRANSIENT_ERRORS


def describe_launch_error(err: ClientError) -> str:
    message = err.response["Error"].get("Message", "").strip().rstrip(".") or str(err)
    return f"The VM could not be started: {message} ({error_code(err)})."


def launch(
    start: Callable[[], str], *, attempts: int = LAUNCH_ATTEMPTS, sleep: Callable[[float], None] = time.sleep
) -> LaunchResult:
    """Call `start` (RunInstances), retrying transient errors with exponential backoff and full jitter."""
    for attempt in range(1, attempts + 1):
        try:
            return LaunchResult(instance_id=start())
        except (ClientError, BotoCoreError) as err:
            if not is_transient(err):
                assert isinstance(err, ClientError)  # every BotoCoreError is transient
                return LaunchResult(reason=describe_launch_error(err))
            if attempt == attempts:
                return LaunchResult(reason=f"{error_code(err)}: {err}", retry_later=True)
            delay = random.uniform(0, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
            log.warning("RunInstances failed; retrying", extra={
                "error_code": error_code(err), "attempt": attempt, "attempts": attempts, "delay_seconds": delay})
            sleep(delay)
    raise AssertionError("unreachable")


def start_queued_job(services: LauncherServices, job_id: str) -> Outcome:
    """Claim a queued job, take a VM slot for it and start its VM.

    Whatever goes wrong after the claim, the slot is given back (unless a VM holds it) and the job is either queued
    again or failed with a reason: it is never left LAUNCHING without a VM on our account.
    """
    ddb, config = services.ddb, services.config
    if transition(services, job_id, Status.LAUNCHING, Status.QUEUED) is None:
        return Outcome.SKIPPED
    launched: str | None = None
    try:
        with capacity.SlotLease(ddb, config.table, job_id, config.max_concurrent_vms) as lease:
            if lease.slot is None:
                transition(services, job_id, Status.QUEUED, Status.LAUNCHING)
                return Outcome.NO_SLOT
            claimed = jobmodel.set_attributes(ddb, config.table, job_id, {"slot": str(lease.slot)})
            if claimed is None or claimed["status"] != Status.LAUNCHING:
                log.info("job cancelled before its VM started: not launched", extra={"job_id": job_id})
                return Outcome.WITHDRAWN
            result = launch(lambda: run_in_any_subnet(services.ec2, config, job_id))
            launched = result.instance_id
            if launched is not None:
                lease.commit(launched)
    except BaseException:
        if launched is None:  # a VM that exists keeps its job: its worker will move it
            transition(services, job_id, Status.QUEUED, Status.LAUNCHING)
        raise
    if launched is not None:
        return record_vm(services, job_id, launched, lease.slot)
    if result.retry_later:
        log.warning("launch failed; job back in the queue", extra={"job_id": job_id, "reason": result.reason})
        transition(services, job_id, Status.QUEUED, Status.LAUNCHING)
        return Outcome.RETRY_LATER
    log.error("launch refused; job failed", extra={"job_id": job_id, "reason": result.reason})
    transition(services, job_id, Status.FAILED, Status.LAUNCHING,
               attrs={"error": result.reason})
    return Outcome.FAILED


def record_vm(services: LauncherServices, job_id: str, instance_id: str, slot: int | None) -> Outcome:
    """Record the job's new VM; terminate it at once when the job was cancelled (or deleted) meanwhile, since the
    cancel's stream record, written before this, did not carry the instance id."""
    job = jobmodel.set_attributes(services.ddb, services.config.table, job_id, {"instance_id": instance_id})
    if job is None or job["status"] == Status.CANCELLED:
        terminate_vm(services, job_id, instance_id, "the job was cancelled while its VM started")
        return Outcome.WITHDRAWN
    log.info("VM started", extra={"job_id": job_id, "instance_id": instance_id, "slot": slot})
    return Outcome.LAUNCHED


def terminate_vm(services: LauncherServices, job_id: str, instance_id: str, reason: str) -> None:
    """Terminate a cancelled job's VM (idempotent: a VM already terminated, or long gone, is left as it is). Its
    slot is given back by its termination event (`handlers.release`), as for every VM."""
    try:
        services.ec2.terminate_instances(InstanceIds=[instance_id])
    except ClientError as err:
        if error_code(err) != "InvalidInstanceID.NotFound":
            raise
    log.info("VM terminated", extra={"job_id": job_id, "instance_id": instance_id, "reason": reason})


def transition(
    services: LauncherServices, job_id: str, to: Status, source: Status, attrs: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    return jobmodel.transition(services.ddb, services.config.table, job_id, to, expected=[source],
                               by=Actor.LAUNCHER, attrs=attrs)


def dispatch(
    services: LauncherServices, fresh: Mapping[str, str] | None = None, deadline: float | None = None
) -> list[Outcome]:
    """Start queued jobs oldest first until the slots are full, launches must wait, or time runs short.

    `fresh` maps just-queued job ids to their `created_at`: the status index is eventually consistent and may not
    show them yet. `deadline` (`time.monotonic()` when the invocation ends; None: no limit) stops before a job start
    that might not finish in time: the job stays QUEUED for the next event or sweep, never half-started.
    """
    config = services.config
    queued = {job["id"]: job["created_at"] for job in
              jobmodel.jobs_in_state(services.ddb, config.table, Status.QUEUED, limit=config.max_concurrent_vms)}
    queued.update(fresh or {})
    outcomes = []
    for job_id in sorted(queued, key=lambda j: (queued[j], j)):
        if deadline is not None and time.monotonic() + JOB_START_SECONDS > deadline:
            log.warning("dispatch stopped: too little time left for another job start", extra={"job_id": job_id})
            break
        outcome = start_queued_job(services, job_id)
        outcomes.append(outcome)
        if outcome in (Outcome.NO_SLOT, Outcome.RETRY_LATER):
            break
    return outcomes


def dispatch_logged(
    services: LauncherServices, fresh: Mapping[str, str] | None = None, deadline: float | None = None
) -> list[Outcome]:
    """`dispatch`, where an AWS error only stops this round: the jobs stay QUEUED, and the next terminated VM, new
    job or sweep moves the queue again."""
    try:
        return dispatch(services, fresh, deadline)
    except (ClientError, BotoCoreError) as err:
        log.error("dispatch stopped", extra={"error_code": error_code(err), "reason": str(err)})
        return []


def job_id_of(record: Mapping[str, Any]) -> str | None:
    job_id = record.get("dynamodb", {}).get("Keys", {}).get("id", {}).get("S")
    return job_id if jobmodel.is_id(job_id) else None


def claim_upload(services: LauncherServices, image: Mapping[str, Any]) -> None:
    """Remove the upload's unclaimed tag (`jobmodel.UNCLAIMED_UPLOAD_TAG`), so the bucket's lifecycle keeps the
    file its job uses. Idempotent, and before the job is queued: a failed call retries the record."""
    path = image.get("input_file_path")
    if not path:
        return
    bucket, key = jobmodel.split_s3_path(path)
    try:
        services.s3.delete_object_tagging(Bucket=bucket, Key=key)
    except ClientError as err:
        if error_code(err) not in {"NoSuchKey", "404"}:
            raise
        log.info("upload gone before its job was queued", extra={"key": key})  # the worker fails it: input_gone


def queue_new_job(services: LauncherServices, record: Mapping[str, Any], fresh: dict[str, str]) -> None:
    """Claim the new job's upload, then PENDING -> QUEUED; remember the job in `fresh` for this batch's dispatch."""
    job_id = job_id_of(record)
    if record.get("eventName") != "INSERT" or job_id is None:
        return
    claim_upload(services, jobmodel.from_dynamodb(record.get("dynamodb", {}).get("NewImage", {})))
    if transition(services, job_id, Status.QUEUED, Status.PENDING) is None:
        log.info("job not PENDING (duplicate or late delivery): skipped", extra={"job_id": job_id})
        return
    image = jobmodel.from_dynamodb(record.get("dynamodb", {}).get("NewImage", {}))
    fresh[job_id] = image.get("created_at", "")


def release_quota(services: LauncherServices, job_id: str, image: Mapping[str, Any]) -> None:
    """A job reached a final state: it no longer counts against its owner's active jobs.

    The release is conditional on the job's quota marker, so it succeeds once per job whoever finished it (worker,
    launcher or sweeper) and however often the record is delivered: that is when the job's `job_finished` line is
    written, which the monitoring component's metric filters count.
    """
    if "owner" not in image:
        return
    retention = services.config.retention_days
    expires_at = int(time.time()) + retention * SECONDS_PER_DAY if retention > 0 else None
    if quota.release(services.ddb, services.config.table, job_id, image["owner"], expires_at):
        log.info("job finished", extra=jobmodel.finished_fields(image))


def stop_cancelled_vm(services: LauncherServices, job_id: str, image: Mapping[str, Any]) -> None:
    """A CANCELLED job whose record names its VM: terminate the VM (before the quota release, so a failed call
    retries the whole record)."""
    if image.get("status") == Status.CANCELLED and image.get("instance_id"):
        terminate_vm(services, job_id, image["instance_id"], "the job was cancelled")


def handle_record(services: LauncherServices, record: Mapping[str, Any], fresh: dict[str, str]) -> None:
    """New jobs are queued; finished jobs that still count against their owner's quota are released (and a
    cancelled one's VM terminated)."""
    if record.get("eventName") != "MODIFY":
        queue_new_job(services, record, fresh)
        return
    job_id = job_id_of(record)
    if job_id is None:
        return
    image = jobmodel.from_dynamodb(record.get("dynamodb", {}).get("NewImage", {}))
    stop_cancelled_vm(services, job_id, image)
    release_quota(services, job_id, image)


def deadline_of(context: object) -> float | None:
    """The invocation's end on `time.monotonic()`'s clock, from the Lambda context; None outside Lambda."""
    left = seconds_left(context)
    return None if left is None else time.monotonic() + left


def handle_batch(
    services: LauncherServices, event: Mapping[str, Any], deadline: float | None = None
) -> dict[str, list[Any]]:
    """Handle every record, then move the queue; report records to retry as `batchItemFailures`."""
    fresh: dict[str, str] = {}
    records = event.get("Records", [])
    response = process_partial_response(records, lambda record: handle_record(services, record, fresh))
    if any(record.get("eventName") == "INSERT" and job_id_of(record) for record in records):
        dispatch_logged(services, fresh, deadline)
    return response


def handle(event: Mapping[str, Any], services: LauncherServices, deadline: float | None = None) -> dict[str, Any]:
    """A batch of stream records: new jobs, and finished jobs that still hold their owner's quota. (Terminated VMs
    give their slots back in `handlers.release`, a function of its own.)"""
    return handle_batch(services, event, deadline)


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    return handle(event, launcher_services(), deadline_of(context))
