"""`POST /api/jobs/{id}/cancel`, `POST /api/jobs/{id}/retry` and `DELETE /api/jobs/{id}`: users manage their jobs.

A Lambda function of its own, apart from the jobs function, so that each keeps a narrow role: this one may move any
job, copy and delete inputs, delete outputs and job items, which the jobs function may not.

- Cancel: one conditional write, by the job's owner, from a state that is not final to CANCELLED. The API never
  calls EC2: the CANCELLED job's stream record reaches the launcher, which terminates its VM if it has one (see
  `handlers.launcher` for a cancel that lands while the VM starts) and gives the owner's place back.
- Retry of a FAILED or CANCELLED job: a new job (new id) with the same text, its input copied server-side to the new
  job's key (each job owns exactly one input), once the input is found within today's `maxFileMb` (it may have
  been lowered since the upload). The new job, its count and the mark `retried_as` on the old job are
  one transaction conditional on the old job not being retried yet (or only into a job since deleted), so a
  repeated or concurrent retry makes one job and answers it.
- Delete of a final job: its input, output and log objects, then its item (and its count, if the launcher has not
  given it back yet). Only once its VM is gone: a VM slot is held exactly while its VM lives (`handlers.capacity`),
  so while the job holds one the delete is refused; the cap stays exact and no late upload of the worker can bring
  back a file of a deleted job. Files go first, so a failure leaves the job to delete again.

Every route answers a malformed id, a missing job and another user's job alike: 404 `job_not_found`, as `GET`.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from handlers import capacity, jobmodel, quota
from handlers.apigw import ApiError, Event, Response, Router, caller, json_response, no_body, no_content_response
from handlers.config import ApiConfig
from handlers.jobmodel import RETRIED_AS, Actor, Status
from handlers.jobviews import file_too_large, job_not_found, job_view, object_missing, owned_job, too_many_jobs
from handlers.services import MANAGE_CALLS, ApiServices, api_services

log = logging.getLogger(__name__)

def path_id(event: Event) -> object:
    return (event.get("pathParameters") or {}).get("id")


# -- cancel -----------------------------------------------------------------------------------------------------------
def cancel_job(ddb: Any, config: ApiConfig, job_id: object, owner: str) -> dict[str, str]:
    """Move the caller's unfinished job to CANCELLED and return it; an already cancelled job is returned as it is."""
    if not jobmodel.is_id(job_id):
        raise job_not_found()
    moved = jobmodel.transition(ddb, config.table, job_id, Status.CANCELLED, by=Actor.USER, owner=owner,
                                expected=sorted(jobmodel.CANCELLABLE_STATES))
    if moved is not None:
        log.info("job cancelled", extra={"job_id": job_id})
        return jobmodel.to_public(moved)
    # Not moved: another user's, missing, or (states never go back) final by now.
    job = owned_job(ddb, config.table, job_id, owner)
    if job["status"] != Status.CANCELLED:
        raise ApiError(409, "job_finished",
                       f"The job already ended {job['status']}: there is nothing to cancel.")
    return jobmodel.to_public(job)


# -- retry ------------------------------------------------------------------------------------------------------------
def input_gone() -> ApiError:
    return ApiError(409, "input_gone", "The job's input file no longer exists: upload it again for a new job.")


def input_size(s3: Any, source: str) -> int:
    """The size of the job's input (`<bucket>/<key>`)."""
    source_bucket, source_key = jobmodel.split_s3_path(source)
    try:
        return int(s3.head_object(Bucket=source_bucket, Key=source_key)["ContentLength"])
    except ClientError as err:
        if object_missing(err):
            raise input_gone() from None
        raise


def copy_input(s3: Any, source: str, bucket: str, key: str) -> None:
    """Copy the job's input (`<bucket>/<key>`) to `key`, server-side, with its metadata (the owner's)."""
    source_bucket, source_key = jobmodel.split_s3_path(source)
    try:
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": source_key},
                       MetadataDirective="COPY")
    except ClientError as err:
        if object_missing(err):  # deleted since it was measured
            raise input_gone() from None
        raise


def retried_mark(table: str, job: dict[str, str], new_id: str) -> dict[str, Any]:
    """The transaction item marking `job` retried as `new_id`: only if it is still its owner's, FAILED or
    CANCELLED, and not retried since it was read (`retried_as` absent, or naming the deleted job it named then)."""
    seen = job.get(RETRIED_AS)
    names = {"#owner": "owner", "#status": "status", "#retried": RETRIED_AS}
    retryable = {f":r{i}": {"S": state.value} for i, state in enumerate(sorted(jobmodel.RETRYABLE_STATES))}
    values: dict[str, Any] = {":owner": {"S": job["owner"]}, ":new": {"S": new_id}, **retryable}
    not_retried = "attribute_not_exists(#retried)"
    if seen is not None:
        values[":seen"] = {"S": seen}
        not_retried = "#retried = :seen"
    return {"Update": {
        "TableName": table,
        "Key": {"id": {"S": job["id"]}},
        "UpdateExpression": "SET #retried = :new",
        "ConditionExpression": f"#owner = :owner AND #status IN ({', '.join(retryable)}) AND {not_retried}",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }}


def made_by_retry(ddb: Any, table: str, job: dict[str, str]) -> dict[str, str] | None:
    """The job a retry of `job` made, if it was retried and that job still exists."""
    made = job.get(RETRIED_AS)
    return jobmodel.read_job(ddb, table, made) if made else None


def retry_job(ddb: Any, s3: Any, config: ApiConfig, job_id: object, owner: str) -> tuple[int, dict[str, str]]:
    """(201, the new job) for a FAILED or CANCELLED job of the caller; (200, that job) when it was retried already.

    The copy is deleted when the transaction is refused (nothing was written). After an ambiguous failure (a
    timeout: the transaction may have been applied) the copy is left: an unused object costs little, a new job
    without its input would fail.
    """
    old = owned_job(ddb, config.table, job_id, owner)
    made = made_by_retry(ddb, config.table, old)
    if made is not None:
        return 200, job_view(s3, config, made)
    if old["status"] not in jobmodel.RETRYABLE_STATES:
        raise ApiError(409, "job_not_retryable",
                       f"The job is {old['status']}: only a FAILED or CANCELLED job can be retried.")
    size = input_size(s3, old["input_file_path"])
    if size > config.max_file_bytes:  # the limit was lowered since the upload
        raise file_too_large(size, config.max_file_bytes)
    new_id = jobmodel.new_id()
    key = f"{jobmodel.INPUT_PREFIX}{new_id}/{PurePosixPath(old['input_file_path']).name}"
    copy_input(s3, old["input_file_path"], config.bucket, key)
    item = jobmodel.new_job(new_id, old["input_text"], f"{config.bucket}/{key}", owner)
    try:
        quota.create_job(ddb, config.table, item, config.max_active_jobs_per_user,
                         also=[retried_mark(config.table, old, new_id)])
    except (quota.PreconditionFailedError, quota.QuotaExceededError, quota.JobExistsError, ClientError) as err:
        if isinstance(err, ClientError) and quota.cancellation_reasons(err) is None:
            raise  # not a refused transaction: it may have been applied, so the copy stays
        s3.delete_object(Bucket=config.bucket, Key=key)
        if isinstance(err, quota.QuotaExceededError):
            raise too_many_jobs(config.max_active_jobs_per_user) from None
        return 200, retried_meanwhile(ddb, s3, config, old["id"], owner, err=err)
    log.info("job retried", extra={"job_id": new_id, "retry_of": old["id"]})
    return 201, jobmodel.to_public(item)


def retried_meanwhile(
    ddb: Any, s3: Any, config: ApiConfig, job_id: str, owner: str, *, err: Exception
) -> dict[str, str]:
    """After a refused retry: the job another request made from it meanwhile (concurrent retries make one job);
    `err` propagates when that is not why (a conflict with another write: the client may ask again)."""
    made = made_by_retry(ddb, config.table, owned_job(ddb, config.table, job_id, owner))
    if made is None:
        raise err
    return job_view(s3, config, made)


# -- delete -----------------------------------------------------------------------------------------------------------
def job_keys(job: dict[str, str], bucket: str) -> list[str]:
    """Every object a job has in `bucket`: its input, and its output and log (the keys the worker writes)."""
    input_bucket, input_key = jobmodel.split_s3_path(job["input_file_path"])
    if input_bucket != bucket:
        raise RuntimeError(f"job {job['id']}'s input is outside the stack's bucket")
    return [input_key, jobmodel.output_key(job["id"], input_key), jobmodel.log_key(job["id"])]


def delete_files(s3: Any, bucket: str, job: dict[str, str]) -> None:
    """Delete the job's objects in one request (a key already gone is no error); any object S3 could not delete
    fails the request, before the item is touched."""
    keys = job_keys(job, bucket)
    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True})
    if answer.get("Errors"):
        raise RuntimeError(f"S3 did not delete {len(answer['Errors'])} object(s) of job {job['id']}")


def delete_job(ddb: Any, s3: Any, config: ApiConfig, job_id: object, owner: str) -> None:
    """Delete the caller's finished job whose VM is gone: files, then item (and count)."""
    job = owned_job(ddb, config.table, job_id, owner)
    if job["status"] not in jobmodel.FINAL_STATES:
        raise ApiError(409, "job_not_final", f"The job is {job['status']}: cancel it first, then delete it.")
    if any(lease.job_id == job["id"] for lease in capacity.leases(ddb, config.table, config.max_concurrent_vms)):
        raise ApiError(409, "job_vm_running",
                       "The job's VM is still shutting down; try again in a minute.")
    delete_files(s3, config.bucket, job)
    try:
        released = quota.delete_finished(ddb, config.table, job)
    except quota.JobChangedError:  # the launcher gave the count back meanwhile: once more, as the job is now
        job = owned_job(ddb, config.table, job["id"], owner)
        released = quota.delete_finished(ddb, config.table, job)
    if released:  # the launcher never will: this is the job's one `job_finished` line
        log.info("job finished", extra=jobmodel.finished_fields(job))
    log.info("job deleted", extra={"job_id": job["id"]})


# -- routes -----------------------------------------------------------------------------------------------------------
router: Router[ApiServices] = Router("manage", aws_calls=8, call_limits=MANAGE_CALLS)
"""Eight calls at most, each with no SDK retry (`MANAGE_CALLS`): a retry reads the job and the job it was once
retried into, measures and copies the input, writes the transaction, and when that is refused deletes the copy and
reads both jobs again; a delete reads the job and the slots, deletes the files, writes the transaction, and when
the launcher released the job meanwhile reads and writes once more."""


@router.route("POST", "/api/jobs/{id}/cancel")
def post_cancel(event: Event, services: ApiServices) -> Response:
    no_body(event)
    return json_response(200, cancel_job(services.ddb, services.config, path_id(event), caller(event)))


@router.route("POST", "/api/jobs/{id}/retry")
def post_retry(event: Event, services: ApiServices) -> Response:
    no_body(event)
    status, job = retry_job(services.ddb, services.s3, services.config, path_id(event), caller(event))
    return json_response(status, job)


@router.route("DELETE", "/api/jobs/{id}")
def delete_one_job(event: Event, services: ApiServices) -> Response:
    no_body(event)
    delete_job(services.ddb, services.s3, services.config, path_id(event), caller(event))
    return no_content_response()


def handler(event: Event, context: object) -> Response:
    return router.resolve(event, api_services(MANAGE_CALLS))
