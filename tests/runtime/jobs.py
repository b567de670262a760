"""Helpers that put a job where a test needs it: an input object and an item in a given state."""

from __future__ import annotations

from typing import Any

from handlers import capacity, jobmodel
from local.provision import LocalStack
from tests.records import job_in_state

OWNER = "runtime-test-user"


def put_job(
    s3: Any, ddb: Any, stack: LocalStack, *, content: bytes, text: str, filename: str = "input.txt",
    status: jobmodel.Status = jobmodel.Status.LAUNCHING, content_type: str = "text/plain",
) -> tuple[str, str]:
    """Upload `content` under a fresh upload key and save its job item; return (job id, input key)."""
    job_id = jobmodel.new_id()
    key = f"{jobmodel.INPUT_PREFIX}{job_id}/{filename}"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=content, ContentType=content_type)
    item = job_in_state(job_id, text, f"{stack.bucket}/{key}", OWNER, status)
    ddb.put_item(TableName=stack.table, Item={k: {"S": v} for k, v in item.items()})
    return job_id, key


def get_item(ddb: Any, stack: LocalStack, job_id: str) -> dict[str, str] | None:
    return jobmodel.read_job(ddb, stack.table, job_id)


def held_slots(ddb: Any, table: str, max_slots: int) -> dict[int, str]:
    """Slot number -> job id for every held VM slot."""
    return {lease.slot: lease.job_id for lease in capacity.leases(ddb, table, max_slots)}
