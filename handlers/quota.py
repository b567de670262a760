"""Per-user active jobs: at most `max_active_jobs_per_user` jobs of one user not yet final (SUCCEEDED, FAILED,
CANCELLED), held exactly.

Each user has a counter item `id = "user#<sub>"` with `active` (a number). A job is created in one transaction with
the increment, conditional on `active < max_active_jobs_per_user`, so ten simultaneous submissions by one user can
never pass the cap (no read-then-write). The job carries `holds_quota` while it counts. When a job reaches a final
state, its stream record (a MODIFY, filtered by `FINISHED_HOLDING_QUOTA`) reaches the launcher, which removes
`holds_quota` and decrements the counter in one transaction conditional on the marker: a redelivered record
decrements nothing. A finished job its owner deletes before that (`delete_finished`) takes its count with it, in the
same transaction, conditional on the marker as read: the launcher and the delete cannot both decrement.

Counter items carry no `status` or `owner`, so no job index sees them, and their ids are not nanoids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from handlers import jobmodel

COUNTER_PREFIX = "user#"
HOLDS_QUOTA = "holds_quota"
HOLDS_QUOTA_VALUE = "true"


class JobExistsError(Exception):
    """A job with this id exists already (its upload was used)."""


class QuotaExceededError(Exception):
    """The user has `max_active_jobs_per_user` jobs that have not finished."""


class PreconditionFailedError(Exception):
    """The condition of an item written along with a new job (`create_job`'s `also`) failed: nothing was written."""


class JobChangedError(Exception):
    """The job is no longer as it was read (released meanwhile, or gone): nothing was deleted."""


def counter_id(owner: str) -> str:
    return f"{COUNTER_PREFIX}{owner}"


def cancellation_reasons(err: ClientError) -> list[str] | None:
    """Each item's reason of a cancelled transaction (`ConditionalCheckFailed`, `None`, ...); None when the error is
    not a cancelled transaction."""
    if err.response["Error"]["Code"] != "TransactionCanceledException":
        return None
    return [str(r.get("Code")) for r in err.response.get("CancellationReasons", [])]


def create_job(
    ddb: Any, table: str, item: Mapping[str, str], max_active_jobs_per_user: int,
    also: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Save a new job and count it against its owner, both or neither; `also`: more transaction items written with
    them or not at all (a retry marks the job it retries)."""
    job = {name: {"S": value} for name, value in {**item, HOLDS_QUOTA: HOLDS_QUOTA_VALUE}.items()}
    try:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": job, "ConditionExpression": "attribute_not_exists(id)"}},
            {"Update": {
                "TableName": table,
                "Key": {"id": {"S": counter_id(item["owner"])}},
                "UpdateExpression": "SET active = if_not_exists(active, :zero) + :one",
                "ConditionExpression": "attribute_not_exists(active) OR active < :max",
                "ExpressionAttributeValues": {
                    ":zero": {"N": "0"}, ":one": {"N": "1"}, ":max": {"N": str(max_active_jobs_per_user)}},
            }},
            *also,
        ])
    except ClientError as err:
        reasons = cancellation_reasons(err)
        if reasons is None or len(reasons) != 2 + len(also):
            raise
        if "ConditionalCheckFailed" in reasons[2:]:
            raise PreconditionFailedError(item["id"]) from None
        if reasons[0] == "ConditionalCheckFailed":
            raise JobExistsError(item["id"]) from None
        if reasons[1] == "ConditionalCheckFailed":
            raise QuotaExceededError(item["owner"]) from None
        raise


def final_values() -> dict[str, Any]:
    """`:f0`, `:f1`, ...: the final states, as expression values for `#status IN (...)`."""
    return {f":f{i}": {"S": state} for i, state in enumerate(sorted(jobmodel.FINAL_STATES))}


def decrement(table: str, owner: str) -> dict[str, Any]:
    """The transaction item that stops counting one of `owner`'s jobs (never below zero)."""
    return {"Update": {
        "TableName": table,
        "Key": {"id": {"S": counter_id(owner)}},
        "UpdateExpression": "SET active = active - :one",
        "ConditionExpression": "active > :zero",
        "ExpressionAttributeValues": {":zero": {"N": "0"}, ":one": {"N": "1"}},
    }}


def release(ddb: Any, table: str, job_id: str, owner: str, expires_at: int | None = None) -> bool:
    """Stop counting a finished job (and, with `expires_at`, let the table's TTL delete it then); False when it was
    not counted any more (a redelivered record)."""
    values = final_values()
    names = {"#holds": HOLDS_QUOTA, "#status": "status"}
    update = "REMOVE #holds"
    if expires_at is not None:
        names["#expires"] = jobmodel.EXPIRES_AT
        update += " SET #expires = :expires"
    try:
        ddb.transact_write_items(TransactItems=[
            {"Update": {
                "TableName": table,
                "Key": {"id": {"S": job_id}},
                "UpdateExpression": update,
                "ConditionExpression": f"attribute_exists(#holds) AND #status IN ({', '.join(values)})",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values if expires_at is None else {
                    **values, ":expires": {"N": str(expires_at)}},
            }},
            decrement(table, owner),
        ])
    except ClientError as err:
        if (cancellation_reasons(err) or [])[:1] == ["ConditionalCheckFailed"]:
            return False  # the job no longer holds a place: released already (a redelivered record)
        raise  # a conflict or a throttle: the stream record is retried
    return True


def delete_finished(ddb: Any, table: str, job: Mapping[str, str]) -> bool:
    """Delete a finished job's item, and its count if it still holds one (the launcher has not released it yet),
    both or neither, on condition that the job is still as `job` (read before) shows it: final, its owner's, and
    holding a place or not. Return whether it stopped counting the job; raise JobChangedError when the job changed
    meanwhile (the launcher released it: read it again and retry)."""
    holds = HOLDS_QUOTA in job
    finals = final_values()
    values = {**finals, ":owner": {"S": job["owner"]}}
    held = "attribute_exists(#holds)" if holds else "attribute_not_exists(#holds)"
    delete = {"Delete": {
        "TableName": table,
        "Key": {"id": {"S": job["id"]}},
        "ConditionExpression": f"#owner = :owner AND #status IN ({', '.join(finals)}) AND {held}",
        "ExpressionAttributeNames": {"#owner": "owner", "#status": "status", "#holds": HOLDS_QUOTA},
        "ExpressionAttributeValues": values,
    }}
    try:
        ddb.transact_write_items(TransactItems=[delete, *([decrement(table, job["owner"])] if holds else [])])
    except ClientError as err:
        if (cancellation_reasons(err) or [])[:1] == ["ConditionalCheckFailed"]:
            raise JobChangedError(job["id"]) from None
        raise
    return holds
