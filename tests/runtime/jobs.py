"""Helpers that put a job where a test needs it: an input object and an item in a given state."""

from __future__ import annotations

from typing import Any

from handlers import jobmodel
from local.provision import LocalStack


def put_job(
    s3: Any, ddb: Any, stack: LocalStack, *, content: bytes, text: str, filename: str = "input.txt",
    status: jobmodel.Status = jobmodel.Status.LAUNCHING, content_type: str = "text/plain",
) -> tuple[str, str]:
    """Upload `content` under a fresh upload key and save its job item; return (job id, input key)."""
    job_id = jobmodel.new_id()
    key = f"{jobmodel.INPUT_PREFIX}{job_id}/{filename}"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=content, ContentType=content_type)
    now = jobmodel.utc_now()
    item = {
        "id": job_id, "input_text": text, "input_file_path": f"{stack.bucket}/{key}", "status": status.value,
        "created_at": now, "updated_at": now, jobmodel.LIST_KEY_ATTR: jobmodel.LIST_KEY_VALUE,
    }
    ddb.put_item(TableName=stack.table, Item={k: {"S": v} for k, v in item.items()})
    return job_id, key


def get_item(ddb: Any, stack: LocalStack, job_id: str) -> dict[str, str] | None:
    found = ddb.get_item(TableName=stack.table, Key={"id": {"S": job_id}}, ConsistentRead=True).get("Item")
    return jobmodel.from_dynamodb(found) if found else None
