"""The partial-batch helper: which stream records the event source mapping retries."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from handlers.batch import process_partial_response


def record(sequence: str, outcome: str = "ok") -> dict[str, Any]:
    return {"eventID": f"e{sequence}", "dynamodb": {"SequenceNumber": sequence}, "outcome": outcome}


def handle(item: Any) -> None:
    if item["outcome"] == "throttled":
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "PutItem")
    if item["outcome"] == "unreachable":
        raise EndpointConnectionError(endpoint_url="https://dynamodb")
    if item["outcome"] == "bug":
        raise KeyError("a bug, not a passing fault")


def test_every_record_is_handled_and_aws_faults_are_reported_by_sequence_number() -> None:
    seen: list[str] = []
    records = [record("1"), record("2", "throttled"), record("3"), record("4", "unreachable")]

    result = process_partial_response(records, lambda r: (seen.append(r["eventID"]), handle(r)))

    assert seen == ["e1", "e2", "e3", "e4"], "a failed record must not stop the ones after it"
    assert result == {"batchItemFailures": [{"itemIdentifier": "2"}, {"itemIdentifier": "4"}]}


def test_an_empty_batch_reports_no_failure() -> None:
    assert process_partial_response([], handle) == {"batchItemFailures": []}


def test_a_programming_error_fails_the_whole_batch() -> None:
    """Retrying one record for ever would hide a bug; the mapping's bisect and on-failure queue deal with it."""
    with pytest.raises(KeyError):
        process_partial_response([record("1"), record("2", "bug")], handle)
