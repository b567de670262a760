"""The launcher against moto: one VM per job whatever the deliveries, never more VMs than slots, and every launch
error ends somewhere sane."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from handlers import capacity, dispatch, jobmodel, launcher, quota, release, sweeper
from handlers.config import LauncherConfig
from handlers.jobmodel import JOB_ID_TAG, Actor, Status
from local.events import instance_state_change
from local.streams import matches
from stackspec.triggers import LAUNCHER_EVENT_FILTERS
from tests.conftest import Aws
from tests.fakes import PERMANENT_MESSAGES, FlakyEc2
from tests.records import active_jobs
from tests.runtime.jobs import get_item, held_slots, put_job
from tests.streams import lambda_records


def config_of(aws: Aws) -> LauncherConfig:
    return aws.stack.launcher_config()


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
    return launcher.handle_batch(aws.launcher_services(ec2), {"Records": batch})


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
        assert item["slot"].isdigit()


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


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch.time, "sleep", lambda seconds: None)


def test_a_transient_error_is_retried_in_place(aws: Aws) -> None:
    job_id = new_pending_job(aws)
    ec2 = FlakyEc2(aws.client("ec2"), ["InsufficientInstanceCapacity"] * (dispatch.LAUNCH_ATTEMPTS - 1))

    assert handle(aws, records(aws), ec2) == {"batchItemFailures": []}

    assert len(ec2.calls) == dispatch.LAUNCH_ATTEMPTS
    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.LAUNCHING and item["instance_id"].startswith("i-")


def test_a_lasting_transient_error_queues_the_job_for_later(aws: Aws) -> None:
    job_id = new_pending_job(aws)
    batch = records(aws)
    ec2 = FlakyEc2(aws.client("ec2"), ["RequestLimitExceeded"] * dispatch.LAUNCH_ATTEMPTS)

    assert handle(aws, batch, ec2) == {"batchItemFailures": []}, "a queued job is handled: the queue retries it"

    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.QUEUED
    assert instances(aws) == []
    assert held_slots(aws.client("dynamodb"), aws.stack.table, 4) == {}, "the slot must be given back"

    assert dispatch.dispatch(aws.launcher_services()) == [dispatch.Outcome.LAUNCHED]
    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.LAUNCHING
    assert len(instances(aws)) == 1


@pytest.mark.parametrize("code", sorted(PERMANENT_MESSAGES))
def test_a_permanent_launch_error_fails_the_job_with_the_aws_message(aws: Aws, code: str) -> None:
    """moto cannot be made to refuse RunInstances this way, so the client raises what AWS would."""
    job_id = new_pending_job(aws)
    ec2 = FlakyEc2(aws.client("ec2"), [code] * 99)

    result = handle(aws, records(aws), ec2)

    assert result == {"batchItemFailures": []}, "an error that will not heal must not be retried"
    assert len(ec2.calls) == 1
    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.FAILED
    message = PERMANENT_MESSAGES[code].rstrip(".")
    assert item["error"] == f"The VM could not be started: {message} ({code})."
    assert item["finished_at"]
    assert held_slots(aws.client("dynamodb"), aws.stack.table, 4) == {}, "a failed launch must free its slot"


def job_subnets(aws: Aws, job_id: str) -> tuple[str, str]:
    """(the job's own subnet, the other one) of the two-subnet test stack."""
    first, *others = dispatch.subnet_order(job_id, aws.stack.subnet_ids)
    assert len(others) == 1, "the test stack has two subnets, as every stack"
    return first, others[0]


def test_a_zone_that_does_not_offer_the_type_sends_the_vm_to_the_other_subnet(aws: Aws) -> None:
    """Regression: `Unsupported` in one zone failed about half of all jobs for good; the other subnet's zone
    offers the type, so the job's VM starts there at once (no backoff, no attempt counted)."""
    job_id = new_pending_job(aws)
    own, other = job_subnets(aws, job_id)
    ec2 = FlakyEc2(aws.client("ec2"), always={own: "Unsupported"})

    assert handle(aws, records(aws), ec2) == {"batchItemFailures": []}

    assert ec2.subnets == [own, other] and ec2.codes == ["Unsupported", None]
    [instance] = instances(aws)
    assert instance["SubnetId"] == other
    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.LAUNCHING


def test_no_capacity_in_any_zone_counts_one_attempt_per_round_of_subnets(aws: Aws) -> None:
    """Every subnet is tried before an attempt counts as failed; when capacity never comes, the job waits in the
    queue (capacity heals) and its slot is given back."""
    job_id = new_pending_job(aws)
    own, other = job_subnets(aws, job_id)
    ec2 = FlakyEc2(aws.client("ec2"), always={own: "InsufficientInstanceCapacity", other: "Unsupported"})

    assert handle(aws, records(aws), ec2) == {"batchItemFailures": []}

    assert ec2.subnets == [own, other] * dispatch.LAUNCH_ATTEMPTS
    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.QUEUED, "one zone's capacity error may heal: retry later"
    assert held_slots(aws.client("dynamodb"), aws.stack.table, 4) == {}


def test_a_type_offered_in_no_subnet_fails_the_job_with_the_aws_message(aws: Aws) -> None:
    job_id = new_pending_job(aws)
    own, other = job_subnets(aws, job_id)
    ec2 = FlakyEc2(aws.client("ec2"), always={own: "Unsupported", other: "Unsupported"})

    handle(aws, records(aws), ec2)

    assert ec2.subnets == [own, other], "Unsupported everywhere will not heal: no second round"
    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.FAILED and "(Unsupported)" in item["error"]


def test_an_error_not_about_the_zone_is_retried_in_the_same_subnet(aws: Aws) -> None:
    """A throttled or timed-out call may have started a VM: the retry repeats the same parameters, so the job id as
    ClientToken returns that VM instead of starting a second one in another subnet."""
    job_id = new_pending_job(aws)
    own, _ = job_subnets(aws, job_id)
    ec2 = FlakyEc2(aws.client("ec2"), ["RequestLimitExceeded"])

    handle(aws, records(aws), ec2)

    assert ec2.subnets == [own, own]
    assert len(instances(aws)) == 1


def test_backoff_grows_and_is_jittered(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    monkeypatch.setattr(dispatch.random, "uniform", lambda low, high: high)
    error = ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "RunInstances")

    def always_throttled() -> str:
        raise error

    result = dispatch.launch(always_throttled, attempts=4, sleep=delays.append)
    assert result.retry_later and result.instance_id is None and "Throttling" in result.reason
    assert delays == [dispatch.BACKOFF_BASE_SECONDS * 2**n for n in range(3)]


def test_subnets_are_spread_and_stable() -> None:
    subnets = ("subnet-a", "subnet-b")
    chosen = {dispatch.subnet_for(f"{i:021d}", subnets) for i in range(50)}
    assert chosen == set(subnets)
    assert dispatch.subnet_for("abc", subnets) == dispatch.subnet_for("abc", subnets)
    assert dispatch.subnet_order("abc", subnets)[0] == dispatch.subnet_for("abc", subnets)
    assert sorted(dispatch.subnet_order("abc", subnets)) == sorted(subnets)


def finish(aws: Aws, job_id: str, status: Status = Status.SUCCEEDED) -> str:
    """Move a launched job to its end as the worker would; return its instance id (the VM is still alive)."""
    ddb = aws.client("dynamodb")
    jobmodel.transition(ddb, aws.stack.table, job_id, Status.RUNNING, expected=[Status.LAUNCHING], by=Actor.WORKER)
    jobmodel.transition(ddb, aws.stack.table, job_id, status, expected=[Status.RUNNING], by=Actor.WORKER)
    return (get_item(ddb, aws.stack, job_id) or {})["instance_id"]


def terminated(aws: Aws, instance_id: str) -> dict[str, Any]:
    """Terminate the VM and deliver EC2's state-change event to the launcher, as the EventBridge rule does."""
    aws.client("ec2").terminate_instances(InstanceIds=[instance_id])
    return release.handle(instance_state_change(instance_id, "terminated", "us-east-1"), aws.launcher_services())


def statuses(aws: Aws, job_ids: list[str]) -> list[str]:
    return [(get_item(aws.client("dynamodb"), aws.stack, j) or {}).get("status", "") for j in job_ids]


def slots_held(aws: Aws) -> int:
    return len(held_slots(aws.client("dynamodb"), aws.stack.table, config_of(aws).max_concurrent_vms))


def test_jobs_beyond_the_cap_wait_queued_and_start_oldest_first_as_vms_go(aws: Aws) -> None:
    cap = config_of(aws).max_concurrent_vms
    jobs = [new_pending_job(aws, f"job {i}") for i in range(cap + 2)]

    handle(aws, records(aws))

    assert statuses(aws, jobs) == [Status.LAUNCHING] * cap + [Status.QUEUED] * 2
    assert len(instances(aws)) == cap
    assert sorted(held_slots(aws.client("dynamodb"), aws.stack.table, cap).values()) == sorted(jobs[:cap])

    assert terminated(aws, finish(aws, jobs[1], Status.FAILED))["released"] is not None
    assert statuses(aws, jobs)[cap:] == [Status.LAUNCHING, Status.QUEUED], "the oldest queued job goes first"
    assert slots_held(aws) == cap

    terminated(aws, finish(aws, jobs[0]))
    assert statuses(aws, jobs)[cap:] == [Status.LAUNCHING, Status.LAUNCHING]
    assert len(instances(aws)) == cap + 2


def test_a_finished_job_keeps_its_slot_until_its_vm_is_terminated(aws: Aws) -> None:
    """The cap counts VMs alive: a VM powering off after its job ended still holds its slot."""
    cap = config_of(aws).max_concurrent_vms
    jobs = [new_pending_job(aws) for _ in range(cap + 1)]
    handle(aws, records(aws))
    instance_id = finish(aws, jobs[0])

    assert statuses(aws, jobs)[cap] == Status.QUEUED
    assert slots_held(aws) == cap

    terminated(aws, instance_id)
    assert statuses(aws, jobs)[cap] == Status.LAUNCHING


def test_a_termination_event_delivered_twice_frees_one_slot_only(aws: Aws) -> None:
    cap = config_of(aws).max_concurrent_vms
    jobs = [new_pending_job(aws) for _ in range(cap + 2)]
    handle(aws, records(aws))
    instance_id = finish(aws, jobs[0])

    first = terminated(aws, instance_id)
    second = terminated(aws, instance_id)

    assert first["released"] is not None and second == {"released": None}
    assert statuses(aws, jobs)[cap:] == [Status.LAUNCHING, Status.QUEUED]
    assert slots_held(aws) == cap


@pytest.mark.parametrize("state", ["pending", "running", "stopping", "shutting-down"])
def test_other_instance_states_free_nothing(aws: Aws, state: str) -> None:
    new_pending_job(aws)
    handle(aws, records(aws))
    (instance,) = instances(aws)
    event = instance_state_change(instance["InstanceId"], state, "us-east-1")

    assert release.handle(event, aws.launcher_services()) == {"released": None}
    assert slots_held(aws) == 1


def test_the_launcher_takes_stream_batches_and_the_release_function_vm_events(lambda_environment: Aws) -> None:
    """The Lambda entry points: each builds its services from the environment on first use."""
    aws = lambda_environment
    new_pending_job(aws)

    assert launcher.handler({"Records": records(aws)}, None) == {"batchItemFailures": []}
    (instance,) = instances(aws)
    aws.client("ec2").terminate_instances(InstanceIds=[instance["InstanceId"]])
    event = instance_state_change(instance["InstanceId"], "terminated", "us-east-1")
    assert release.handler(event, None)["released"] is not None


def test_a_vm_of_no_slot_frees_nothing_and_starts_nothing(aws: Aws) -> None:
    """The rule brings every instance of the account: another stack's VM must not free a slot or dispatch."""
    cap = config_of(aws).max_concurrent_vms
    jobs = [new_pending_job(aws) for _ in range(cap + 1)]
    handle(aws, records(aws))

    assert release.handle(instance_state_change("i-0fffffffffffffff0", "terminated", "us-east-1"),
                          aws.launcher_services()) == {"released": None}
    assert statuses(aws, jobs)[cap] == Status.QUEUED and slots_held(aws) == cap


def test_slots_are_exclusive_and_only_their_holder_frees_them(aws: Aws) -> None:
    ddb, table = aws.client("dynamodb"), aws.stack.table
    first = capacity.acquire(ddb, table, "job-a", 2)
    second = capacity.acquire(ddb, table, "job-b", 2)

    assert {first, second} == {0, 1}
    assert capacity.acquire(ddb, table, "job-c", 2) is None
    assert second is not None and not capacity.release(ddb, table, "job-a", second)
    assert first is not None and capacity.release(ddb, table, "job-a", first)
    assert not capacity.release(ddb, table, "job-a", first), "a slot is freed once"
    assert capacity.acquire(ddb, table, "job-c", 2) == first


def test_slot_items_are_never_taken_for_jobs(aws: Aws) -> None:
    """The slot items live in the jobs table: their stream records and index entries must not look like jobs."""
    ddb = aws.client("dynamodb")
    capacity.acquire(ddb, aws.stack.table, "some-job", 2)
    slot_records = [r for r in records(aws) if r["dynamodb"]["Keys"]["id"]["S"].startswith(capacity.SLOT_PREFIX)]

    assert slot_records, "acquiring a slot writes its item"
    assert handle(aws, slot_records) == {"batchItemFailures": []}
    assert instances(aws) == []
    assert jobmodel.jobs_in_state(ddb, aws.stack.table, Status.QUEUED) == []


def test_a_finished_jobs_stream_record_frees_its_owners_place_once(aws: Aws) -> None:
    """The MODIFY record of a job reaching SUCCEEDED (the launcher's second filter) decrements its owner's count;
    the same record delivered again decrements nothing."""
    ddb, table = aws.client("dynamodb"), aws.stack.table
    job_id = jobmodel.new_id()
    aws.client("s3").put_object(Bucket=aws.stack.bucket, Key=f"inputs/{job_id}/a", Body=b"x")  # its upload
    quota.create_job(ddb, table, jobmodel.new_job(job_id, "t", f"{aws.stack.bucket}/inputs/{job_id}/a", "u1"), 5)
    handle(aws, records(aws))
    finish(aws, job_id)
    finished = [r for r in records(aws) if r["eventName"] == "MODIFY"
                and any(matches(pattern, r) for pattern in LAUNCHER_EVENT_FILTERS)]
    assert len(finished) == 1, "only the move to SUCCEEDED passes the filter"
    assert active_jobs(ddb, table, "u1") == 1

    assert handle(aws, finished) == {"batchItemFailures": []}
    assert handle(aws, finished) == {"batchItemFailures": []}

    assert active_jobs(ddb, table, "u1") == 0
    assert "holds_quota" not in (get_item(ddb, aws.stack, job_id) or {})


def test_queueing_a_new_job_claims_its_upload_so_the_lifecycle_keeps_it(aws: Aws) -> None:
    """An upload carries the unclaimed tag from its POST; the launcher removes it as it queues the job, so the
    bucket's lifecycle (which removes files still tagged after a day) keeps the job's input for its runs and
    retries. A redelivered record claims again harmlessly."""
    s3, bucket = aws.client("s3"), aws.stack.bucket
    job_id = jobmodel.new_id()
    key = f"inputs/{job_id}/a.txt"
    tag_key, tag_value = jobmodel.UNCLAIMED_UPLOAD_TAG
    s3.put_object(Bucket=bucket, Key=key, Body=b"x", Tagging=f"{tag_key}={tag_value}")
    quota.create_job(aws.client("dynamodb"), aws.stack.table, jobmodel.new_job(job_id, "t", f"{bucket}/{key}", "u3"), 5)
    inserted = [r for r in records(aws) if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["id"]["S"] == job_id]
    assert handle(aws, inserted) == {"batchItemFailures": []}
    assert s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] == []
    assert get_item(aws.client("dynamodb"), aws.stack, job_id)["status"] != "PENDING"
    assert handle(aws, inserted) == {"batchItemFailures": []}


def test_dispatch_starts_no_job_it_may_not_finish_in_time(aws: Aws) -> None:
    """With less than a slowest job start left, the queue waits for the next event or sweep: a job is never claimed
    and then cut off by the function's timeout."""
    jobs = [new_pending_job(aws) for _ in range(2)]
    services = aws.launcher_services()
    for job_id in jobs:
        jobmodel.transition(services.ddb, services.config.table, job_id, Status.QUEUED, expected=[Status.PENDING],
                            by=Actor.LAUNCHER)

    short = time.monotonic() + dispatch.JOB_START_SECONDS - 1
    assert dispatch.dispatch(services, deadline=short) == []
    assert statuses(aws, jobs) == [Status.QUEUED] * 2 and instances(aws) == []

    enough = time.monotonic() + dispatch.JOB_START_SECONDS + 60
    assert dispatch.dispatch(services, deadline=enough) == [dispatch.Outcome.LAUNCHED] * 2


def test_a_finished_job_gets_its_expiry_when_the_stack_keeps_records_for_a_time(aws: Aws) -> None:
    """`retentionDays`: the table's TTL deletes finished jobs; the launcher stamps `expires_at` as it releases the
    owner's place (a number of epoch seconds, which is what TTL reads). With 0 nothing is stamped."""
    ddb, table = aws.client("dynamodb"), aws.stack.table
    base = aws.launcher_services()
    for days in (0, 30):
        services = replace(base, config=replace(base.config, retention_days=days))
        job_id = jobmodel.new_id()
        aws.client("s3").put_object(Bucket=aws.stack.bucket, Key=f"inputs/{job_id}/a", Body=b"x")  # its upload
        quota.create_job(ddb, table, jobmodel.new_job(job_id, "t", f"{aws.stack.bucket}/inputs/{job_id}/a", "u2"), 5)
        launcher.handle_batch(services, {"Records": records(aws)})
        finish(aws, job_id)
        finished = [r for r in records(aws) if r["eventName"] == "MODIFY" and r["dynamodb"]["Keys"]["id"]["S"] == job_id
                    and any(matches(pattern, r) for pattern in LAUNCHER_EVENT_FILTERS)]
        before = time.time()
        launcher.handle_batch(services, {"Records": finished})
        raw = ddb.get_item(TableName=table, Key={"id": {"S": job_id}}, ConsistentRead=True)["Item"]
        if days == 0:
            assert jobmodel.EXPIRES_AT not in raw
        else:
            expires = int(raw[jobmodel.EXPIRES_AT]["N"])
            assert before + days * 86400 - 5 <= expires <= time.time() + days * 86400


def test_the_release_function_takes_aws_documented_state_change_event(aws: Aws) -> None:
    """The EC2 User Guide's sample event (tests/events), as "terminated": the slot of the VM it names is freed."""
    sample = json.loads((Path(__file__).parents[1] / "events" / "ec2InstanceStateChangeEvent.json").read_text())
    instance_id = sample["detail"]["instance-id"]
    ddb, table = aws.client("dynamodb"), aws.stack.table
    slot = capacity.acquire(ddb, table, "some-job", config_of(aws).max_concurrent_vms)
    assert slot is not None and capacity.attach_instance(ddb, table, "some-job", slot, instance_id)

    assert release.handle(sample, aws.launcher_services()) == {"released": None}, "a pending VM keeps its slot"
    terminated = {**sample, "detail": {**sample["detail"], "state": "terminated"}}
    assert release.handle(terminated, aws.launcher_services()) == {"released": slot}


# --- refusals that mean "later": codes from AWS's "Error codes for the Amazon EC2 API" (handlers/refusals.py) ---

WAITS = ("VcpuLimitExceeded", "InstanceLimitExceeded", "InvalidParameterValue")


@pytest.mark.parametrize("code", WAITS)
def test_a_quota_or_an_unseen_instance_profile_queues_the_job_at_once_with_a_reason(aws: Aws, code: str) -> None:
    """Regression: a vCPU quota in use, or the instance profile IAM has not shown EC2 yet, failed the job for good;
    both heal with time (a VM ends, IAM catches up), so the job waits in the queue, says why, and its slot is
    free. No retry in place: a second later is no better."""
    job_id = new_pending_job(aws)
    ec2 = FlakyEc2(aws.client("ec2"), [code] * 99)

    assert handle(aws, records(aws), ec2) == {"batchItemFailures": []}

    assert len(ec2.calls) == 1
    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.QUEUED and "error" not in item
    assert item["queue_reason"].startswith("Waiting for a VM: ") and f"({code})" in item["queue_reason"]
    assert jobmodel.to_public(item)["queue_reason"] == item["queue_reason"], "the API shows why the job waits"
    assert held_slots(aws.client("dynamodb"), aws.stack.table, 4) == {}


def test_an_invalid_parameter_other_than_the_instance_profile_still_fails_the_job(aws: Aws) -> None:
    job_id = new_pending_job(aws)
    error = ClientError({"Error": {"Code": "InvalidParameterValue", "Message": "Invalid value 'x' for instanceType."}},
                        "RunInstances")

    class Refusing(FlakyEc2):
        def run_instances(self, **kwargs: Any) -> Any:
            raise error

    handle(aws, records(aws), Refusing(aws.client("ec2")))

    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.FAILED and "(InvalidParameterValue)" in item["error"]


def test_a_waiting_job_is_tried_again_by_the_next_sweep_and_starts_once_the_quota_allows(aws: Aws) -> None:
    """The retry is real: the scheduled sweeper dispatches the queue, and the job keeps the moment it first waited."""
    job_id = new_pending_job(aws)
    handle(aws, records(aws), FlakyEc2(aws.client("ec2"), ["VcpuLimitExceeded"]))
    first = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert first is not None and first["status"] == Status.QUEUED

    again = FlakyEc2(aws.client("ec2"), ["VcpuLimitExceeded"])
    sweeper.sweep(aws.launcher_services(again))
    second = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert second is not None and second["status"] == Status.QUEUED and len(again.calls) == 1
    assert second["waiting_since"] == first["waiting_since"], "the deadline counts from the first refusal"

    report = sweeper.sweep(aws.launcher_services())
    assert report.started == 1
    started = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert started is not None and started["status"] == Status.LAUNCHING
    assert "queue_reason" not in jobmodel.to_public(started), "the reason is shown only while the job waits"


@pytest.mark.parametrize("code", ["VcpuLimitExceeded", "InsufficientInstanceCapacity"])
def test_a_job_refused_past_the_queues_deadline_fails_naming_what_to_raise(aws: Aws, code: str) -> None:
    """A wait must end: refused since longer than the QUEUED deadline, the job fails, and a vCPU quota's sentence
    names the quota code to raise in Service Quotas (L-1216C47A, from the AWS CLI guide's Service Quotas example)."""
    job_id = new_pending_job(aws)
    handle(aws, records(aws), FlakyEc2(aws.client("ec2"), [code] * 99))
    long_ago = datetime.now(UTC) - jobmodel.DEADLINES[Status.QUEUED].after - timedelta(minutes=1)
    aws.client("dynamodb").update_item(
        TableName=aws.stack.table, Key={"id": {"S": job_id}}, UpdateExpression="SET waiting_since = :t",
        ExpressionAttributeValues={":t": {"S": long_ago.isoformat()}})

    sweeper.sweep(aws.launcher_services(FlakyEc2(aws.client("ec2"), [code] * 99)))

    item = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert item is not None and item["status"] == Status.FAILED, item
    assert f"({code})" in item["error"] and item["error"].startswith("No VM could be started for 30 minutes")
    if code == "VcpuLimitExceeded":
        assert "quota code L-1216C47A" in item["error"] and "Service Quotas" in item["error"]
    assert held_slots(aws.client("dynamodb"), aws.stack.table, 4) == {}
