"""RunInstances failing: transient errors are retried in place, then the job waits in the queue for the next
dispatch; permanent errors end the job FAILED with AWS's message. Injected by wrapping the EC2 client the launcher
pipeline uses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from handlers import dispatch
from local.app import LocalPipeline
from tests.fakes import PERMANENT_MESSAGES, WAIT_MESSAGES, FlakyEc2
from tests.faults.harness import (
    assert_readable_sentence,
    get_job,
    held_slots,
    instances_per_job,
    sweep,
    wait_for_status,
)
from tests.local.harness import signed_in
from tests.records import wait_for_final
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

FlakyFactory = Callable[[list[str]], FlakyEc2]


@pytest.fixture
def flaky_ec2(pipeline: LocalPipeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlakyFactory]:
    """Install a FlakyEc2 as the pipeline's launcher client, with a fast backoff."""
    monkeypatch.setattr(dispatch, "BACKOFF_BASE_SECONDS", 0.01)

    def install(errors: list[str]) -> FlakyEc2:
        services = pipeline.launcher_services
        assert services is not None
        flaky = FlakyEc2(services.ec2, errors)
        monkeypatch.setattr(pipeline, "launcher_services", replace(services, ec2=flaky))
        return flaky

    yield install


def test_transient_errors_within_the_retries_still_launch(pipeline: LocalPipeline, flaky_ec2: FlakyFactory) -> None:
    retries = dispatch.LAUNCH_ATTEMPTS - 1
    flaky = flaky_ec2(["InsufficientInstanceCapacity", "RequestLimitExceeded"][:retries])
    job = signed_in(pipeline).submit("flaky.txt", b"flaky", "retried")

    final = wait_for_final(signed_in(pipeline), job["id"])

    assert final["status"] == "SUCCEEDED", final
    assert flaky.attempts(job["id"]) == [*flaky.planned_codes[:retries], None]
    assert instances_per_job(pipeline, [job["id"]]) == {job["id"]: 1}


@pytest.mark.parametrize("moved_by", ["the sweeper", "the next job"])
def test_transient_errors_beyond_the_retries_queue_the_job_until_the_next_dispatch(
    pipeline: LocalPipeline, flaky_ec2: FlakyFactory, moved_by: str
) -> None:
    flaky = flaky_ec2(["RequestLimitExceeded"] * dispatch.LAUNCH_ATTEMPTS)
    job = signed_in(pipeline).submit("later.txt", b"later", "queued again")

    wait_for(lambda: len(flaky.attempts(job["id"])) == dispatch.LAUNCH_ATTEMPTS, 20, "every in-place attempt")
    queued = wait_for_status(pipeline, job["id"], "QUEUED")
    assert "instance_id" not in queued and "error" not in queued
    assert held_slots(pipeline) == {}, "the slot of a launch that did not happen is given back"

    if moved_by == "the sweeper":
        assert sweep(pipeline, ec2=flaky).started == 1
        others: list[str] = []
    else:
        others = [signed_in(pipeline).submit("next.txt", b"next", "moves the queue")["id"]]

    for job_id in [job["id"], *others]:
        final = wait_for_final(signed_in(pipeline), job_id)
        assert final["status"] == "SUCCEEDED", final
    assert flaky.attempts(job["id"]) == ["RequestLimitExceeded"] * dispatch.LAUNCH_ATTEMPTS + [None]
    assert instances_per_job(pipeline, [job["id"], *others]) == dict.fromkeys([job["id"], *others], 1)


@pytest.mark.parametrize("code", sorted(PERMANENT_MESSAGES))
def test_a_permanent_error_fails_the_job_with_the_aws_message(
    pipeline: LocalPipeline, flaky_ec2: FlakyFactory, code: str
) -> None:
    flaky = flaky_ec2([code])
    job = signed_in(pipeline).submit("denied.txt", b"denied", "never runs")

    final = wait_for_final(signed_in(pipeline), job["id"])

    assert final["status"] == "FAILED", final
    assert PERMANENT_MESSAGES[code].rstrip(".") in final["error"] and code in final["error"]
    assert_readable_sentence(final["error"])
    assert flaky.attempts(job["id"]) == [code], "a permanent error is not retried"
    assert instances_per_job(pipeline, [job["id"]]) == {job["id"]: 0}
    assert held_slots(pipeline) == {}


@pytest.mark.parametrize("code", sorted(WAIT_MESSAGES))
def test_a_quota_refusal_waits_in_the_queue_saying_why_and_the_next_sweep_starts_the_job(
    pipeline: LocalPipeline, flaky_ec2: FlakyFactory, code: str
) -> None:
    """End to end: a vCPU quota in use (or an instance profile IAM has not shown EC2 yet) sends the job back to
    QUEUED at once, the API shows why, and the scheduled sweep's retry runs it to the end."""
    flaky = flaky_ec2([code])
    job = signed_in(pipeline).submit("quota.txt", b"quota", "waits for a VM")

    wait_for(lambda: flaky.attempts(job["id"]) == [code], 20, "the one refused attempt")
    wait_for_status(pipeline, job["id"], "QUEUED")
    queued = get_job(pipeline, job["id"])
    assert queued["status"] == "QUEUED" and f"({code})" in queued["queue_reason"], queued
    assert_readable_sentence(queued["queue_reason"])
    assert held_slots(pipeline) == {}

    assert sweep(pipeline, ec2=flaky).started == 1
    final = wait_for_final(signed_in(pipeline), job["id"])
    assert final["status"] == "SUCCEEDED", final
    assert flaky.attempts(job["id"]) == [code, None]
