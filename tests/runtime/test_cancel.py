"""The launcher and cancelled jobs against moto: a cancelled job is never started, a cancelled job's VM is terminated
wherever in its start the cancel lands, and its owner's quota is given back once."""

from __future__ import annotations

from typing import Any

import pytest

from handlers import capacity, dispatch, jobmodel, launcher, quota, release
from handlers.jobmodel import Actor, Status
from local.events import instance_state_change
from local.streams import matches
from stackspec.triggers import LAUNCHER_EVENT_FILTERS
from tests.conftest import Aws
from tests.records import active_jobs
from tests.runtime.jobs import get_item, held_slots
from tests.streams import lambda_records

OWNER = "cancelling-user"


def new_job(aws: Aws) -> str:
    """A job created as the API creates one, from an upload: PENDING, counted against its owner."""
    job_id = jobmodel.new_id()
    aws.client("s3").put_object(Bucket=aws.stack.bucket, Key=f"inputs/{job_id}/a.txt", Body=b"x")  # its upload
    item = jobmodel.new_job(job_id, "t", f"{aws.stack.bucket}/inputs/{job_id}/a.txt", OWNER)
    quota.create_job(aws.client("dynamodb"), aws.stack.table, item, 50)
    return job_id


def cancel(aws: Aws, job_id: str) -> dict[str, str] | None:
    """The API's cancel: one conditional write by the user."""
    return jobmodel.transition(aws.client("dynamodb"), aws.stack.table, job_id, Status.CANCELLED,
                               expected=[Status.PENDING, Status.QUEUED, Status.LAUNCHING, Status.RUNNING],
                               by=Actor.USER, owner=OWNER)


def stream(aws: Aws) -> list[dict[str, Any]]:
    """The records the launcher's event source mapping would deliver (its filters applied)."""
    records = lambda_records(aws.client("dynamodbstreams"), aws.stack.stream_arn)
    return [r for r in records if any(matches(pattern, r) for pattern in LAUNCHER_EVENT_FILTERS)]


def deliver_new(aws: Aws, seen: list[dict[str, Any]], ec2: Any = None) -> list[dict[str, Any]]:
    """Deliver the records not delivered yet (`seen` grows), as the stream poller does."""
    batch = [r for r in stream(aws) if r["eventID"] not in {s["eventID"] for s in seen}]
    seen.extend(batch)
    if batch:
        assert launcher.handle_batch(aws.launcher_services(ec2), {"Records": batch}) == {"batchItemFailures": []}
    return batch


def state(aws: Aws, instance_id: str) -> str:
    described = aws.client("ec2").describe_instances(InstanceIds=[instance_id])
    return str(described["Reservations"][0]["Instances"][0]["State"]["Name"])


def all_instances(aws: Aws) -> list[dict[str, Any]]:
    return [i for r in aws.client("ec2").describe_instances()["Reservations"] for i in r["Instances"]]


def slots(aws: Aws) -> dict[int, str]:
    return held_slots(aws.client("dynamodb"), aws.stack.table, aws.stack.launcher_config().max_concurrent_vms)


def terminated_event(aws: Aws, instance_id: str) -> dict[str, Any]:
    """EC2's state-change event reaching the release function, as the EventBridge rule delivers it."""
    return release.handle(instance_state_change(instance_id, "terminated", "us-east-1"), aws.launcher_services())


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch.time, "sleep", lambda seconds: None)


def test_a_cancelled_running_jobs_record_terminates_its_vm_and_frees_the_quota_once(aws: Aws) -> None:
    """The CANCELLED record passes the launcher's finished-job filter (FINAL_STATES is derived) and carries the
    instance id: the VM is terminated, the owner's place given back; the record delivered again changes nothing."""
    ddb, seen = aws.client("dynamodb"), []
    job_id = new_job(aws)
    deliver_new(aws, seen)
    instance_id = (get_item(ddb, aws.stack, job_id) or {})["instance_id"]
    jobmodel.transition(ddb, aws.stack.table, job_id, Status.RUNNING, expected=[Status.LAUNCHING], by=Actor.WORKER)
    assert cancel(aws, job_id) is not None

    batch = deliver_new(aws, seen)

    assert [r["dynamodb"]["NewImage"]["status"]["S"] for r in batch] == ["CANCELLED"]
    assert state(aws, instance_id) in {"shutting-down", "terminated"}
    assert active_jobs(ddb, aws.stack.table, OWNER) == 0
    assert "holds_quota" not in (get_item(ddb, aws.stack, job_id) or {})
    assert launcher.handle_batch(aws.launcher_services(), {"Records": batch}) == {"batchItemFailures": []}
    assert active_jobs(ddb, aws.stack.table, OWNER) == 0, "a redelivered record decrements nothing"
    assert list(slots(aws).values()) == [job_id], "the slot follows the VM until its termination event"
    assert terminated_event(aws, instance_id)["released"] is not None
    assert slots(aws) == {}


def test_cancelled_pending_and_queued_jobs_are_never_started(aws: Aws) -> None:
    """The launcher's claims are conditional (PENDING -> QUEUED, QUEUED -> LAUNCHING): a cancelled job fails both."""
    cap = aws.stack.launcher_config().max_concurrent_vms
    ddb, seen = aws.client("dynamodb"), []
    running = [new_job(aws) for _ in range(cap)]
    queued = new_job(aws)
    deliver_new(aws, seen)
    pending = new_job(aws)
    assert (get_item(ddb, aws.stack, queued) or {})["status"] == Status.QUEUED
    assert cancel(aws, queued) is not None and cancel(aws, pending) is not None

    deliver_new(aws, seen)
    first = (get_item(ddb, aws.stack, running[0]) or {})["instance_id"]
    aws.client("ec2").terminate_instances(InstanceIds=[first])
    terminated_event(aws, first)  # a slot frees: the queue moves

    assert {tag["Value"] for i in all_instances(aws) for tag in i["Tags"] if tag["Key"] == "JobId"} == set(running)
    assert [(get_item(ddb, aws.stack, j) or {})["status"] for j in (queued, pending)] == ["CANCELLED"] * 2
    assert active_jobs(ddb, aws.stack.table, OWNER) == cap


def test_a_cancel_between_the_claim_and_run_instances_starts_no_vm(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job is claimed (LAUNCHING) and a slot taken when its owner cancels: recording the slot returns the job,
    which is no longer LAUNCHING, so RunInstances is never called and the slot is given back."""
    job_id = new_job(aws)
    take = capacity.acquire

    def cancelled_while_taking(*args: Any) -> int | None:
        slot = take(*args)
        assert cancel(aws, job_id) is not None
        return slot

    monkeypatch.setattr(capacity, "acquire", cancelled_while_taking)
    deliver_new(aws, [])

    assert all_instances(aws) == []
    assert slots(aws) == {}
    assert (get_item(aws.client("dynamodb"), aws.stack, job_id) or {})["status"] == Status.CANCELLED


class CancellingEc2:
    """An EC2 client whose RunInstances starts the VM and then lets `act(job_id)` run (a cancel or a delete landing
    while the launcher waits for RunInstances' answer)."""

    def __init__(self, real: Any, act: Any) -> None:
        self.real, self.act = real, act

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def run_instances(self, **kwargs: Any) -> Any:
        started = self.real.run_instances(**kwargs)
        self.act(kwargs["ClientToken"])
        return started


def test_a_cancel_while_the_vm_starts_terminates_it_at_once(aws: Aws) -> None:
    """The cancel's record has no instance id yet (it came first), so the launcher's own write of the instance id,
    which returns the job, is what finds it CANCELLED: the VM is terminated at once, and its slot given back by its
    termination event as for any VM."""
    ddb, seen = aws.client("dynamodb"), []
    job_id = new_job(aws)

    assert deliver_new(aws, seen, CancellingEc2(aws.client("ec2"), lambda j: cancel(aws, j)))

    (instance,) = all_instances(aws)
    assert state(aws, instance["InstanceId"]) in {"shutting-down", "terminated"}
    item = get_item(ddb, aws.stack, job_id) or {}
    assert item["status"] == Status.CANCELLED and item["instance_id"] == instance["InstanceId"]
    deliver_new(aws, seen)  # the CANCELLED records: the owner's place is given back, once
    assert active_jobs(ddb, aws.stack.table, OWNER) == 0
    assert list(slots(aws).values()) == [job_id]
    assert terminated_event(aws, instance["InstanceId"])["released"] is not None
    assert slots(aws) == {}


def test_a_job_deleted_while_its_vm_starts_gets_its_vm_terminated(aws: Aws) -> None:
    """Defence in depth: had the job's item gone while RunInstances ran, recording the instance id finds no job and
    the VM is terminated instead of running for nothing."""
    job_id = new_job(aws)

    def delete(j: str) -> None:
        aws.client("dynamodb").delete_item(TableName=aws.stack.table, Key={"id": {"S": j}})

    deliver_new(aws, [], CancellingEc2(aws.client("ec2"), delete))

    (instance,) = all_instances(aws)
    assert state(aws, instance["InstanceId"]) in {"shutting-down", "terminated"}
    assert get_item(aws.client("dynamodb"), aws.stack, job_id) is None, "the launcher recreated no item"


def test_terminating_a_vm_that_is_long_gone_is_not_an_error(aws: Aws) -> None:
    """A late redelivery of a CANCELLED record may name a VM EC2 no longer knows: nothing to do, no retry."""
    dispatch.terminate_vm(aws.launcher_services(), jobmodel.new_id(), "i-0123456789abcdef0", "test")
