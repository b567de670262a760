"""The sweeper against moto: overdue VMs terminated, stuck jobs failed with a reason, leaked slots freed, the queue
moved, and nothing done twice or to a finished job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from handlers import capacity, jobmodel, launcher, sweeper
from handlers.config import LauncherConfig
from handlers.jobmodel import STACK_TAG, Actor, Status
from tests.conftest import Aws
from tests.runtime.jobs import get_item, held_slots, put_job
from tests.streams import lambda_records


def config_of(aws: Aws) -> LauncherConfig:
    return aws.stack.launcher_config()


def launched_jobs(aws: Aws, count: int) -> list[str]:
    """`count` jobs taken through the launcher: queued, slotted, VM started."""
    jobs = [put_job(aws.client("s3"), aws.client("dynamodb"), aws.stack, content=b"x", text="t",
                    status=Status.PENDING)[0] for _ in range(count)]
    batch = lambda_records(aws.client("dynamodbstreams"), aws.stack.stream_arn)
    launcher.handle_batch(aws.launcher_services(), {"Records": batch})
    return jobs


def sweep(aws: Aws, after: timedelta = timedelta(0)) -> sweeper.SweepReport:
    return sweeper.sweep(aws.launcher_services(), datetime.now(UTC) + after)


def item(aws: Aws, job_id: str) -> dict[str, str]:
    found = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert found is not None
    return found


def instance_state(aws: Aws, instance_id: str) -> str:
    reservations = aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def to_running(aws: Aws, job_id: str) -> None:
    jobmodel.transition(aws.client("dynamodb"), aws.stack.table, job_id, Status.RUNNING, expected=[Status.LAUNCHING],
                        by=Actor.WORKER)


def test_vms_are_tagged_with_their_stack(aws: Aws) -> None:
    (job_id,) = launched_jobs(aws, 1)
    found = sweeper.stack_instances(aws.client("ec2"), aws.stack.stack)
    assert list(found) == [job_id]
    assert sweeper.stack_instances(aws.client("ec2"), "another-stack") == {}
    tags = {t["Key"]: t["Value"] for t in found[job_id]["Tags"]}
    assert tags[STACK_TAG] == aws.stack.stack


def test_a_vm_past_the_job_timeout_is_terminated_and_its_job_failed(aws: Aws) -> None:
    (job_id,) = launched_jobs(aws, 1)
    to_running(aws, job_id)
    instance_id = item(aws, job_id)["instance_id"]
    timeout = timedelta(minutes=config_of(aws).job_timeout_minutes)

    assert sweep(aws, after=timeout).terminated == [], "within the timeout (plus watchdog grace) the VM lives"
    report = sweep(aws, after=timeout + jobmodel.DEADLINES[Status.RUNNING].after + timedelta(seconds=5))

    assert report.terminated == [instance_id] and report.failed == [job_id]
    assert instance_state(aws, instance_id) in {"shutting-down", "terminated"}
    failed = item(aws, job_id)
    assert failed["status"] == Status.FAILED
    assert failed["error"].startswith(f"The job did not finish within {timeout.seconds // 60} minutes")


def test_a_running_job_whose_vm_vanished_is_failed(aws: Aws) -> None:
    (job_id,) = launched_jobs(aws, 1)
    to_running(aws, job_id)
    aws.client("ec2").terminate_instances(InstanceIds=[item(aws, job_id)["instance_id"]])

    assert sweep(aws).failed == [], "DescribeInstances lags: a VM gone for seconds is not yet conclusive"
    report = sweep(aws, after=jobmodel.VANISHED_GRACE + timedelta(seconds=1))

    assert report.failed == [job_id]
    assert "stopped before the job finished" in item(aws, job_id)["error"]


def test_a_launching_job_whose_vm_never_appeared_is_failed_after_the_grace(aws: Aws) -> None:
    job_id, _ = put_job(aws.client("s3"), aws.client("dynamodb"), aws.stack, content=b"x", text="t",
                        status=Status.LAUNCHING)

    assert sweep(aws, after=timedelta(minutes=1)).failed == []
    assert sweep(aws, after=jobmodel.DEADLINES[Status.LAUNCHING].after + timedelta(seconds=1)).failed == [job_id]
    assert "never started" in item(aws, job_id)["error"]


def test_a_finished_job_is_never_touched(aws: Aws) -> None:
    (job_id,) = launched_jobs(aws, 1)
    to_running(aws, job_id)
    jobmodel.transition(aws.client("dynamodb"), aws.stack.table, job_id, Status.SUCCEEDED,
                        expected=[Status.RUNNING], by=Actor.WORKER, attrs={"output_file_path": "b/k"})
    aws.client("ec2").terminate_instances(InstanceIds=[item(aws, job_id)["instance_id"]])

    sweep(aws, after=timedelta(hours=2))

    assert item(aws, job_id)["status"] == Status.SUCCEEDED and "error" not in item(aws, job_id)


def test_leaked_slots_are_freed_and_the_queue_moves(aws: Aws) -> None:
    """A VM's termination event lost on the way: the sweeper gives the slot back and starts the oldest queued job,
    but only once the finished job's VM is really gone."""
    cap = config_of(aws).max_concurrent_vms
    jobs = launched_jobs(aws, cap + 1)
    assert item(aws, jobs[-1])["status"] == Status.QUEUED
    to_running(aws, jobs[0])
    jobmodel.transition(aws.client("dynamodb"), aws.stack.table, jobs[0], Status.SUCCEEDED, expected=[Status.RUNNING],
                        by=Actor.WORKER)

    assert sweep(aws).slots_freed == [], "the finished job's VM is still alive: it keeps its slot"
    aws.client("ec2").terminate_instances(InstanceIds=[item(aws, jobs[0])["instance_id"]])
    report = sweep(aws)

    assert report.slots_freed == [int(item(aws, jobs[0])["slot"])]
    assert report.started == 1
    assert item(aws, jobs[-1])["status"] == Status.LAUNCHING
    holders = held_slots(aws.client("dynamodb"), aws.stack.table, cap)
    assert sorted(holders.values()) == sorted(jobs[1:])


def test_a_slot_held_for_a_missing_or_queued_job_is_freed(aws: Aws) -> None:
    ddb, table = aws.client("dynamodb"), aws.stack.table
    queued, _ = put_job(aws.client("s3"), ddb, aws.stack, content=b"x", text="t", status=Status.QUEUED)
    capacity.acquire(ddb, table, "gone-job-id", 2)
    capacity.acquire(ddb, table, queued, 2)

    report = sweep(aws)

    assert sorted(report.slots_freed) == [0, 1]
    assert report.started == 1, "the queued job then gets a slot the regular way"
    cap = config_of(aws).max_concurrent_vms
    assert held_slots(ddb, table, cap) == {int(item(aws, queued)["slot"]): queued}


def test_a_missing_holders_slot_is_kept_while_its_vm_is_alive(aws: Aws) -> None:
    """Defence in depth for deleted jobs: a slot is the VM's, not the item's. Freed while the VM lives, one VM too
    many could run; once the VM is gone (its termination event lost), the slot is freed."""
    (job_id,) = launched_jobs(aws, 1)
    instance_id = item(aws, job_id)["instance_id"]
    aws.client("dynamodb").delete_item(TableName=aws.stack.table, Key={"id": {"S": job_id}})

    assert sweep(aws).slots_freed == []
    aws.client("ec2").terminate_instances(InstanceIds=[instance_id])
    assert len(sweep(aws).slots_freed) == 1
    assert held_slots(aws.client("dynamodb"), aws.stack.table, config_of(aws).max_concurrent_vms) == {}


def test_sweeping_again_changes_nothing_more(aws: Aws) -> None:
    (job_id,) = launched_jobs(aws, 1)
    to_running(aws, job_id)
    later = timedelta(hours=1)

    first = sweep(aws, after=later)
    second = sweep(aws, after=later)
    third = sweep(aws, after=later)

    assert first.failed == [job_id] and first.slots_freed == [], "the terminated VM held its slot at first"
    assert second.slots_freed == [int(item(aws, job_id)["slot"])], "no termination event here: the sweep frees it"
    assert (third.terminated, third.failed, third.slots_freed, third.queued, third.started) == ([], [], [], [], 0)
    assert (second.terminated, second.failed) == ([], [])


def test_handler_reports_what_it_did(lambda_environment: Aws) -> None:
    """The Lambda entry point: builds its services from the environment on first use."""
    aws = lambda_environment
    launched_jobs(aws, 1)
    report = sweeper.handler({}, None)
    assert {k: report.pop(k) for k in ("vms_alive", "jobs_queued")} == {"vms_alive": 1, "jobs_queued": 0}
    assert 0 <= report.pop("oldest_vm_seconds") < 60
    assert report == {"terminated": [], "failed": [], "slots_freed": [], "queued": [], "started": 0}


def test_a_job_left_pending_is_queued_and_started(aws: Aws) -> None:
    """An INSERT record lost after its retries must not leave the job PENDING for ever."""
    job_id, _ = put_job(aws.client("s3"), aws.client("dynamodb"), aws.stack, content=b"x", text="t",
                        status=Status.PENDING)

    assert sweep(aws).queued == [], "a fresh PENDING job belongs to the launcher"
    report = sweep(aws, after=jobmodel.DEADLINES[Status.PENDING].after + timedelta(seconds=1))

    assert report.queued == [job_id] and report.started == 1
    assert item(aws, job_id)["status"] == Status.LAUNCHING


def test_durations_read_as_sentences() -> None:
    assert sweeper.minutes(1) == "1 minute" and sweeper.minutes(15) == "15 minutes"


def test_the_oldest_vm_age_ignores_vms_already_on_their_way_out(aws: Aws) -> None:
    """Regression: `oldest_vm_seconds` (the overdue-VM alarm's metric) counted a VM already stopping or shutting
    down (the watchdog or the sweeper at work), so the alarm fired for a VM doing what it should. It still counts
    against the cap (`vms_alive`)."""
    first, second = launched_jobs(aws, 2)
    aws.client("ec2").stop_instances(InstanceIds=[item(aws, first)["instance_id"]])

    report = sweep(aws, after=timedelta(minutes=3))

    assert report.vms_alive == 2
    assert 180 <= report.oldest_vm_seconds < 240, "the running VM's age, about three minutes"
    aws.client("ec2").stop_instances(InstanceIds=[item(aws, second)["instance_id"]])
    assert sweep(aws, after=timedelta(minutes=3)).oldest_vm_seconds == 0


def test_oldest_running_seconds_counts_pending_and_running_vms_only() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    vms = [{"LaunchTime": now - timedelta(minutes=m), "State": {"Name": state}}
           for m, state in ((30, "shutting-down"), (25, "stopping"), (20, "stopped"), (10, "running"), (2, "pending"))]
    assert sweeper.oldest_running_seconds(vms, now) == 600
    assert sweeper.oldest_running_seconds(vms[:3], now) == 0
