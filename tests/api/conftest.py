"""The local stack for API tests: LocalPipeline with the default settings (the limits docs/openapi.json shows), a
launcher that starts nothing and no sweeper, so what the API writes is all that changes in the emulator."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from local.app import LocalPipeline
from local.streams import LambdaHandler
from stackspec.settings import StackSettings
from tests.local.harness import UPLOADS_UNBOUNDED

SETTINGS = StackSettings(upload_grants_per_hour=UPLOADS_UNBOUNDED)


def launching_nothing(launcher: LambdaHandler, pipeline: LocalPipeline) -> LambdaHandler:
    """Jobs stay PENDING and no VM writes outputs: the emulator changes only when the API writes."""

    def ignore(event: Mapping[str, Any], context: object) -> dict[str, list[Any]]:
        return {"batchItemFailures": []}

    return ignore


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(port=0, settings=SETTINGS, wrap_launcher=launching_nothing, sweep_seconds=None) as running:
        yield running


@dataclass(frozen=True)
class Snapshot:
    """Everything the API could write: every job item, every object (key and ETag) in the data bucket."""

    items: tuple[tuple[tuple[str, str], ...], ...]
    objects: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, pipeline: LocalPipeline) -> Snapshot:
        ddb, s3 = pipeline.client("dynamodb"), pipeline.client("s3")
        items = ddb.scan(TableName=pipeline.stack.table, ConsistentRead=True)["Items"]
        listing = s3.list_objects_v2(Bucket=pipeline.stack.bucket).get("Contents", [])
        return cls(
            items=tuple(sorted(tuple(sorted((name, str(value)) for name, value in item.items())) for item in items)),
            objects=frozenset((obj["Key"], obj["ETag"]) for obj in listing),
        )
