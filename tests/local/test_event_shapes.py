"""The events local mode builds have the shape of AWS's documented sample events (`tests/events/`, sources in its
README): the same keys at every level (none invented, none missing but those AWS itself sends only sometimes) and
the same JSON types, so the emulation is compared with AWS rather than with itself."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from handlers.routes import ROUTES
from local.events import instance_state_change, scheduled_event
from local.streams import StreamPoller
from local.web import LocalWebApp
from tests.conftest import Aws

EVENTS = Path(__file__).resolve().parents[1] / "events"

FREE_FORM = frozenset({
    "$.headers", "$.queryStringParameters", "$.pathParameters", "$.stageVariables",
    "$.Records[].dynamodb.Keys", "$.Records[].dynamodb.NewImage", "$.Records[].dynamodb.OldImage",
})
"""Objects whose keys are data (header names, item attributes): only their values' types are compared."""

API_OPTIONAL = frozenset({
    "$.cookies", "$.body", "$.pathParameters", "$.queryStringParameters", "$.stageVariables",
    "$.requestContext.authentication",  # mutual TLS only
    "$.requestContext.authorizer",  # routes with an authorizer only
})
"""Keys API Gateway sends only when the request (or the route) has them: a request without cookies has no `cookies`."""


def sample(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def json_type(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return repr(value) if value is None else "boolean"
    if isinstance(value, int | float):
        return "number"  # AWS's samples write epoch seconds as 1693997155.0 or 1480642020: the same JSON type
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def shape_mismatches(built: Any, expected: Any, path: str = "$",
                     optional: frozenset[str] = frozenset()) -> list[str]:
    """Differences in key structure and value types between an event we build and AWS's sample of it."""
    if json_type(built) != json_type(expected):
        return [f"{path}: {json_type(built)}, AWS sends {json_type(expected)}"]
    if isinstance(built, list):
        return [m for item in built[:1] for m in shape_mismatches(item, expected[0], f"{path}[]", optional)
                if expected]
    if not isinstance(built, dict):
        return []
    if path in FREE_FORM:
        value_types = {json_type(v) for v in expected.values()}
        return [f"{path}.{k}: {json_type(v)}, AWS sends {value_types}" for k, v in built.items()
                if json_type(v) not in value_types]
    problems = [f"{path}.{key}: not in AWS's event" for key in built if key not in expected]
    problems += [f"{path}.{key}: missing" for key in expected
                 if key not in built and f"{path}.{key}" not in optional]
    for key in built.keys() & expected.keys():
        problems += shape_mismatches(built[key], expected[key], f"{path}.{key}", optional)
    return problems


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: Mapping[str, Any], context: object) -> Any:
        self.events.append(dict(event))
        return {"statusCode": 200, "body": "{}"}


@pytest.fixture
def api_events(tmp_path: Path) -> list[dict[str, Any]]:
    """What the local web server hands the handlers for a POST with a query, cookies and a body, and for a GET
    with a path parameter."""
    recorder = Recorder()
    client = Client(LocalWebApp(routes=ROUTES, handlers={"jobs": recorder, "upload": recorder},
                                frontend_dir=tmp_path, site_config={}))
    client.set_cookie("session", "abc")
    client.post("/api/jobs?limit=1&limit=2", json={"input_text": "t", "key": "k"}, headers={"X-Two": "a"})
    client.get("/api/jobs/" + "a" * 21)
    return recorder.events


def test_http_api_events_have_the_payload_2_shape(api_events: list[dict[str, Any]]) -> None:
    expected = sample("apiGatewayProxyV2Event.json")
    post, get = api_events
    assert shape_mismatches(post, expected, optional=API_OPTIONAL) == []
    assert shape_mismatches(get, expected, optional=API_OPTIONAL) == []
    assert {"cookies", "body", "queryStringParameters"} <= post.keys() and "pathParameters" in get
    assert post["version"] == expected["version"] and post["requestContext"]["stage"] == "$default"
    for event in (post, get, expected):  # the same clock format as AWS's `time`
        datetime.strptime(event["requestContext"]["time"], "%d/%b/%Y:%H:%M:%S %z")


def test_stream_batches_have_the_dynamodb_event_shape(aws: Aws) -> None:
    """The poller's batch for a real stream record (moto's GetRecords reshaped as Lambda delivers it)."""
    aws.client("dynamodb").put_item(TableName=aws.stack.table,
                                    Item={"id": {"S": "a" * 21}, "status": {"S": "PENDING"}})
    recorder = Recorder()
    poller = StreamPoller(streams=aws.client("dynamodbstreams"), stream_arn=aws.stack.stream_arn,
                          handler=recorder, region="us-east-1")
    poller.poll_once()
    [batch] = recorder.events
    expected = sample("dynamoStreamEvent.json")
    assert shape_mismatches(batch, expected) == []
    record, insert = batch["Records"][0], expected["Records"][0]
    assert (record["eventName"], record["eventSource"]) == (insert["eventName"], insert["eventSource"])
    assert record["dynamodb"]["NewImage"]["id"] == {"S": "a" * 21}


def test_ec2_state_changes_have_the_eventbridge_shape() -> None:
    built = instance_state_change("i-1234567890abcdef0", "terminated", "us-east-1")
    envelope, ec2 = sample("eventBridgeScheduledEvent.json"), sample("ec2InstanceStateChangeEvent.json")
    assert shape_mismatches({**built, "detail": {}}, envelope) == []
    assert shape_mismatches(built, {"version": envelope["version"], **ec2}) == []
    assert built["detail"].keys() == ec2["detail"].keys()
    assert (built["source"], built["detail-type"]) == (ec2["source"], ec2["detail-type"])
    assert built["resources"][0].rsplit("/", 1)[0] == ec2["resources"][0].rsplit("/", 1)[0].replace(
        ec2["account"], built["account"])


def test_scheduled_events_have_the_eventbridge_shape() -> None:
    built = scheduled_event("sweeper", "us-east-1")
    expected = sample("eventBridgeScheduledEvent.json")
    assert shape_mismatches(built, expected) == []
    assert {k: built[k] for k in ("version", "source", "detail-type", "detail")} == {
        k: expected[k] for k in ("version", "source", "detail-type", "detail")}
    for event in (built, expected):
        datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ")
