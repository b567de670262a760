"""The log lines the monitoring component's metric filters read, as the handlers really write them.

Each test runs a handler against moto, formats what it logged the way Lambda's JSON log format does
(`local.logs.LambdaJsonFormatter`: extra fields at the top level), and applies every metric filter of that
function's log group: the line must feed exactly the metrics it is meant to, with numbers as JSON numbers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from components.monitoring import LOG_METRICS
from handlers import jobmodel, launcher, quota, sweeper
from handlers.jobmodel import Actor, Status
from local.logs import LambdaJsonFormatter
from local.streams import matches as stream_matches
from stackspec.triggers import FINISHED_HOLDING_QUOTA_FILTER
from tests.conftest import Aws
from tests.fakes import FlakyEc2
from tests.metricfilters import matches, metric_value
from tests.streams import lambda_records


class JsonLines(logging.Handler):
    """Collects each record as the JSON line Lambda would write to CloudWatch."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(LambdaJsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def events(self, event: str) -> list[dict[str, Any]]:
        assert all("\n" not in line for line in self.lines), "one record, one line"
        parsed = [json.loads(line) for line in self.lines]
        return [line for line in parsed if line.get("event") == event]


@pytest.fixture
def written() -> Iterator[JsonLines]:
    handler = JsonLines()
    logger = logging.getLogger("handlers")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def fed_metrics(source: str, line: dict[str, Any]) -> dict[str, Any]:
    """Metric name -> published value, for every filter of `source`'s log group that matches the line."""
    return {m.metric: metric_value(m.value, line) for m in LOG_METRICS
            if m.source == source and matches(m.pattern, line)}


def new_job(aws: Aws, owner: str = "u1") -> str:
    job_id = jobmodel.new_id()
    aws.client("s3").put_object(Bucket=aws.stack.bucket, Key=f"inputs/{job_id}/a.txt", Body=b"x")  # its upload
    item = jobmodel.new_job(job_id, "t", f"{aws.stack.bucket}/inputs/{job_id}/a.txt", owner)
    quota.create_job(aws.client("dynamodb"), aws.stack.table, item, 5)
    return job_id


def deliver_new_and_finished(aws: Aws, ec2: Any = None) -> None:
    """Hand the launcher every record its two stream filters pass, as the event source mapping does."""
    services = aws.launcher_services(ec2)
    batch = [r for r in lambda_records(aws.client("dynamodbstreams"), aws.stack.stream_arn)
             if r["eventName"] == "INSERT" or stream_matches(FINISHED_HOLDING_QUOTA_FILTER, r)]
    launcher.handle_batch(services, {"Records": batch})


def test_a_job_that_ran_writes_one_job_finished_line_feeding_outcome_and_durations(
    aws: Aws, written: JsonLines
) -> None:
    ddb, table = aws.client("dynamodb"), aws.stack.table
    job_id = new_job(aws)
    deliver_new_and_finished(aws)
    jobmodel.transition(ddb, table, job_id, Status.RUNNING, expected=[Status.LAUNCHING], by=Actor.WORKER)
    jobmodel.transition(ddb, table, job_id, Status.SUCCEEDED, expected=[Status.RUNNING], by=Actor.WORKER)
    records = lambda_records(aws.client("dynamodbstreams"), aws.stack.stream_arn)

    deliver_new_and_finished(aws)
    launcher.handle_batch(aws.launcher_services(), {"Records": records})  # delivered again: no second line

    [line] = written.events("job_finished")
    job = jobmodel.read_job(ddb, table, job_id) or {}
    assert line["job_id"] == job_id and line["status"] == "SUCCEEDED"
    assert line["wait_seconds"] == jobmodel.seconds_between(job["created_at"], job["started_at"])
    assert line["run_seconds"] == jobmodel.seconds_between(job["started_at"], job["finished_at"])
    assert job_id not in line["message"], "identifiers are fields, not part of the message"
    assert fed_metrics("launcher", line) == {
        "JobsSucceeded": 1.0, "JobWaitSeconds": line["wait_seconds"], "JobRunSeconds": line["run_seconds"],
    }


def test_a_job_refused_at_launch_counts_as_failed_with_no_durations(aws: Aws, written: JsonLines) -> None:
    new_job(aws)
    deliver_new_and_finished(aws, FlakyEc2(aws.client("ec2"), ["InvalidLaunchTemplateId.NotFound"]))
    deliver_new_and_finished(aws)

    [line] = written.events("job_finished")
    assert line["status"] == "FAILED" and "wait_seconds" not in line and "run_seconds" not in line
    assert fed_metrics("launcher", line) == {"JobsFailed": 1.0}


def test_a_cancelled_running_job_counts_as_cancelled_with_its_durations(aws: Aws, written: JsonLines) -> None:
    """The CANCELLED record releases the owner's place like any final one: one line, fed into JobsCancelled."""
    ddb, table = aws.client("dynamodb"), aws.stack.table
    job_id = new_job(aws)
    deliver_new_and_finished(aws)
    jobmodel.transition(ddb, table, job_id, Status.RUNNING, expected=[Status.LAUNCHING], by=Actor.WORKER)
    jobmodel.transition(ddb, table, job_id, Status.CANCELLED, expected=[Status.RUNNING], by=Actor.USER)
    deliver_new_and_finished(aws)

    [line] = written.events("job_finished")
    assert line["job_id"] == job_id and line["status"] == "CANCELLED"
    assert set(fed_metrics("launcher", line)) == {"JobsCancelled", "JobWaitSeconds", "JobRunSeconds"}


def test_a_launch_names_job_instance_and_slot_as_fields(aws: Aws, written: JsonLines) -> None:
    job_id = new_job(aws)
    deliver_new_and_finished(aws)

    [started] = [json.loads(line) for line in written.lines if json.loads(line)["message"] == "VM started"]
    job = jobmodel.read_job(aws.client("dynamodb"), aws.stack.table, job_id) or {}
    assert (started["job_id"], started["instance_id"], started["slot"]) == (job_id, job["instance_id"],
                                                                            int(job["slot"]))


def test_every_sweep_writes_one_sweep_report_line_feeding_the_gauges(aws: Aws, written: JsonLines) -> None:
    for _ in range(aws.stack.launcher_config().max_concurrent_vms + 1):
        new_job(aws)
    deliver_new_and_finished(aws)

    report = sweeper.sweep(aws.launcher_services())

    [line] = written.events("sweep_report")
    assert (line["vms_alive"], line["jobs_queued"]) == (report.vms_alive, report.jobs_queued) == (4, 1)
    assert isinstance(line["oldest_vm_seconds"], float) and line["oldest_vm_seconds"] >= 0
    assert fed_metrics("sweeper", line) == {
        "VmsAlive": 4, "JobsQueued": 1, "OldestVmSeconds": line["oldest_vm_seconds"],
    }
    assert fed_metrics("launcher", line) == {}, "a sweep line is not a job end"
