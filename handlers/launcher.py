"""DynamoDB stream -> one new EC2 VM per job, from the stack's launch template.

Every INSERT record is handled on its own. The job is claimed with a conditional PENDING/QUEUED -> LAUNCHING write
*before* RunInstances, so a duplicate delivery finds it LAUNCHING and starts nothing. RunInstances also carries the job
id as ClientToken, which makes a retried call idempotent on AWS.
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from handlers import jobmodel
from handlers.config import LauncherConfig
from handlers.jobmodel import Status

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = frozenset({
    "InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity", "RequestLimitExceeded",
    "Throttling", "ThrottlingException", "ServiceUnavailable", "Unavailable", "InternalError", "InternalFailure",
})
"""RunInstances errors that heal with time; any other ClientError (bad template, no permission) will not."""

LAUNCH_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 0.5
CLAIMABLE = (Status.PENDING, Status.QUEUED)


class TransientLaunchError(Exception):
    """RunInstances kept failing in a way that may heal: the record is handed back to the stream for a retry."""


def subnet_for(job_id: str, subnet_ids: tuple[str, ...]) -> str:
    """Spread jobs over the stack's subnets (and so its availability zones), stably per job."""
    return subnet_ids[zlib.crc32(job_id.encode()) % len(subnet_ids)]


def run_instance(ec2: Any, config: LauncherConfig, job_id: str) -> str:
    response = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": config.launch_template_id, "Version": "$Default"},
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet_for(job_id, config.subnet_ids),
        ClientToken=job_id,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": jobmodel.JOB_ID_TAG, "Value": job_id}]},
            {"ResourceType": "volume", "Tags": [{"Key": jobmodel.JOB_ID_TAG, "Value": job_id}]},
        ],
    )
    return str(response["Instances"][0]["InstanceId"])


def error_code(err: Exception) -> str:
    return err.response["Error"].get("Code", "") if isinstance(err, ClientError) else type(err).__name__


def is_transient(err: Exception) -> bool:
    return not isinstance(err, ClientError) or error_code(err) in TRANSIENT_ERRORS


def run_with_retries(
    launch: Callable[[], str], *, attempts: int = LAUNCH_ATTEMPTS, sleep: Callable[[float], None] = time.sleep
) -> str:
    """Call `launch`, retrying transient errors with exponential backoff and full jitter."""
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
    message = err.response["Error"].get("Message", "").strip() or str(err)
    return f"The VM could not be started: {message} ({error_code(err)})."


def launch_job(ec2: Any, ddb: Any, config: LauncherConfig, job_id: str,
               sleep: Callable[[float], None] = time.sleep) -> str | None:
    """Claim the job and start its VM; return the instance id, or None when there was nothing to do.

    Raises TransientLaunchError after moving the job to QUEUED, so the stream delivers the record again.
    """
    claimed = jobmodel.transition(ddb, config.table, job_id, Status.LAUNCHING, expected=CLAIMABLE)
    if claimed is None:
        log.info("job %s is not waiting for a VM (duplicate or late delivery): skipped", job_id)
        return None
    try:
        instance_id = run_with_retries(lambda: run_instance(ec2, config, job_id), sleep=sleep)
    except TransientLaunchError:
        jobmodel.transition(ddb, config.table, job_id, Status.QUEUED, expected=[Status.LAUNCHING])
        raise
    except ClientError as err:
        reason = describe_launch_error(err)
        log.error("job %s: %s", job_id, reason)
        jobmodel.transition(ddb, config.table, job_id, Status.FAILED, expected=[Status.LAUNCHING],
                            attrs={"error": reason, "finished_at": jobmodel.utc_now()})
        return None
    jobmodel.set_attributes(ddb, config.table, job_id, {"instance_id": instance_id})
    log.info("job %s: started %s", job_id, instance_id)
    return instance_id


def job_id_of(record: Mapping[str, Any]) -> str | None:
    job_id = record.get("dynamodb", {}).get("Keys", {}).get("id", {}).get("S")
    return job_id if jobmodel.is_id(job_id) else None


def handle_batch(ec2: Any, ddb: Any, config: LauncherConfig, event: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Handle every record; report the ones to retry as `batchItemFailures` (ReportBatchItemFailures)."""
    failures = []
    for record in event.get("Records", []):
        if record.get("eventName") != "INSERT":
            continue
        job_id = job_id_of(record)
        if job_id is None:
            log.error("stream record %s carries no job id: skipped", record.get("eventID"))
            continue
        try:
            launch_job(ec2, ddb, config, job_id)
        except (TransientLaunchError, ClientError, BotoCoreError) as err:
            log.warning("job %s: will retry the record: %s", job_id, err)
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    return {"batchItemFailures": failures}


CONFIG = LauncherConfig.from_env()
EC2 = boto3.client("ec2")
DDB = boto3.client("dynamodb")


def handler(event: Mapping[str, Any], context: object) -> dict[str, list[Any]]:
    return handle_batch(EC2, DDB, CONFIG, event)
