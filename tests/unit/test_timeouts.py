"""AWS call limits and the Lambda timeouts derived from them."""

from __future__ import annotations

import pytest

from handlers import dispatch, launcher, sweeper
from handlers.routes import ROUTERS
from handlers.services import (
    API_CALLS,
    API_CONFIG,
    API_S3_CONFIG,
    DISPATCH_CALLS,
    DISPATCH_CONFIG,
    HEADROOM_SECONDS,
    MANAGE_CALLS,
    PRESIGNING,
    ApiServices,
    CallLimits,
    LauncherServices,
    function_timeout_seconds,
    seconds_left,
)
from tests.conftest import _names

API_GATEWAY_LIMIT_SECONDS = 30
"""An HTTP API integration's most: after it API Gateway answers 503 while the function runs on."""
LAMBDA_LIMIT_SECONDS = 900


def test_worst_call_is_every_attempt_timing_out_plus_the_longest_backoffs() -> None:
    """2 attempts of (1 + 2) s, and before the second the standard mode's longest wait: min(1 * 2**0, 20) + 5."""
    assert CallLimits(connect_seconds=1, read_seconds=2, attempts=2).worst_call_seconds() == 2 * 3 + (1 + 5)
    assert CallLimits(connect_seconds=2, read_seconds=5, attempts=1).worst_call_seconds() == 7
    assert CallLimits(1, 1, 7).worst_call_seconds() == 7 * 2 + sum(min(2**i, 20) + 5 for i in range(6))
    assert CallLimits(1, 1, 7).worst_call_seconds() - CallLimits(1, 1, 6).worst_call_seconds() == 2 + 20 + 5, (
        "the backoff is capped at 20 s"
    )


def test_a_function_timeout_covers_its_slow_calls_and_headroom() -> None:
    limits = CallLimits(connect_seconds=1, read_seconds=2, attempts=2)
    assert function_timeout_seconds(limits, 2) == 2 * 12 + HEADROOM_SECONDS
    assert function_timeout_seconds(limits, 1, extra_seconds=0.5) == 12 + 1 + HEADROOM_SECONDS
    assert function_timeout_seconds(limits, 0) == function_timeout_seconds(limits, 1), "at least one call"


def test_the_clients_carry_the_limits_in_the_standard_retry_mode() -> None:
    for config, limits in ((API_CONFIG, API_CALLS), (API_S3_CONFIG, API_CALLS), (DISPATCH_CONFIG, DISPATCH_CALLS)):
        assert (config.connect_timeout, config.read_timeout) == (limits.connect_seconds, limits.read_seconds)
        assert config.retries == {"mode": "standard", "total_max_attempts": limits.attempts}


def test_services_build_every_client_with_its_limits() -> None:
    """Regression: a client built without a config gets the SDK's 60 s timeouts and legacy retries."""
    built: list[tuple[str, object]] = []

    def client(service: str, config: object = None) -> str:
        built.append((service, config))
        return service

    ApiServices.create(_names.api_config(), client=client)
    LauncherServices.create(_names.launcher_config(), client=client)
    assert built == [("dynamodb", API_CONFIG), ("s3", API_S3_CONFIG), ("ec2", DISPATCH_CONFIG),
                     ("dynamodb", DISPATCH_CONFIG), ("s3", DISPATCH_CONFIG)]


@pytest.mark.parametrize("module", sorted(ROUTERS))
def test_api_functions_answer_before_api_gateway_gives_up(module: str) -> None:
    """The slowest request path, every call at its worst, still ends (with the SDK's error, a 500) inside API
    Gateway's limit: the client never sees a 503 while the function runs on."""
    router = ROUTERS[module]
    assert router.timeout_seconds == function_timeout_seconds(router.call_limits, router.aws_calls)
    assert router.aws_calls * router.call_limits.worst_call_seconds() < router.timeout_seconds
    assert router.timeout_seconds < API_GATEWAY_LIMIT_SECONDS


def test_the_manage_function_trades_sdk_retries_for_its_longer_paths() -> None:
    """Its eight calls in a row fit API Gateway's 30 s only with one attempt each (the others keep two)."""
    assert ROUTERS["manage"].call_limits == MANAGE_CALLS and MANAGE_CALLS.attempts == 1
    assert {ROUTERS[m].call_limits for m in ("upload", "jobs")} == {API_CALLS}
    built: list[tuple[str, object]] = []
    ApiServices.create(_names.api_config(), client=lambda service, config=None: built.append((service, config)),
                       calls=MANAGE_CALLS)
    ddb_config, s3_config = (config for _, config in built)
    assert (ddb_config.read_timeout, ddb_config.retries) == (2, {"mode": "standard", "total_max_attempts": 1})
    assert s3_config.retries == ddb_config.retries and s3_config.signature_version == PRESIGNING.signature_version


def test_dispatch_timeouts_leave_room_for_one_slowest_job_start() -> None:
    assert dispatch.JOB_START_SECONDS < launcher.TIMEOUT_SECONDS <= LAMBDA_LIMIT_SECONDS
    assert DISPATCH_CALLS.worst_call_seconds() <= launcher.TIMEOUT_SECONDS - dispatch.JOB_START_SECONDS, (
        "a slow call while handling the batch must still leave a job start's time"
    )
    assert dispatch.JOB_START_SECONDS < sweeper.TIMEOUT_SECONDS <= LAMBDA_LIMIT_SECONDS


class Context:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def test_the_remaining_time_comes_from_the_lambda_context() -> None:
    assert seconds_left(Context(1500)) == 1.5
    assert seconds_left(None) is None
