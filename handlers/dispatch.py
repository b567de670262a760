"""Start queued jobs in free VM slots: the logic the launcher, the slot release function and the sweeper share.

Starting a job claims it with a conditional QUEUED -> LAUNCHING write *before* RunInstances, so a duplicate
delivery or a second dispatcher finds it LAUNCHING and starts nothing; RunInstances also carries the job id as
ClientToken, which makes a retried call idempotent on AWS. VM slots are conditional writes (`handlers.capacity`), so
any number of concurrent dispatchers keeps at most `max_concurrent_vms` VMs.

A cancel can land at any point of a job start. Before the claim, the claim (conditional on QUEUED) skips the job.
Between the claim and RunInstances, recording the slot returns the job, and a job no longer LAUNCHING is not
started. After RunInstances, recording the instance id returns the job: if it is CANCELLED (or gone) by then, the
VM is terminated at once; if the cancel comes after that write, the cancel's stream record carries the instance id
and the launcher's `stop_cancelled_vm` terminates it. Either way one of the two sees the VM (both may: termination
is idempotent).
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers import capacity, jobmodel, refusals
from handlers.config import LauncherConfig
from handlers.jobmodel import DEADLINES, Actor, Status
from handlers.refusals import error_code
from handlers.services import DISPATCH_CALLS, LauncherServices, function_timeout_seconds

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
WAITING_SINCE = "waiting_since"
"""Item attribute: when AWS first refused the job's launch; the queue's deadline counts from it."""

LAUNCH_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 0.5
LAUNCH_BACKOFF_SECONDS = sum(BACKOFF_BASE_SECONDS * 2**k for k in range(LAUNCH_ATTEMPTS - 1))
"""The longest `launch` sleeps between its attempts."""
JOB_START_SLOW_CALLS = 5
"""The steps of a job start, each one AWS call that may be slow: claim the job, take a slot, RunInstances, record
the VM, and terminate it when the job was cancelled meanwhile."""
JOB_START_SECONDS = JOB_START_SLOW_CALLS * DISPATCH_CALLS.worst_call_seconds() + LAUNCH_BACKOFF_SECONDS
"""What `dispatch` keeps in hand before it starts another job: one job start with every step at its slowest."""
TIMEOUT_SECONDS = function_timeout_seconds(DISPATCH_CALLS, 1 + JOB_START_SLOW_CALLS, LAUNCH_BACKOFF_SECONDS)
"""The Lambda timeout of the launcher and the slot release function: one slow call while handling the event, then
one job start at its slowest; `dispatch` starts a further job only while `JOB_START_SECONDS` remain."""


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
    code: str = ""
    """The last error's code (for a job that waited too long: what to raise)."""


def subnet_for(job_id: str, subnet_ids: tuple[str, ...]) -> str:
    """Spread jobs over the stack's subnets (and so its availability zones), stably per job."""
    return subnet_ids[zlib.crc32(job_id.encode()) % len(subnet_ids)]


def subnet_order(job_id: str, subnet_ids: tuple[str, ...]) -> tuple[str, ...]:
    """The job's own subnet (`subnet_for`) first, then the others in the stack's order."""
    first = subnet_for(job_id, subnet_ids)
    return (first, *(subnet for subnet in subnet_ids if subnet != first))


def run_instance(ec2: Any, config: LauncherConfig, job_id: str, subnet_id: str | None = None) -> str:
    """RunInstances for the job in `subnet_id` (default: the job's own subnet)."""
    tags = [{"Key": jobmodel.JOB_ID_TAG, "Value": job_id}, {"Key": jobmodel.STACK_TAG, "Value": config.stack_tag}]
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
    refused: list[ClientError] = []
    for subnet_id in subnet_order(job_id, config.subnet_ids):
        try:
            return run_instance(ec2, config, job_id, subnet_id)
        except ClientError as err:
            if error_code(err) not in ZONE_ERRORS:
                raise
            log.warning("RunInstances refused in this subnet; trying the next", extra={
                "job_id": job_id, "subnet_id": subnet_id, "error_code": error_code(err)})
            refused.append(err)
    raise next((err for err in refused if is_transient(err)), refused[0])


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
            if refusals.waits(err):  # a quota or IAM's propagation: seconds will not heal it
                return LaunchResult(reason=refusals.queue_reason(err), retry_later=True, code=error_code(err))
            if not is_transient(err):
                assert isinstance(err, ClientError)  # every BotoCoreError is transient
                return LaunchResult(reason=describe_launch_error(err))
            if attempt == attempts:
                return LaunchResult(reason=refusals.queue_reason(err), retry_later=True, code=error_code(err))
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
    claim = transition(services, job_id, Status.QUEUED, Status.LAUNCHING)
    if claim is None:
        return Outcome.SKIPPED
    launched: str | None = None
    try:
        with capacity.SlotLease(ddb, config.table, job_id, config.max_concurrent_vms) as lease:
            if lease.slot is None:
                transition(services, job_id, Status.LAUNCHING, Status.QUEUED)
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
            transition(services, job_id, Status.LAUNCHING, Status.QUEUED)
        raise
    if launched is not None:
        return record_vm(services, job_id, launched, lease.slot)
    if result.retry_later:
        return wait_or_give_up(services, job_id, result, claim.get(WAITING_SINCE))
    log.error("launch refused; job failed", extra={"job_id": job_id, "reason": result.reason})
    transition(services, job_id, Status.LAUNCHING, Status.FAILED,
               attrs={"error": result.reason})
    return Outcome.FAILED


def wait_or_give_up(services: LauncherServices, job_id: str, result: LaunchResult, since: str | None) -> Outcome:
    """Back to the queue with the reason, to be tried again at the next sweep or VM end; or, when AWS has refused
    the job's launches for longer than the queue's deadline since the first refusal (`WAITING_SINCE`), FAILED with
    a sentence saying what to raise."""
    limit = DEADLINES[Status.QUEUED].after
    if since is not None and datetime.now(UTC) - datetime.fromisoformat(since) > limit:
        reason = refusals.gave_up_reason(result.code, int(limit.total_seconds() // 60))
        log.error("launch refused too long; job failed", extra={"job_id": job_id, "reason": reason})
        transition(services, job_id, Status.LAUNCHING, Status.FAILED, attrs={"error": reason})
        return Outcome.FAILED
    log.warning("launch refused for now; job back in the queue", extra={"job_id": job_id, "reason": result.reason})
    transition(services, job_id, Status.LAUNCHING, Status.QUEUED,
               attrs={jobmodel.QUEUE_REASON: result.reason, WAITING_SINCE: since or jobmodel.utc_now()})
    return Outcome.RETRY_LATER


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
    services: LauncherServices, job_id: str, source: Status, target: Status, attrs: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """Move the job from `source` to `target` as the launcher; the new item, or None when it was not in `source`."""
    return jobmodel.transition(services.ddb, services.config.table, job_id, target, expected=[source],
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
