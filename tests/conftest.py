"""Shared fixtures: fake credentials, the handlers' environment, and a provisioned stack in moto.

The handlers' environment is what the Lambda entry points (`handlers.<module>.handler`) read on their first call, as
in a Lambda container; tests that build their own `ApiServices` / `LauncherServices` need none of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
import requests

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    # botocore derives account-based endpoints (<account>.streams-ddb...) from stream ARNs; moto in-process only
    # answers the classic hostnames.
    AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

from botocore.config import Config
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.server import ThreadedMotoServer

from handlers.jobmodel import table_definition
from handlers.services import ApiServices, LauncherServices, api_services, launcher_services
from local.provision import LocalStack, provision
from stackspec.settings import StackSettings
from tests.selection import (  # noqa: F401  (hooks: pytest finds them in this module)
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_ignore_collect,
    pytest_xdist_make_scheduler,
)
from worker.userdata import WORKER_SCRIPT_KEY

TEST_SETTINGS = StackSettings(max_file_mb=1, max_text_length=200, job_timeout_minutes=5)
SITE_ORIGIN = "http://127.0.0.1:8000"

# Names the in-process handlers are configured with; `provision` derives the same from stack "test".
_names = LocalStack(
    stack="test", bucket="filepipe-test-data", table="filepipe-test-jobs", stream_arn="", launch_template_id="",
    subnet_ids=("subnet-unset",), security_group_id="", settings=TEST_SETTINGS,
)
os.environ.update(_names.api_config().to_env())
os.environ.update(_names.launcher_config().to_env())


class ClientCache:
    """A boto3 session whose clients are made once per (service, endpoint) for the whole test run.

    Creating a client loads its service model, which costs more than most moto calls; clients made outside
    `mock_aws` still reach moto while a mock is active, because moto hooks botocore's event system globally.
    """

    region_name = "us-east-1"
    _session = boto3.Session(region_name=region_name)
    _clients: dict[tuple[str, str | None, int], Any] = {}

    def __init__(self, endpoint_url: str | None = None) -> None:
        self.endpoint_url = endpoint_url

    def client(self, service: str, config: Config | None = None) -> Any:
        key = (service, self.endpoint_url, id(config))
        if key not in self._clients:
            self._clients[key] = self._session.client(service, endpoint_url=self.endpoint_url, config=config)
        return self._clients[key]


@dataclass
class Aws:
    """A provisioned stack and clients bound to the same endpoint."""

    stack: LocalStack
    session: ClientCache

    @property
    def endpoint_url(self) -> str | None:
        return self.session.endpoint_url

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def api_services(self) -> ApiServices:
        """What the upload and jobs handlers work with, bound to this stack and endpoint."""
        return ApiServices.create(self.stack.api_config(), client=self.session.client)

    def launcher_services(self, ec2: Any = None) -> LauncherServices:
        """What the launcher and the sweeper work with; `ec2` replaces the EC2 client (fault injection)."""
        services = LauncherServices.create(self.stack.launcher_config(), client=self.session.client)
        return services if ec2 is None else replace(services, ec2=ec2)


def provisioned(endpoint_url: str | None = None) -> Aws:
    """The test stack provisioned at `endpoint_url` (None: moto in-process, which must be active)."""
    session = ClientCache(endpoint_url)
    stack = provision(session, TEST_SETTINGS, stack="test", site_origin=SITE_ORIGIN)
    assert stack.bucket == _names.bucket and stack.table == _names.table
    return Aws(stack=stack, session=session)


def wipe(aws: Aws) -> Aws:
    """The stack as `provision` left it, for the next test: no object but the worker script, a new empty jobs table
    (so its stream holds no record of an earlier test) and no instance, not even a terminated one.

    Provisioning a stack for each test costs about half a second (moto's EC2 backend loads its AMIs, the user
    pool makes an RSA key); this costs milliseconds. No test changes the stack's other resources (network, launch
    template, user pool), so they are kept.
    """
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    bucket, table = aws.stack.bucket, aws.stack.table
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if obj["Key"] != WORKER_SCRIPT_KEY:
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
    ddb.delete_table(TableName=table)
    stream_arn = ddb.create_table(**table_definition(table))["TableDescription"]["LatestStreamArn"]
    _forget_instances(aws.session.region_name)
    aws.stack = replace(aws.stack, stream_arn=stream_arn)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1 and ddb.scan(TableName=table)["Count"] == 0
    assert aws.client("ec2").describe_instances()["Reservations"] == []
    return aws


def _forget_instances(region: str) -> None:
    """Terminate every instance and drop it from moto's EC2 backend (EC2 lists terminated instances for an hour,
    moto for ever; no API removes them). moto in-process and the threaded server share these backends."""
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
    instances = [i for reservation in backend.reservations.values() for i in reservation.instances]
    alive = [i.id for i in instances if i.state != "terminated"]
    if alive:
        backend.terminate_instances(alive)
    for instance in instances:
        backend.tags.pop(instance.id, None)
    backend.reservations.clear()


@pytest.fixture(scope="module")
def _in_process() -> Iterator[Aws]:
    """moto in-process with the test stack provisioned, once per module (`aws` wipes it before each test)."""
    with mock_aws():
        yield provisioned()


@pytest.fixture
def aws(_in_process: Aws) -> Aws:
    """moto in-process with the test stack provisioned, holding nothing an earlier test left."""
    return wipe(_in_process)


@pytest.fixture
def lambda_environment(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """The Lambda entry points see `aws`'s stack in their environment, and build their services anew from it."""
    for name, value in {**aws.stack.api_config().to_env(), **aws.stack.launcher_config().to_env()}.items():
        monkeypatch.setenv(name, value)
    api_services.cache_clear()
    launcher_services.cache_clear()
    yield aws
    api_services.cache_clear()
    launcher_services.cache_clear()


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """A moto server over HTTP on a free loopback port, one per module; yields its endpoint URL.

    The threaded server keeps its state in this process's moto backends, so it is reset before and after use.
    """
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
    try:
        yield url
    finally:
        requests.post(f"{url}/moto-api/reset", timeout=10)
        server.stop()


@pytest.fixture(scope="module")
def _served(moto_server: str) -> Aws:
    return provisioned(moto_server)


@pytest.fixture
def aws_server(_served: Aws) -> Aws:
    """The test stack provisioned in a moto server (one per module), holding nothing an earlier test left; clients
    reach it over HTTP."""
    return wipe(_served)
