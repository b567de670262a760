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
from moto.server import ThreadedMotoServer

from handlers.services import ApiServices, LauncherServices, api_services, launcher_services
from local.provision import LocalStack, provision
from stackspec.settings import StackSettings

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


@pytest.fixture
def aws() -> Iterator[Aws]:
    """moto in-process with the test stack provisioned."""
    with mock_aws():
        session = ClientCache()
        stack = provision(session, TEST_SETTINGS, stack="test", site_origin=SITE_ORIGIN)
        assert stack.bucket == _names.bucket and stack.table == _names.table
        yield Aws(stack=stack, session=session)


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
