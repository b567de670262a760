"""The launcher against moto: one VM per job whatever the deliveries, and every launch error ends somewhere sane."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from handlers import launcher
from handlers.config import LauncherConfig
from handlers.jobmodel import JOB_ID_TAG, Status
from tests.conftest import Aws
from tests.runtime.jobs import get_item, put_job
from tests.streams import lambda_records


def config_of(aws: Aws) -> LauncherConfig:
    return LauncherConfig.from_env(aws.stack.launcher_environment())


def new_pending_job(aws: Aws, text: str = "t") -> str:
    job_id, _ = put_job(aws.client("s3"), aws.client("dynamodb"), aws.stack, content=b"x", text=text,
                        status=Status.PENDING)
    return job_id


def records(aws: Aws) -> list[dict[str, Any]]:
    return lambda_records(aws.client("dynamodbstreams"), aws.stack.stream_arn)


def instances(aws: Aws) -> list[dict[str, Any]]:
    reservations = aws.client("ec2").describe_instances()["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def tag(instance: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in instance.get("Tags", []) if t["Key"] == key), None)


def handle(aws: Aws, batch: list[dict[str, Any]], ec2: Any = None) -> dict[str, Any]:
    return launcher.handle_batch(ec2 or aws.client("ec2"), aws.client("dynamodb"), config_of(aws),
                                 {"Records": batch})


def test_each_insert_starts_one_tagged_vm_from_the_template(aws: Aws) -> None:
    jobs = {new_pending_job(aws, f"text {i}") for i in range(3)}

    result = handle(aws, records(aws))

    assert result == {"batchItemFailures": []}
    started = instances(aws)
    assert {tag(i, JOB_ID_TAG) for i in started} == jobs, "every record of the batch must be handled"
    for instance in started:
        assert tag(instance, "aws:ec2launchtemplate:id") == aws.stack.launch_template_id
        assert instance["SubnetId"] in aws.stack.subnet_ids
        item = get_item(aws.client("dynamodb"), aws.stack, tag(instance, JOB_ID_TAG) or "")
        assert item is not None
        assert item["status"] == Status.LAUNCHING and item["instance_id"] == instance["InstanceId"]


def test_duplicate_deliveries_start_exactly_one_vm(aws: Aws) -> None:
    new_pending_job(aws)
    batch = records(aws)

    handle(aws, batch + batch)
    handle(aws, batch)

    assert len(instances(aws)) == 1


def test_records_other_than_insert_are_skipped(aws: Aws) -> None:
    job_id = new_pending_job(aws)
    modify = [{**r, "eventName": "MODIFY"} for r in records(aws)]
    remove = [{**r, "eventName": "REMOVE"} for r in records(aws)]

    assert handle(aws, modify + remove) == {"batchItemFailures": []}

    assert instances(aws) == []
    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.PENDING


def test_a_record_without_a_job_id_does_not_block_the_batch(aws: Aws) -> None:
    new_pending_job(aws)
    good = records(aws)
    broken = {**good[0], "dynamodb": {**good[0]["dynamodb"], "Keys": {"id": {"S": "../../etc"}}}}

    assert handle(aws, [broken, *good]) == {"batchItemFailures": []}
    assert len(instances(aws)) == 1


class FlakyEc2:
    """An EC2 client whose RunInstances fails with `code` for the first `failures` calls."""

    def __init__(self, real: Any, code: str, failures: int, message: str = "We currently do not have capacity"):
        self.real, self.code, self.failures, self.message, self.calls = real, code, failures, message, 0

    def run_instances(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise ClientError({"Error": {"Code": self.code, "Message": self.message}},
                              "RunInstances")
        return self.real.run_instances(**kwargs)


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher.time, "sleep", lambda seconds: None)


def test_a_transient_error_is_retried_in_place(aws: Aws) -> None:
    job_id = new_pending_job(aws)
    ec2 = FlakyEc2(aws.client("ec2"), "InsufficientInstanceCapacity", failures=launcher.LAUNCH_ATTEMPTS - 1)

    assert handle(aws, records(aws), ec2) == {"batchItemFailures": []}

    assert ec2.calls == launcher.LAUNCH_ATTEMPTS
    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.LAUNCHING and item["instance_id"].startswith("i-")


def test_a_lasting_transient_error_queues_the_job_and_hands_the_record_back(aws: Aws) -> None:
    job_id = new_pending_job(aws)
    batch = records(aws)
    ec2 = FlakyEc2(aws.client("ec2"), "RequestLimitExceeded", failures=launcher.LAUNCH_ATTEMPTS)

    result = handle(aws, batch, ec2)

    assert result == {"batchItemFailures": [{"itemIdentifier": batch[0]["dynamodb"]["SequenceNumber"]}]}
    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.QUEUED
    assert instances(aws) == []

    assert handle(aws, batch) == {"batchItemFailures": []}, "the redelivered record must launch the queued job"
    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.LAUNCHING
    assert len(instances(aws)) == 1


@pytest.mark.parametrize("code", ["UnauthorizedOperation", "InvalidLaunchTemplateId.NotFound", "InvalidParameterValue"])
def test_a_permanent_launch_error_fails_the_job_with_the_aws_message(aws: Aws, code: str) -> None:
    """moto cannot be made to refuse RunInstances this way, so the client raises what AWS would."""
    job_id = new_pending_job(aws)
    ec2 = FlakyEc2(aws.client("ec2"), code, failures=99, message="You are not authorized to do this.")

    result = handle(aws, records(aws), ec2)

    assert result == {"batchItemFailures": []}, "an error that will not heal must not be retried"
    assert ec2.calls == 1
    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.FAILED
    assert item["error"] == f"The VM could not be started: You are not authorized to do this. ({code})."
    assert item["finished_at"]


def test_backoff_grows_and_is_jittered(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    monkeypatch.setattr(launcher.random, "uniform", lambda low, high: high)
    error = ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "RunInstances")

    def always_throttled() -> str:
        raise error

    with pytest.raises(launcher.TransientLaunchError):
        launcher.run_with_retries(always_throttled, attempts=4, sleep=delays.append)
    assert delays == [launcher.BACKOFF_BASE_SECONDS * 2**n for n in range(3)]


def test_subnets_are_spread_and_stable() -> None:
    subnets = ("subnet-a", "subnet-b")
    chosen = {launcher.subnet_for(f"{i:021d}", subnets) for i in range(50)}
    assert chosen == set(subnets)
    assert launcher.subnet_for("abc", subnets) == launcher.subnet_for("abc", subnets)
