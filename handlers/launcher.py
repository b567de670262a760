"""DynamoDB stream -> one new EC2 VM per job, from the stack's launch template, never more than the cap at once.

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
from enum import Enum
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from handlers import capacity, jobmodel
from handlers.config import LauncherConfig
from handlers.jobmodel import Status

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = frozenset({
    "InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity", "RequestLimitExceeded",
    "Throttling", "ThrottlingException", "ServiceUnavailable", "Unavailable", "InternalError", "InternalFailure",
    "InsufficientFreeAddressesInSubnet",
})
"""RunInstances errors that heal with time; any other ClientError (bad template, no permission) will not."""

LAUNCH_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 0.5


class Outcome(Enum):
    LAUNCHED = "launched"
    NO_SLOT = "no free VM slot"
    RETRY_LATER = "queued again after transient launch errors"
    FAILED = "failed"
    SKIPPED = "not queued (duplicate or late)"


class TransientLaunchError(Exception):
    """RunInstances kept failing in a way that may heal: the job goes back to the queue."""


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


def run_with_retries(
    launch: Callable[[], str], *, attempts: int = LAUNCH_ATTEMPTS, sleep: Callable[[float], None] | None = None
) -> str:
    """Call `launch`, retrying transient errors with exponential backoff and full jitter."""
    sleep = sleep or time.sleep
    for attempt in range(1, attempts + 1):
        try:
            return launch()
        except (ClientError, BotoCoreError) as err:
            if not is_transient(err):
                raise
            if attempt == attempts:
                raise TransientLaunchError(f"{error_code(err)}: {err}") from err
            delay = random.uniform(0, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
            log.warning("RunInstances failed (%s), attempt %d of %d; retrying in %.2fs",
                        error_code(err), attempt, attempts, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def describe_launch_error(err: ClientError) -> str:
    message = err.response["Error"].get("Message", "").strip().rstrip(".") or str(err)
    return f"The VM could not be started: {message} ({error_code(err)})."


def requeue(ddb: Any, config: LauncherConfig, job_id: str) -> None:
    jobmodel.transition(ddb, config.table, job_id, Status.QUEUED, expected=[Status.LAUNCHING])


def start_queued_job(ec2: Any, ddb: Any, config: LauncherConfig, job_id: str) -> Outcome:
    """Claim a queued job, take a VM slot for it and start its VM."""
    if jobmodel.transition(ddb, config.table, job_id, Status.LAUNCHING, expected=[Status.QUEUED]) is None:
        return Outcome.SKIPPED
    slot: int | None = None
    try:
        slot = capacity.acquire(ddb, config.table, job_id, config.max_concurrent_vms)
        if slot is None:
            requeue(ddb, config, job_id)
            return Outcome.NO_SLOT
        jobmodel.set_attributes(ddb, config.table, job_id, {"slot": str(slot)})
        instance_id = run_with_retries(lambda: run_instance(ec2, config, job_id))
    except TransientLaunchError as err:
        log.warning("job %s: %s; back in the queue", job_id, err)
        release_and_requeue(ddb, config, job_id, slot)
        return Outcome.RETRY_LATER
    except ClientError as err:
        if slot is None or err.operation_name != "RunInstances":
            release_and_requeue(ddb, config, job_id, slot)
            raise
        reason = describe_launch_error(err)
        log.error("job %s: %s", job_id, reason)
        capacity.release(ddb, config.table, job_id, slot)
        jobmodel.transition(ddb, config.table, job_id, Status.FAILED, expected=[Status.LAUNCHING],
                            attrs={"error": reason, "finished_at": jobmodel.utc_now()})
        return Outcome.FAILED
    except BaseException:
        release_and_requeue(ddb, config, job_id, slot)
        raise
    capacity.attach_instance(ddb, config.table, job_id, slot, instance_id)
    jobmodel.set_attributes(ddb, config.table, job_id, {"instance_id": instance_id})
    log.info("job %s: started %s in slot %d", job_id, instance_id, slot)
    return Outcome.LAUNCHED


def release_and_requeue(ddb: Any, config: LauncherConfig, job_id: str, slot: int | None) -> None:
    if slot is not None:
        capacity.release(ddb, config.table, job_id, slot)
    requeue(ddb, config, job_id)


def dispatch(ec2: Any, ddb: Any, config: LauncherConfig, fresh: Mapping[str, str] | None = None) -> list[Outcome]:
    """Start queued jobs oldest first until the slots are full or launches must wait.

    `fresh` maps just-queued job ids to their `created_at`: the status index is eventually consistent and may not
    show them yet.
    """
    queued = {job["id"]: job["created_at"] for job in
              jobmodel.jobs_in_state(ddb, config.table, Status.QUEUED, limit=config.max_concurrent_vms)}
    queued.update(fresh or {})
    outcomes = []
    for job_id in sorted(queued, key=lambda j: (queued[j], j)):
        outcome = start_queued_job(ec2, ddb, config, job_id)
        outcomes.append(outcome)
        if outcome in (Outcome.NO_SLOT, Outcome.RETRY_LATER):
            break
    return outcomes


def job_id_of(record: Mapping[str, Any]) -> str | None:
    job_id = record.get("dynamodb", {}).get("Keys", {}).get("id", {}).get("S")
    return job_id if jobmodel.is_id(job_id) else None


def new_image(record: Mapping[str, Any]) -> dict[str, str]:
    return jobmodel.from_dynamodb(record.get("dynamodb", {}).get("NewImage", {}))


def handle_record(ddb: Any, config: LauncherConfig, record: Mapping[str, Any], fresh: dict[str, str]) -> bool:
    """Queue a new job; True when the queue may move."""
    job_id = job_id_of(record)
    if record.get("eventName") != "INSERT" or job_id is None:
        return False
    if jobmodel.transition(ddb, config.table, job_id, Status.QUEUED, expected=[Status.PENDING]) is None:
        log.info("job %s is not PENDING (duplicate or late delivery): skipped", job_id)
    else:
        fresh[job_id] = new_image(record).get("created_at", "")
    return True


def handle_instance_event(ec2: Any, ddb: Any, config: LauncherConfig, event: Mapping[str, Any]) -> dict[str, Any]:
    """EC2 Instance State-change Notification: a terminated VM gives its slot back and the queue moves."""
    detail = event.get("detail") or {}
    instance_id, state = detail.get("instance-id"), detail.get("state")
    if state != "terminated" or not isinstance(instance_id, str):
        return {"released": None}
    slot = capacity.release_instance(ddb, config.table, instance_id, config.max_concurrent_vms)
    if slot is not None:
        log.info("VM %s terminated: slot %d is free", instance_id, slot)
        try:
            dispatch(ec2, ddb, config)
        except (ClientError, BotoCoreError) as err:
            # The slot is free and the jobs stay QUEUED: the next terminated VM or sweep moves the queue.
            log.error("dispatch stopped: %s", err)
    return {"released": slot}


def handle_batch(ec2: Any, ddb: Any, config: LauncherConfig, event: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Handle every record, then move the queue; report records to retry as `batchItemFailures`."""
    failures = []
    fresh: dict[str, str] = {}
    queue_may_move = False
    for record in event.get("Records", []):
        try:
            queue_may_move |= handle_record(ddb, config, record, fresh)
        except (ClientError, BotoCoreError) as err:
            log.warning("record %s will be retried: %s", record.get("eventID"), err)
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    if queue_may_move:
        try:
            dispatch(ec2, ddb, config, fresh)
        except (ClientError, BotoCoreError) as err:
            # The jobs stay QUEUED; the next terminated VM or the scheduled sweeper moves the queue again.
            log.error("dispatch stopped: %s", err)
    return {"batchItemFailures": failures}



CONFIG = LauncherConfig.from_env()
EC2 = boto3.client("ec2")
DDB = boto3.client("dynamodb")


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Stream batches (new jobs) and EC2 state-change events (terminated VMs) both arrive here."""
    if event.get("source") == "aws.ec2":
        return handle_instance_event(EC2, DDB, CONFIG, event)
    return handle_batch(EC2, DDB, CONFIG, event)
