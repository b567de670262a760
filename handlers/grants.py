"""Per-user upload grants: at most `per_hour` presigned POSTs per user in each clock hour (UTC), held exactly.

Each user has a counter item per hour, `id = "uploads#<sub>#<hour's epoch seconds>"`, with `grants`. A grant is
one conditional UpdateItem (add one while below the limit), so twenty simultaneous requests by one user cannot pass
it (no read-then-write), and a new hour is a new item (nothing to reset). When the condition fails the hour is
full: 429 with the seconds to its end.

Counter items carry no `status` or `owner`, so no job index sees them, and their ids are not nanoids. They carry
`expires_at` (the jobs table's TTL attribute) a day after their hour, so a stack with a retention period drops them;
with `retentionDays` 0 (no TTL) they stay, one small item per user and hour in which that user asked to upload.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from handlers import jobmodel

GRANT_COUNTER_PREFIX = "uploads#"
WINDOW_SECONDS = 3600
COUNTER_TTL_SECONDS = 24 * 3600


class TooManyGrantsError(Exception):
    """The user has had `per_hour` upload grants this hour; `retry_after` seconds until the next hour."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"upload grants exhausted for {retry_after} s")
        self.retry_after = retry_after


def grant_counter_id(owner: str, window: int) -> str:
    """`uploads#<sub>#<hour's epoch seconds>`: one counter per user and hour, so a new hour needs no reset."""
    return f"{GRANT_COUNTER_PREFIX}{owner}#{window}"


def take_grant(ddb: Any, table: str, owner: str, per_hour: int, now: float | None = None) -> int:
    """Count one upload grant for `owner` in this hour's counter; return how many they have had this hour (1 to
    `per_hour`), or raise TooManyGrantsError. One conditional UpdateItem."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    try:
        answer = ddb.update_item(
            TableName=table, Key={"id": {"S": grant_counter_id(owner, window)}},
            UpdateExpression="SET grants = if_not_exists(grants, :zero) + :one, #ttl = :ttl",
            ConditionExpression="attribute_not_exists(grants) OR grants < :max",
            ExpressionAttributeNames={"#ttl": jobmodel.EXPIRES_AT},
            ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}, ":max": {"N": str(per_hour)},
                                       ":ttl": {"N": str(window + WINDOW_SECONDS + COUNTER_TTL_SECONDS)}},
            ReturnValues="UPDATED_NEW",
        )
    except ClientError as err:
        if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise TooManyGrantsError(max(1, window + WINDOW_SECONDS - int(now))) from None
        raise
    return int(answer["Attributes"]["grants"]["N"])
