"""Shared fixtures: fake credentials, the handlers' environment, and a provisioned stack in moto.

The environment is set before any handler module is imported, because handlers read their config and create their
boto3 clients at import time, as they do in a Lambda container.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
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

from moto import mock_aws
from moto.server import ThreadedMotoServer

from components.settings import StackSettings
from local.provision import LocalStack, provision

TEST_SETTINGS = StackSettings(max_file_mb=1, max_text_length=200, job_timeout_minutes=5)
SITE_ORIGIN = "http://127.0.0.1:8000"

# Names the in-process handlers are configured with; `provision` derives the same from stack "test".
_names = LocalStack(
    stack="test", bucket="filepipe-test-data", table="filepipe-test-jobs", stream_arn="", launch_template_id="",
    subnet_ids=("subnet-unset",), security_group_id="", settings=TEST_SETTINGS,
)
os.environ.update(_names.api_environment())
os.environ.update(_names.launcher_environment())


class ClientCache:
    """A boto3 session whose clients are made once per (service, endpoint) for the whole test run.

    Creating a client loads its service model, which costs more than most moto calls; clients made outside
    `mock_aws` still reach moto while a mock is active, because moto hooks botocore's event system globally.
    """

    region_name = "us-east-1"
    _session = boto3.Session(region_name=region_name)
    _clients: dict[tuple[str, str | None], Any] = {}

    def __init__(self, endpoint_url: str | None = None) -> None:
        self.endpoint_url = endpoint_url

    def client(self, service: str) -> Any:
        key = (service, self.endpoint_url)
        if key not in self._clients:
            self._clients[key] = self._session.client(service, endpoint_url=self.endpoint_url)
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


@pytest.fixture
def aws() -> Iterator[Aws]:
    """moto in-process with the test stack provisioned."""
    with mock_aws():
        session = ClientCache()
        stack = provision(session, TEST_SETTINGS, stack="test", site_origin=SITE_ORIGIN)
        assert stack.bucket == _names.bucket and stack.table == _names.table
        yield Aws(stack=stack, session=session)


@pytest.fixture
def moto_server() -> Iterator[str]:
    """A moto server over HTTP on a free loopback port; yields its endpoint URL.

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


@pytest.fixture
def aws_server(moto_server: str) -> Aws:
    """The test stack provisioned in a moto server; clients reach it over HTTP."""
    session = ClientCache(moto_server)
    stack = provision(session, TEST_SETTINGS, stack="test", site_origin=SITE_ORIGIN)
    return Aws(stack=stack, session=session)
