"""Per-user active jobs: at most `max_active` jobs of one user not yet SUCCEEDED or FAILED, held exactly.

Each user has a counter item `id = "user#<sub>"` with `active` (a number). A job is created in one transaction with
the increment, conditional on `active < max_active`, so ten simultaneous submissions by one user can never pass the
cap (no read-then-write). The job carries `holds_quota` while it counts. When a job reaches a final state, its
stream record (a MODIFY, filtered by `FINISHED_HOLDING_QUOTA`) reaches the launcher, which removes `holds_quota` and
decrements the counter in one transaction conditional on the marker: a redelivered record decrements nothing.

Counter items carry no `status` or `owner`, so no job index sees them, and their ids are not nanoids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from handlers import jobmodel

COUNTER_PREFIX = "user#"
HOLDS_QUOTA = "holds_quota"
HOLDS_QUOTA_VALUE = "true"


class JobExistsError(Exception):
    """A job with this id exists already (its upload was used)."""


class QuotaExceededError(Exception):
    """The user has `max_active` jobs that have not finished."""


def counter_id(owner: str) -> str:
    return f"{COUNTER_PREFIX}{owner}"


def create_job(ddb: Any, table: str, item: Mapping[str, str], max_active: int) -> None:
    """Save a new job and count it against its owner, both or neither."""
    job = {name: {"S": value} for name, value in {**item, HOLDS_QUOTA: HOLDS_QUOTA_VALUE}.items()}
    try:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": job, "ConditionExpression": "attribute_not_exists(id)"}},
            {"Update": {
                "TableName": table,
                "Key": {"id": {"S": counter_id(item["owner"])}},
                "UpdateExpression": "SET active = if_not_exists(active, :zero) + :one",
                "ConditionExpression": "attribute_not_exists(active) OR active < :max",
                "ExpressionAttributeValues": {":zero": {"N": "0"}, ":one": {"N": "1"}, ":max": {"N": str(max_active)}},
            }},
        ])
    except ClientError as err:
        reasons = [r.get("Code") for r in err.response.get("CancellationReasons", [])]
        if err.response["Error"]["Code"] != "TransactionCanceledException" or len(reasons) != 2:
            raise
        if reasons[0] == "ConditionalCheckFailed":
            raise JobExistsError(item["id"]) from None
        if reasons[1] == "ConditionalCheckFailed":
            raise QuotaExceededError(item["owner"]) from None
        raise


def release(ddb: Any, table: str, job_id: str, owner: str, expires_at: int | None = None) -> bool:
    """Stop counting a finished job (and, with `expires_at`, let the table's TTL delete it then); False when it was
    not counted any more (a redelivered record)."""
    finals = sorted(jobmodel.FINAL_STATES)
    values: dict[str, Any] = {f":f{i}": {"S": state} for i, state in enumerate(finals)}
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
            {"Update": {
                "TableName": table,
                "Key": {"id": {"S": counter_id(owner)}},
                "UpdateExpression": "SET active = active - :one",
                "ConditionExpression": "active > :zero",
                "ExpressionAttributeValues": {":zero": {"N": "0"}, ":one": {"N": "1"}},
            }},
        ])
    except ClientError as err:
        reasons = [r.get("Code") for r in err.response.get("CancellationReasons", [])]
        cancelled = err.response["Error"]["Code"] == "TransactionCanceledException"
        if cancelled and reasons[:1] == ["ConditionalCheckFailed"]:
            return False  # the job no longer holds a place: released already (a redelivered record)
        raise  # a conflict or a throttle: the stream record is retried
    return True


def active_jobs(ddb: Any, table: str, owner: str) -> int:
    """The user's counted jobs, read strongly consistent."""
    item = ddb.get_item(TableName=table, Key={"id": {"S": counter_id(owner)}}, ConsistentRead=True).get("Item")
    return int(item["active"]["N"]) if item else 0
