"""What a handler works with: its config and its boto3 clients, built once per warm container on first use.

Importing a handler module builds nothing (the idea of Flask's `create_app`): the Lambda entry points call the cached
factories below on their first invocation, while tests and local mode build `ApiServices` / `LauncherServices`
themselves with explicit config and clients, so two stacks can run in one process.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from handlers.config import ApiConfig, LauncherConfig

ClientFactory = Callable[..., Any]
"""`boto3.client`-like: `(service_name, config=...) -> client`."""

PRESIGNING = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
"""SigV4 presigning (boto3 still presigns with SigV2 in older regions, which buckets made after June 2020 refuse),
virtual-hosted: on the bucket's regional host, where the global one answers 307 for up to a day after the bucket is
created, and on the global `<bucket>.s3.amazonaws.com` in us-east-1, which that region serves itself
(`Storage.upload_origins` lists both for the CSP). An IP endpoint, as in local mode, stays path-style."""


BACKOFF_CAP_SECONDS = 20
"""botocore's standard retry mode waits at most `min(base * 2**i, 20)` s before retry `i + 1` (`base` is 1 s for
throttling errors, less for others)..."""
RETRY_AFTER_EXTRA_SECONDS = 5
"""...plus up to 5 s more when the service asks for it (`x-amz-retry-after`)."""
HEADROOM_SECONDS = 3
"""A function's own time on top of its AWS calls: a cold start's imports, and the code between the calls."""


@dataclass(frozen=True)
class CallLimits:
    """How long one AWS call may take: a connect and a read timeout per attempt, and a bounded number of attempts in
    botocore's standard retry mode (the SDK defaults, 60 s each and legacy retries, let one stalled call eat a whole
    function timeout)."""

    connect_seconds: int
    read_seconds: int
    attempts: int

    def config(self) -> Config:
        return Config(connect_timeout=self.connect_seconds, read_timeout=self.read_seconds,
                      retries={"mode": "standard", "total_max_attempts": self.attempts})

    def worst_call_seconds(self) -> float:
        """The longest one call can take: every attempt times out, every retry waits its longest backoff."""
        backoff = sum(min(2**i, BACKOFF_CAP_SECONDS) + RETRY_AFTER_EXTRA_SECONDS for i in range(self.attempts - 1))
        return self.attempts * (self.connect_seconds + self.read_seconds) + backoff


API_CALLS = CallLimits(connect_seconds=1, read_seconds=2, attempts=2)
"""The API functions' S3 and DynamoDB calls (milliseconds when healthy): tight, so the slowest request path still
answers within API Gateway's 30 s integration limit."""
MANAGE_CALLS = CallLimits(connect_seconds=1, read_seconds=2, attempts=1)
"""The job management function's calls (cancel, retry, delete): as tight as `API_CALLS` per attempt but with no SDK
retry, because its slowest paths make up to eight calls one after another and must still end within API
Gateway's 30 s. Each of its operations is idempotent, so a client repeats one that failed on a throttle or a
timeout (500)."""
DISPATCH_CALLS = CallLimits(connect_seconds=2, read_seconds=5, attempts=3)
"""The launcher's, release's and sweeper's calls (RunInstances answers in a second or two)."""
DISPATCH_CONFIG = DISPATCH_CALLS.config()


@functools.cache
def api_client_configs(calls: CallLimits) -> tuple[Config, Config]:
    """(DynamoDB, S3) client configs of an API function whose calls are bounded by `calls`; S3's also presigns."""
    config = calls.config()
    return config, config.merge(PRESIGNING)


API_CONFIG, API_S3_CONFIG = api_client_configs(API_CALLS)


def function_timeout_seconds(limits: CallLimits, slow_calls: int, extra_seconds: float = 0.0) -> int:
    """A Lambda timeout that survives `slow_calls` calls each at its worst (`CallLimits.worst_call_seconds`), plus
    `extra_seconds` of the function's own waiting and `HEADROOM_SECONDS`; at least one call's worth."""
    return math.ceil(max(slow_calls, 1) * limits.worst_call_seconds() + extra_seconds + HEADROOM_SECONDS)


def seconds_left(context: object) -> float | None:
    """What the Lambda context says remains of the invocation; None outside Lambda (tests, local mode)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000 if callable(remaining) else None


def deadline_of(context: object) -> float | None:
    """The invocation's end on `time.monotonic()`'s clock, from the Lambda context; None outside Lambda."""
    left = seconds_left(context)
    return None if left is None else time.monotonic() + left


@dataclass(frozen=True)
class ApiServices:
    """Config and clients of the API handlers (upload, jobs, manage)."""

    config: ApiConfig
    ddb: Any
    s3: Any

    @classmethod
    def create(
        cls, config: ApiConfig, client: ClientFactory = boto3.client, calls: CallLimits = API_CALLS
    ) -> ApiServices:
        """Clients whose every call is bounded by `calls` (the function's router says which)."""
        ddb_config, s3_config = api_client_configs(calls)
        return cls(config=config, ddb=client("dynamodb", config=ddb_config), s3=client("s3", config=s3_config))


@dataclass(frozen=True)
class LauncherServices:
    """Config and clients of the launcher and the sweeper."""

    config: LauncherConfig
    ec2: Any
    ddb: Any
    s3: Any
    """Claims each new job's upload (`handlers.launcher.claim_upload`)."""

    @classmethod
    def create(cls, config: LauncherConfig, client: ClientFactory = boto3.client) -> LauncherServices:
        return cls(config=config, ec2=client("ec2", config=DISPATCH_CONFIG),
                   ddb=client("dynamodb", config=DISPATCH_CONFIG), s3=client("s3", config=DISPATCH_CONFIG))


@functools.cache
def api_services(calls: CallLimits = API_CALLS) -> ApiServices:
    """The Lambda's services, from its environment; a missing variable fails the first invocation, naming it."""
    return ApiServices.create(ApiConfig.from_env(), calls=calls)


@functools.cache
def launcher_services() -> LauncherServices:
    return LauncherServices.create(LauncherConfig.from_env())
