"""DynamoDB stream -> one new EC2 VM per job, from the stack's launch template, never more than the cap at once.

The stream also brings finished jobs that still count against their owner's active-job quota (`handlers.quota`).

Every new job goes PENDING -> QUEUED, then the oldest queued jobs are started while VM slots are free
(`handlers.capacity`). Starting a job claims it with a conditional QUEUED -> LAUNCHING write *before* RunInstances,
so a duplicate delivery or a second launcher finds it LAUNCHING and starts nothing; RunInstances also carries the
job id as ClientToken, which makes a retried call idempotent on AWS. When a VM is terminated, EC2's state-change
event (an EventBridge rule) brings its instance id here: its slot is given back and the queue moves on.
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
from handlers.services import LauncherServices, launcher_services

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = frozenset({
    "InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity", "RequestLimitExceeded",
    "Throttling", "ThrottlingException", "ServiceUnavailable", "Unavailable", "InternalError", "InternalFailure",
    "InsufficientFreeAddressesInSubnet",
})
"""RunInstances errors that heal with time; any other ClientError (bad template, no permission) will not."""

SECONDS_PER_DAY = 24 * 3600
LAUNCH_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 0.5


class Outcome(Enum):
    LAUNCHED = "launched"
    NO_SLOT = "no free VM slot"
    RETRY_LATER = "queued again after transient launch errors"
    FAILED = "failed"
    SKIPPED = "not queued (duplicate or late)"


@dataclass(frozen=True)
class LaunchResult:
    """What RunInstances came to: an instance id, or a reason and whether the job should wait and try again."""

    instance_id: str | None = None
    reason: str = ""
    retry_later: bool = False


def subnet_for(job_id: str, subnet_ids: tuple[str, ...]) -> str:
    """Spread jobs over the stack's subnets (and so its availability zones), stably per job."""
    return subnet_ids[zlib.crc32(job_id.encode()) % len(subnet_ids)]


def run_instance(ec2: Any, config: LauncherConfig, job_id: str) -> str:
    tags = [{"Key": jobmodel.JOB_ID_TAG, "Value": job_id}, {"Key": jobmodel.STACK_TAG, "Value": config.stack}]
    response = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": config.launch_template_id, "Version": "$Default"},
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet_for(job_id, config.subnet_ids),
        ClientToken=job_id,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags}],
    )
    return str(response["Instances"][0]["InstanceId"])


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
            log.warning("RunInstances failed (%s), attempt %d of %d; retrying in %.2fs",
                        error_code(err), attempt, attempts, delay)
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
            jobmodel.set_attributes(ddb, config.table, job_id, {"slot": str(lease.slot)})
            result = launch(lambda: run_instance(services.ec2, config, job_id))
            launched = result.instance_id
            if launched is not None:
                lease.commit(launched)
    except BaseException:
        if launched is None:  # a VM that exists keeps its job: its worker will move it
            transition(services, job_id, Status.QUEUED, Status.LAUNCHING)
        raise
    if launched is not None:
        jobmodel.set_attributes(ddb, config.table, job_id, {"instance_id": launched})
        log.info("job %s: started %s in slot %s", job_id, launched, lease.slot)
        return Outcome.LAUNCHED
    if result.retry_later:
        log.warning("job %s: %s; back in the queue", job_id, result.reason)
        transition(services, job_id, Status.QUEUED, Status.LAUNCHING)
        return Outcome.RETRY_LATER
    log.error("job %s: %s", job_id, result.reason)
    transition(services, job_id, Status.FAILED, Status.LAUNCHING,
               attrs={"error": result.reason, "finished_at": jobmodel.utc_now()})
    return Outcome.FAILED


def transition(
    services: LauncherServices, job_id: str, to: Status, source: Status, attrs: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    return jobmodel.transition(services.ddb, services.config.table, job_id, to, expected=[source],
                               by=Actor.LAUNCHER, attrs=attrs)


def dispatch(services: LauncherServices, fresh: Mapping[str, str] | None = None) -> list[Outcome]:
    """Start queued jobs oldest first until the slots are full or launches must wait.

    `fresh` maps just-queued job ids to their `created_at`: the status index is eventually consistent and may not
    show them yet.
    """
    config = services.config
    queued = {job["id"]: job["created_at"] for job in
              jobmodel.jobs_in_state(services.ddb, config.table, Status.QUEUED, limit=config.max_concurrent_vms)}
    queued.update(fresh or {})
    outcomes = []
    for job_id in sorted(queued, key=lambda j: (queued[j], j)):
        outcome = start_queued_job(services, job_id)
        outcomes.append(outcome)
        if outcome in (Outcome.NO_SLOT, Outcome.RETRY_LATER):
            break
    return outcomes


def dispatch_logged(services: LauncherServices, fresh: Mapping[str, str] | None = None) -> list[Outcome]:
    """`dispatch`, where an AWS error only stops this round: the jobs stay QUEUED, and the next terminated VM, new
    job or sweep moves the queue again."""
    try:
        return dispatch(services, fresh)
    except (ClientError, BotoCoreError) as err:
        log.error("dispatch stopped: %s", err)
        return []


def job_id_of(record: Mapping[str, Any]) -> str | None:
    job_id = record.get("dynamodb", {}).get("Keys", {}).get("id", {}).get("S")
    return job_id if jobmodel.is_id(job_id) else None


def queue_new_job(services: LauncherServices, record: Mapping[str, Any], fresh: dict[str, str]) -> None:
    """PENDING -> QUEUED for the record's new job; remember it in `fresh` for this batch's dispatch."""
    job_id = job_id_of(record)
    if record.get("eventName") != "INSERT" or job_id is None:
        return
    if transition(services, job_id, Status.QUEUED, Status.PENDING) is None:
        log.info("job %s is not PENDING (duplicate or late delivery): skipped", job_id)
        return
    image = jobmodel.from_dynamodb(record.get("dynamodb", {}).get("NewImage", {}))
    fresh[job_id] = image.get("created_at", "")


def release_quota(services: LauncherServices, record: Mapping[str, Any]) -> None:
    """A job reached a final state: it no longer counts against its owner's active jobs."""
    job_id = job_id_of(record)
    image = jobmodel.from_dynamodb(record.get("dynamodb", {}).get("NewImage", {}))
    if job_id is None or "owner" not in image:
        return
    retention = services.config.retention_days
    expires_at = int(time.time()) + retention * SECONDS_PER_DAY if retention > 0 else None
    if quota.release(services.ddb, services.config.table, job_id, image["owner"], expires_at):
        log.info("job %s ended %s: its owner's quota is released", job_id, image.get("status"))


def handle_record(services: LauncherServices, record: Mapping[str, Any], fresh: dict[str, str]) -> None:
    """New jobs are queued; finished jobs that still count against their owner's quota are released."""
    if record.get("eventName") == "MODIFY":
        release_quota(services, record)
    else:
        queue_new_job(services, record, fresh)


def handle_instance_event(services: LauncherServices, event: Mapping[str, Any]) -> dict[str, Any]:
    """EC2 Instance State-change Notification: a terminated VM gives its slot back and the queue moves."""
    detail = event.get("detail") or {}
    instance_id, state = detail.get("instance-id"), detail.get("state")
    if state != "terminated" or not isinstance(instance_id, str):
        return {"released": None}
    config = services.config
    slot = capacity.release_instance(services.ddb, config.table, instance_id, config.max_concurrent_vms)
    if slot is not None:
        log.info("VM %s terminated: slot %d is free", instance_id, slot)
        dispatch_logged(services)
    return {"released": slot}


def handle_batch(services: LauncherServices, event: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Handle every record, then move the queue; report records to retry as `batchItemFailures`."""
    fresh: dict[str, str] = {}
    records = event.get("Records", [])
    response = process_partial_response(records, lambda record: handle_record(services, record, fresh))
    if any(record.get("eventName") == "INSERT" and job_id_of(record) for record in records):
        dispatch_logged(services, fresh)
    return response


def handle(event: Mapping[str, Any], services: LauncherServices) -> dict[str, Any]:
    """Stream batches (new jobs) and EC2 state-change events (terminated VMs) both arrive here."""
    if event.get("source") == "aws.ec2":
        return handle_instance_event(services, event)
    return handle_batch(services, event)


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    return handle(event, launcher_services())
