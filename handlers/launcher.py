"""DynamoDB stream -> one new EC2 VM per job, from the stack's launch template, never more than the cap at once.

The stream also brings finished jobs that still count against their owner's active-job quota (`handlers.quota`);
a CANCELLED one that has a VM also gets its VM terminated here (the API never calls EC2).

Every new job goes PENDING -> QUEUED, then the oldest queued jobs are started while VM slots are free
(`handlers.dispatch`, which the slot release function and the sweeper share). When a VM is terminated, EC2's
state-change event (an EventBridge rule) brings its instance id to `handlers.release`, which gives its slot back and
moves the queue with `dispatch.dispatch_logged`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from handlers import dispatch, jobmodel, quota
from handlers.batch import process_partial_response
from handlers.jobmodel import Status
from handlers.services import DISPATCH_CALLS, LauncherServices, deadline_of, function_timeout_seconds, launcher_services

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 24 * 3600
RECORD_SLOW_CALLS = 2
"""The calls of handling one record, each may be slow: claim a new job's upload and queue it (or terminate a
cancelled job's VM and release its quota)."""
TIMEOUT_SECONDS = function_timeout_seconds(DISPATCH_CALLS, RECORD_SLOW_CALLS + dispatch.JOB_START_SLOW_CALLS,
                                           dispatch.LAUNCH_BACKOFF_SECONDS)
"""The launcher's Lambda timeout: one record handled at its slowest, then one job start at its slowest; `dispatch`
starts a further job only while `dispatch.JOB_START_SECONDS` remain."""


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
        if dispatch.error_code(err) not in {"NoSuchKey", "404"}:
            raise
        log.info("upload gone before its job was queued", extra={"key": key})  # the worker fails it: input_gone


def queue_new_job(services: LauncherServices, record: Mapping[str, Any], fresh: dict[str, str]) -> None:
    """Claim the new job's upload, then PENDING -> QUEUED; remember the job in `fresh` for this batch's dispatch."""
    job_id = job_id_of(record)
    if record.get("eventName") != "INSERT" or job_id is None:
        return
    image = jobmodel.from_dynamodb(record.get("dynamodb", {}).get("NewImage", {}))
    claim_upload(services, image)
    if dispatch.transition(services, job_id, Status.PENDING, Status.QUEUED) is None:
        log.info("job not PENDING (duplicate or late delivery): skipped", extra={"job_id": job_id})
        return
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
        dispatch.terminate_vm(services, job_id, image["instance_id"], "the job was cancelled")


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


def handle_batch(
    services: LauncherServices, event: Mapping[str, Any], deadline: float | None = None
) -> dict[str, list[Any]]:
    """Handle every record, then move the queue; report records to retry as `batchItemFailures`."""
    fresh: dict[str, str] = {}
    records = event.get("Records", [])
    response = process_partial_response(records, lambda record: handle_record(services, record, fresh))
    if any(record.get("eventName") == "INSERT" and job_id_of(record) for record in records):
        dispatch.dispatch_logged(services, fresh, deadline)
    return response


def handle(event: Mapping[str, Any], services: LauncherServices, deadline: float | None = None) -> dict[str, Any]:
    """A batch of stream records: new jobs, and finished jobs that still hold their owner's quota. (Terminated VMs
    give their slots back in `handlers.release`, a function of its own.)"""
    return handle_batch(services, event, deadline)


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    return handle(event, launcher_services(), deadline_of(context))
