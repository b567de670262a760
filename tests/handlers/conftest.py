"""HTTP API payload 2.0 events for the handlers, and views of what the stack holds after a request."""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import boto3
import pytest

from handlers import jobmodel
from handlers.config import ApiConfig
from handlers.routes import ROUTES
from handlers.services import ApiServices
from tests.conftest import Aws
from tests.records import active_jobs, job_in_state
from worker.userdata import WORKER_SCRIPT_KEY

JSON = {"content-type": "application/json"}
USER = "5f0c7e1a-user-0000-0000-000000000001"
"""The signed-in caller of every event unless a test says otherwise (a Cognito `sub`)."""
OTHER_USER = "5f0c7e1a-user-0000-0000-000000000002"


def api_event(
    route_key: str,
    body: Any = None,
    *,
    raw_body: str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    path_parameters: Mapping[str, str] | None = None,
    base64_body: bool = False,
    user: str | None = USER,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event as the Lambda receives it.

    `body` is JSON-encoded; `raw_body` is sent as given (for malformed bodies); `base64_body` encodes the body the way
    API Gateway does for binary payloads; `user` is the `sub` the JWT authorizer verified (None: no authorizer).
    Headers default to `content-type: application/json` when there is a body.
    """
    method, path = route_key.split(" ", 1)
    raw_path = path
    for name, value in (path_parameters or {}).items():
        raw_path = raw_path.replace("{" + name + "}", value)
    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    if headers is None:
        headers = dict(JSON) if raw_body is not None else {}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": {"host": "api.example.test", "user-agent": "pytest", **headers},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "api",
            "domainName": "api.example.test",
            "http": {
                "method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": "request-id",
            "routeKey": route_key,
            "stage": "$default",
            "time": "01/Jan/2030:00:00:00 +0000",
            "timeEpoch": 1893456000000,
        },
        "isBase64Encoded": base64_body,
    }
    if user is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": {"sub": user, "token_use": "access"},
                                                         "scopes": None}}
    if path_parameters is not None:
        event["pathParameters"] = dict(path_parameters)
    if raw_body is not None:
        data = raw_body.encode("utf-8") if isinstance(raw_body, str) else raw_body
        event["body"] = base64.b64encode(data).decode("ascii") if base64_body else data.decode("utf-8")
    return event


def factory_s3_in(region: str) -> Any:
    """The S3 client the handlers' service factory builds, in `region` (for what presigned URLs look like on AWS)."""
    return ApiServices.create(
        ApiConfig.from_env(), client=lambda service, **kw: boto3.client(service, region_name=region, **kw)
    ).s3


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def error_code(self) -> str:
        """The contract's error code, after checking the error has exactly the contract's shape."""
        assert set(self.body) == {"error"}, self.body
        error = self.body["error"]
        assert set(error) == {"code", "message"}, error
        assert isinstance(error["message"], str) and error["message"], error
        return error["code"]


Handler = Callable[[dict[str, Any], object], dict[str, Any]]


def entry_point(route_key: str) -> Handler:
    """The Lambda entry point (`handlers.<function>.handler`) that the route table gives `route_key`."""
    (function,) = {route.function for route in ROUTES if route.key == route_key}
    return cast(Handler, importlib.import_module(f"handlers.{function}").handler)


def call(handler: Handler, event: dict[str, Any]) -> Reply:
    """Invoke a handler as Lambda does and check the response is a JSON payload-2.0 response (or a 204 with no
    body at all)."""
    response = handler(event, None)
    assert set(response) == {"statusCode", "headers", "body"}, response
    if response["statusCode"] == 204:
        assert response["body"] == "" and "content-type" not in response["headers"], response
        return Reply(204, None, response["headers"])
    assert response["headers"]["content-type"] == "application/json"
    return Reply(response["statusCode"], json.loads(response["body"]), response["headers"])


@dataclass
class Stack:
    """The provisioned test stack, seen through the questions the tests ask about it."""

    aws: Aws

    def client(self, service: str) -> Any:
        return self.aws.client(service)

    @property
    def bucket(self) -> str:
        return self.aws.stack.bucket

    @property
    def table(self) -> str:
        return self.aws.stack.table

    def put_input(self, key: str, body: bytes = b"hello", owner: str = USER) -> str:
        """An upload as the presigned POST stores it: with its owner's metadata."""
        self.client("s3").put_object(Bucket=self.bucket, Key=key, Body=body, Metadata={"owner": owner})
        return key

    def input_keys(self) -> set[str]:
        listing = self.client("s3").list_objects_v2(Bucket=self.bucket, Prefix=jobmodel.INPUT_PREFIX)
        return {obj["Key"] for obj in listing.get("Contents", [])}

    def object_keys(self) -> set[str]:
        """Every object in the data bucket but the worker script."""
        listing = self.client("s3").list_objects_v2(Bucket=self.bucket)
        return {obj["Key"] for obj in listing.get("Contents", [])} - {WORKER_SCRIPT_KEY}

    def items(self) -> list[dict[str, str]]:
        """Every job item (not the per-user counters or VM slots)."""
        scan = self.client("dynamodb").scan(TableName=self.table, ConsistentRead=True)
        return [jobmodel.from_dynamodb(item) for item in scan["Items"] if jobmodel.is_id(item["id"]["S"])]

    def active_jobs(self, user: str = USER) -> int:
        return active_jobs(self.client("dynamodb"), self.table, user)

    def raw_item(self, job_id: str) -> dict[str, Any] | None:
        ddb = self.client("dynamodb")
        return ddb.get_item(TableName=self.table, Key={"id": {"S": job_id}}, ConsistentRead=True).get("Item")

    def save_job(self, status: jobmodel.Status = jobmodel.Status.PENDING, owner: str = USER, **attrs: str) -> str:
        """Put a job item as the handlers and worker would have left it (`attrs` added or overridden); its id."""
        job_id = jobmodel.new_id()
        item = job_in_state(job_id, "hi", f"{self.bucket}/inputs/{job_id}/a.txt", owner, status)
        self.put_item(**{**item, **attrs})
        return job_id

    def put_item(self, **attrs: str) -> None:
        self.client("dynamodb").put_item(
            TableName=self.table, Item={name: {"S": value} for name, value in attrs.items()}
        )

    def assert_nothing_written(self, *, inputs: set[str] | frozenset[str] = frozenset()) -> None:
        """No job item exists, no user has a job counted, and inputs/ holds exactly what the test itself put there."""
        assert self.items() == []
        assert self.active_jobs(USER) == 0 and self.active_jobs(OTHER_USER) == 0
        assert self.input_keys() == set(inputs)


@pytest.fixture
def stack(aws: Aws) -> Stack:
    return Stack(aws)


def upload_key(name: str = "notes.txt") -> str:
    """A key the upload handler could have issued."""
    return f"{jobmodel.INPUT_PREFIX}{jobmodel.new_id()}/{name}"
