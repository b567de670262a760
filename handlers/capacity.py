"""VM slots: at most `max_concurrent_vms` workers at once, held as lease items in the jobs table.

Slot `n` is the item `id = "slot#<n>"`. A job may start its VM only while it holds a slot, and a slot is taken with
a conditional write (`attribute_not_exists(holder)`), so two launchers racing for the last slot cannot both win: the
cap holds with no check-then-act window. A slot is given back when its job ends (the launcher sees the final state on
the stream) and, as a safety net, by the sweeper for holders that are over, missing or back in the queue.

Slot items carry no `status` or `list_key`, so they never appear in the job indexes, and their ids are not nanoids,
so the API and the launcher never take them for jobs.
"""

from __future__ import annotations

import random
from typing import Any

from botocore.exceptions import ClientError

from handlers import jobmodel

SLOT_PREFIX = "slot#"


def slot_id(slot: int) -> str:
    return f"{SLOT_PREFIX}{slot}"


def acquire(ddb: Any, table: str, job_id: str, max_slots: int) -> int | None:
    """Take a free slot for `job_id`; None when all `max_slots` are held."""
    order = list(range(max_slots))
    random.shuffle(order)  # spread concurrent launchers over the slots instead of all fighting for slot 0
    for slot in order:
        try:
            ddb.update_item(
                TableName=table,
                Key={"id": {"S": slot_id(slot)}},
                UpdateExpression="SET holder = :job, held_at = :now",
                ConditionExpression="attribute_not_exists(holder)",
                ExpressionAttributeValues={":job": {"S": job_id}, ":now": {"S": jobmodel.utc_now()}},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                continue
            raise
        return slot
    return None


def release(ddb: Any, table: str, job_id: str, slot: int) -> bool:
    """Give slot `slot` back if `job_id` still holds it; False when it did not (already released, or reused)."""
    try:
        ddb.update_item(
            TableName=table,
            Key={"id": {"S": slot_id(slot)}},
            UpdateExpression="REMOVE holder, held_at",
            ConditionExpression="holder = :job",
            ExpressionAttributeValues={":job": {"S": job_id}},
        )
    except ClientError as err:
        if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def holders(ddb: Any, table: str, max_slots: int) -> dict[int, str]:
    """Slot number -> job id for every held slot (strongly consistent)."""
    keys = [{"id": {"S": slot_id(slot)}} for slot in range(max_slots)]
    held: dict[int, str] = {}
    for start in range(0, len(keys), 100):
        request = {table: {"Keys": keys[start:start + 100], "ConsistentRead": True}}
        while request:
            page = ddb.batch_get_item(RequestItems=request)
            for item in page["Responses"].get(table, []):
                if "holder" in item:
                    held[int(item["id"]["S"].removeprefix(SLOT_PREFIX))] = item["holder"]["S"]
            request = page.get("UnprocessedKeys") or {}
    return held
