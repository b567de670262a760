"""Partial batch responses for stream-triggered functions (the shape of Powertools' `process_partial_response`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

Record = Mapping[str, Any]


def process_partial_response(
    records: Iterable[Record],
    handle: Callable[[Record], object],
    *,
    retryable: tuple[type[Exception], ...] = (ClientError, BotoCoreError),
) -> dict[str, list[dict[str, str]]]:
    """Call `handle` on each DynamoDB stream record; those that raise a `retryable` error are reported in
    `batchItemFailures`, so the event source mapping retries from the first of them. Any other error propagates
    and fails the whole batch (a bug, not a passing fault)."""
    failures = []
    for record in records:
        try:
            handle(record)
        except retryable as err:
            log.warning("stream record will be retried", extra={"event_id": record.get("eventID"), "reason": str(err)})
            failures.append({"itemIdentifier": str(record["dynamodb"]["SequenceNumber"])})
    return {"batchItemFailures": failures}
