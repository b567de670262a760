"""The local event source mapping: Lambda-shaped records, INSERT filter, batches, and batchItemFailures retries."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from local.schedule import Schedule
from local.streams import StreamPoller, first_failed_index, lambda_record, matches
from stackspec.triggers import LAUNCHER_EVENT_FILTERS, NEW_JOB_FILTER
from tests.waiting import wait_for

ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"


def raw(seq: int, name: str = "INSERT", job: str = "j") -> dict[str, Any]:
    """A record as boto3's dynamodbstreams.get_records returns it (the timestamp already a datetime)."""
    return {
        "eventID": f"ev{seq}", "eventName": name, "eventVersion": "1.0", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
            "Keys": {"id": {"S": f"{job}{seq}"}}, "NewImage": {"id": {"S": f"{job}{seq}"}, "status": {"S": "PENDING"}},
            "SequenceNumber": str(1000 + seq), "SizeBytes": 42, "StreamViewType": "NEW_IMAGE",
        },
    }


class FakeStreams:
    """One shard; `get_records` hands out what was `push`ed since the last call."""

    def __init__(self) -> None:
        self.queue: list[dict[str, Any]] = []

    def push(self, *records: dict[str, Any]) -> None:
        self.queue.extend(records)

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:  # noqa: N803 (boto3's parameter names)
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-1"}]}}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["ShardIteratorType"] == "TRIM_HORIZON"
        return {"ShardIterator": "it"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        records, self.queue = self.queue, []
        return {"Records": records, "NextShardIterator": "it"}


class Launcher:
    """Records each batch's sequence numbers; answers with scripted responses (or exceptions), then successes."""

    def __init__(self, *responses: Any) -> None:
        self.batches: list[list[str]] = []
        self.responses = list(responses)

    def __call__(self, event: Mapping[str, Any], context: object) -> Any:
        self.batches.append([r["dynamodb"]["SequenceNumber"] for r in event["Records"]])
        response = self.responses.pop(0) if self.responses else {"batchItemFailures": []}
        if isinstance(response, Exception):
            raise response
        return response


def poller(launcher: Launcher, **kwargs: Any) -> tuple[StreamPoller, FakeStreams]:
    fake = FakeStreams()
    return StreamPoller(streams=fake, stream_arn=ARN, handler=launcher, region="eu-west-1", **kwargs), fake


def drain(p: StreamPoller, rounds: int = 20) -> None:
    for _ in range(rounds):
        p._next_attempt = 0.0  # no waiting for the backoff in unit tests
        p.poll_once()


def failure(seq: int) -> dict[str, Any]:
    return {"itemIdentifier": str(1000 + seq)}


def test_records_have_lambdas_shape() -> None:
    record = lambda_record(raw(1), ARN, "eu-west-1")
    assert record == {
        "eventID": "ev1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1", "eventSourceARN": ARN,
        "dynamodb": {
            "ApproximateCreationDateTime": int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()),
            "Keys": {"id": {"S": "j1"}}, "NewImage": {"id": {"S": "j1"}, "status": {"S": "PENDING"}},
            "SequenceNumber": "1001", "SizeBytes": 42, "StreamViewType": "NEW_IMAGE",
        },
    }
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)


def test_filter_pattern_matches_insert_only() -> None:
    new_job = {"eventName": "INSERT", "dynamodb": {"NewImage": {"status": {"S": "PENDING"}}}}
    assert matches(NEW_JOB_FILTER, new_job)
    assert not matches(NEW_JOB_FILTER, {**new_job, "eventName": "MODIFY"})
    assert not matches(NEW_JOB_FILTER, {"eventName": "INSERT", "dynamodb": {"NewImage": {"active": {"N": "1"}}}}), (
        "a per-user counter or VM slot is not a job")
    assert not matches(NEW_JOB_FILTER, {})
    assert matches({"dynamodb": {"StreamViewType": ["NEW_IMAGE"]}}, {"dynamodb": {"StreamViewType": "NEW_IMAGE"}})


def test_the_launchers_filters_pass_new_jobs_only() -> None:
    def modified(status: str) -> dict[str, Any]:
        record = lambda_record(raw(1, "MODIFY"), ARN, "r")
        record["dynamodb"]["NewImage"]["status"] = {"S": status}
        return record

    def passes(record: dict[str, Any]) -> bool:
        return any(matches(pattern, record) for pattern in LAUNCHER_EVENT_FILTERS)

    assert passes(lambda_record(raw(1), ARN, "r"))
    for status in ("QUEUED", "LAUNCHING", "RUNNING", "SUCCEEDED", "FAILED"):
        assert not passes(modified(status)), status
    assert not passes(lambda_record(raw(1, "REMOVE"), ARN, "r"))


def test_only_inserts_reach_the_launcher_but_every_record_is_observed() -> None:
    seen: list[str] = []
    launcher = Launcher()
    p, fake = poller(launcher, observer=lambda r: seen.append(r["eventName"]))
    fake.push(raw(1), raw(2, "MODIFY"), raw(3, "REMOVE"), raw(4))
    drain(p)
    assert launcher.batches == [["1001", "1004"]]
    assert seen == ["INSERT", "MODIFY", "REMOVE", "INSERT"]


def test_batches_are_bounded_and_in_order() -> None:
    launcher = Launcher()
    p, fake = poller(launcher, batch_size=3)
    fake.push(*(raw(i) for i in range(7)))
    drain(p)
    assert launcher.batches == [["1000", "1001", "1002"], ["1003", "1004", "1005"], ["1006"]]


def test_retry_resumes_from_the_lowest_failed_sequence_number() -> None:
    launcher = Launcher({"batchItemFailures": [failure(3), failure(2)]})
    p, fake = poller(launcher, batch_size=5)
    fake.push(*(raw(i) for i in range(5)))
    drain(p)
    assert launcher.batches == [["1000", "1001", "1002", "1003", "1004"], ["1002", "1003", "1004"]]
    assert p.pending == [] and p.dropped == []


def test_an_unknown_item_identifier_fails_the_whole_batch() -> None:
    launcher = Launcher({"batchItemFailures": [{"itemIdentifier": "nope"}]})
    p, fake = poller(launcher)
    fake.push(raw(1), raw(2))
    drain(p)
    assert launcher.batches == [["1001", "1002"], ["1001", "1002"]]


def test_a_crash_retries_the_batch_bisected() -> None:
    launcher = Launcher(RuntimeError("boom"))
    p, fake = poller(launcher, batch_size=4)
    fake.push(*(raw(i) for i in range(4)))
    drain(p)
    assert launcher.batches == [["1000", "1001", "1002", "1003"], ["1000", "1001"], ["1002", "1003"]]


def test_a_record_that_keeps_failing_is_dropped_after_max_retries_and_the_rest_go_on() -> None:
    launcher = Launcher(*[{"batchItemFailures": [failure(1)]}] * 3)
    p, fake = poller(launcher, max_retries=2, batch_size=1)
    fake.push(raw(1), raw(2))
    drain(p)
    assert launcher.batches == [["1001"], ["1001"], ["1001"], ["1002"]]
    assert [r["dynamodb"]["SequenceNumber"] for r in p.dropped] == ["1001"]


def test_retries_wait_for_the_backoff() -> None:
    launcher = Launcher({"batchItemFailures": [failure(1)]})
    p, fake = poller(launcher)
    fake.push(raw(1))
    p.poll_once()
    p.poll_once()  # within the backoff: no second call yet
    assert launcher.batches == [["1001"]]


@pytest.mark.parametrize(("response", "expected"), [
    (None, None),
    ({"batchItemFailures": []}, None),
    ({}, None),
    ({"batchItemFailures": [{"itemIdentifier": "1002"}]}, 1),
    ({"batchItemFailures": [{}]}, 0),
    ("not a dict", 0),
])
def test_first_failed_index(response: Any, expected: int | None) -> None:
    batch = [lambda_record(raw(i), ARN, "r") for i in (1, 2, 3)]
    assert first_failed_index(batch, response) == expected


def test_a_schedule_calls_its_handler_with_scheduled_events() -> None:
    calls: list[Mapping[str, Any]] = []
    schedule = Schedule("sweeper", lambda event, context: calls.append(event), 0.02, "eu-west-1")
    schedule.start()
    wait_for(lambda: len(calls) >= 2, 5, "two scheduled calls", interval=0.01)
    schedule.stop()
    assert calls[0]["detail-type"] == "Scheduled Event" and calls[0]["source"] == "aws.events"
    assert calls[0]["resources"] == ["arn:aws:events:eu-west-1:123456789012:rule/sweeper"]
    count = len(calls)
    time.sleep(0.1)
    assert len(calls) == count  # stopped means stopped
