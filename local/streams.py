"""The local stand-in for the launcher's event source mapping: poll the table's stream, call the launcher.

Semantics follow Lambda's DynamoDB event source mapping as the Pulumi program configures it (filter patterns,
batch size and retry limit from `stackspec.settings`): records are filtered before batching
(a record passes if it matches any pattern), delivered in order in batches of at most `batch_size`, and with
ReportBatchItemFailures a batch is retried from the lowest failed sequence number (records before it are done).
A batch whose function call raises is bisected and retried; after `max_retries` retries a batch is dropped and
logged (AWS would send it to the on-failure SQS destination). Every record, filtered or not, can be observed (local
mode logs job transitions from them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from local.serving import BackgroundLoop
from stackspec.triggers import LAUNCHER_EVENT_FILTERS, STREAM_BATCH_SIZE, STREAM_MAX_RETRIES

log = logging.getLogger("filepipe.local")

BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0, 4.0)

LambdaHandler = Callable[[Mapping[str, Any], Any], Any]
RecordObserver = Callable[[Mapping[str, Any]], None]


def lambda_record(record: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A `GetRecords` record as Lambda delivers it (boto3 parses `ApproximateCreationDateTime` into a datetime)."""
    data = dict(record["dynamodb"])
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        data["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": data,
        "eventSourceARN": stream_arn,
    }


def matches(pattern: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Lambda event filtering for the subset we use: nested keys whose values must be one of a list."""
    for key, expected in pattern.items():
        value = record.get(key) if isinstance(record, Mapping) else None
        if isinstance(expected, Mapping):
            if not isinstance(value, Mapping) or not matches(expected, value):
                return False
        elif value not in expected:
            return False
    return True


def sequence_number(record: Mapping[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def first_failed_index(batch: list[dict[str, Any]], response: Any) -> int | None:
    """Index in `batch` to resume from, per `batchItemFailures`; None when the whole batch succeeded.

    Like Lambda, an unparseable response or an identifier that is not in the batch fails the whole batch.
    """
    if response is None:
        return None
    if not isinstance(response, Mapping):
        return 0
    failures = response.get("batchItemFailures") or []
    if not failures:
        return None
    positions = {sequence_number(r): i for i, r in enumerate(batch)}
    indexes = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if identifier not in positions:
            return 0
        indexes.append(positions[identifier])
    return min(indexes)


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None


@dataclass
class StreamPoller:
    """Reads one stream from TRIM_HORIZON in a background thread and feeds `handler` Lambda-shaped batches."""

    streams: Any
    stream_arn: str
    handler: LambdaHandler
    region: str
    observer: RecordObserver | None = None
    batch_size: int = STREAM_BATCH_SIZE
    max_retries: int = STREAM_MAX_RETRIES
    poll_seconds: float = 0.2
    filters: tuple[Mapping[str, Any], ...] = LAUNCHER_EVENT_FILTERS
    pending: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    _shards: dict[str, _Shard] = field(default_factory=dict)
    _loop: BackgroundLoop | None = None
    _limit: int = 0
    _retries: int = 0
    _next_attempt: float = 0.0

    def __post_init__(self) -> None:
        self._limit = self.batch_size

    def start(self) -> None:
        self._loop = BackgroundLoop(self._run, "stream-poller")
        self._loop.start()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.stop()

    def _run(self) -> None:
        assert self._loop is not None
        stopping = self._loop.stopping
        while not stopping.is_set():
            try:
                got = self.poll_once()
            except Exception:  # keep polling: a hiccup of the emulator must not stop local mode
                log.exception("stream poller: reading the stream failed")
                got = False
            if not got:
                stopping.wait(self.poll_seconds)

    def poll_once(self) -> bool:
        """Read new records and deliver at most one batch; return whether anything happened."""
        fetched = self.fetch()
        delivered = self.deliver()
        return fetched or delivered

    def fetch(self) -> bool:
        self._refresh_shards()
        fetched = False
        for shard in self._shards.values():
            if shard.iterator is None:
                continue
            page = self.streams.get_records(ShardIterator=shard.iterator, Limit=1000)
            shard.iterator = page.get("NextShardIterator")
            for raw in page.get("Records", []):
                fetched = True
                record = lambda_record(raw, self.stream_arn, self.region)
                if self.observer is not None:
                    try:
                        self.observer(record)
                    except Exception:
                        log.exception("stream poller: observer failed")
                if any(matches(pattern, record) for pattern in self.filters):
                    self.pending.append(record)
        return fetched

    def _refresh_shards(self) -> None:
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            if shard["ShardId"] not in self._shards:
                iterator = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                self._shards[shard["ShardId"]] = _Shard(shard["ShardId"], iterator)

    def deliver(self) -> bool:
        if not self.pending or time.monotonic() < self._next_attempt:
            return False
        batch = self.pending[: self._limit]
        try:
            response = self.handler({"Records": batch}, None)
            resume = first_failed_index(batch, response)
            crashed = False
        except Exception:
            log.exception("launcher raised on a batch of %d record(s)", len(batch))
            resume, crashed = 0, True
        if resume is None:
            del self.pending[: len(batch)]
            self._limit, self._retries, self._next_attempt = self.batch_size, 0, 0.0
            return True
        del self.pending[:resume]
        if crashed and len(batch) > 1:
            self._limit = max(1, len(batch) // 2)  # BisectBatchOnFunctionError
        self._retries += 1
        if self._retries > self.max_retries:
            failed = self.pending[: len(batch) - resume]
            del self.pending[: len(failed)]
            self.dropped.extend(failed)
            log.error("stream: gave up on %d record(s) after %d retries (AWS: on-failure destination): %s",
                      len(failed), self.max_retries, ", ".join(sequence_number(r) for r in failed))
            self._limit, self._retries, self._next_attempt = self.batch_size, 0, 0.0
            return True
        delay = BACKOFF_SECONDS[min(self._retries, len(BACKOFF_SECONDS)) - 1]
        self._next_attempt = time.monotonic() + delay
        log.warning("stream: retrying from record %s in %.1fs (retry %d of %d)",
                    sequence_number(self.pending[0]), delay, self._retries, self.max_retries)
        return True
