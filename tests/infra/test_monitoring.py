"""Monitoring: the alarm topic and its optional mail, every alarm (metric, threshold, action), the metric filters the
job metrics come from, and the dashboard."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components.monitoring import EVENT, JOB_FINISHED, LOG_METRICS, SWEEP_REPORT
from handlers import jobmodel
from handlers.jobmodel import Status
from stackspec.settings import StackSettings
from tests.infra.conftest import REGION, TUNED, WORKER_TAG, Deployment
from tests.metricfilters import matches

NAMESPACE = f"filepipe/{WORKER_TAG}"
ALARMS = {"failure-queue", "launcher-errors", "release-errors", "sweeper-errors", "failed-jobs", "vm-overdue",
          "api-5xx"}


def alarms(deployment: Deployment) -> dict[str, dict[str, Any]]:
    return {r.name.removeprefix("monitoring-"): r.inputs
            for r in deployment.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}


def topic_arn(deployment: Deployment) -> str:
    return deployment.one("aws:sns/topic:Topic", "monitoring-alarms").outputs["arn"]


def function_name(deployment: Deployment, name: str) -> str:
    return deployment.one("aws:lambda/function:Function", name).outputs["name"]


def test_there_is_one_alarm_per_thing_that_needs_a_person(dev: Deployment) -> None:
    """Regression: an alarm dropped (or a duplicate that mails twice)."""
    assert set(alarms(dev)) == ALARMS


@pytest.mark.parametrize("key", sorted(ALARMS))
def test_every_alarm_notifies_the_topic_when_it_fires_and_when_it_clears(dev: Deployment, key: str) -> None:
    """Regression: an alarm with no action changes colour on a dashboard nobody watches."""
    alarm = alarms(dev)[key]
    assert alarm["alarmActions"] == [topic_arn(dev)], key
    assert alarm["okActions"] == [topic_arn(dev)], key
    assert alarm["alarmDescription"], f"{key}: the mail should say what to do"
    assert alarm.get("treatMissingData") == "notBreaching", f"{key}: no data (nothing happening) is no alarm"


def metric_of(alarm: dict[str, Any]) -> tuple[str, str, str, dict[str, str]]:
    return alarm["namespace"], alarm["metricName"], alarm["statistic"], alarm.get("dimensions", {})


def test_any_message_in_the_on_failure_queue_alarms(dev: Deployment) -> None:
    """Regression: stream batches the launcher gave up on pile up unseen for the queue's 14 days."""
    alarm = alarms(dev)["failure-queue"]
    queue = dev.one("aws:sqs/queue:Queue").outputs["name"]
    assert metric_of(alarm) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", {"QueueName": queue})
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)


@pytest.mark.parametrize("function", ["launcher", "release", "sweeper"])
def test_any_launcher_release_or_sweeper_error_alarms(dev: Deployment, function: str) -> None:
    """Regression: a launcher failing on every batch (jobs never start), a release function failing on every VM's
    end (slots stay taken, the queue waits for a sweep; it had no alarm) or a sweeper failing on every run (overdue
    VMs never terminated) with nobody told; or an alarm watching another function."""
    alarm = alarms(dev)[f"{function}-errors"]
    expected = {"FunctionName": function_name(dev, f"compute-{function}")}
    assert metric_of(alarm) == ("AWS/Lambda", "Errors", "Sum", expected)
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)


def test_failed_jobs_above_the_configured_threshold_alarm(dev: Deployment, tuned: Deployment) -> None:
    """Regression: one failed job (a user's bad input) paging someone, or a threshold that ignores the config."""
    for deployment, threshold in ((dev, StackSettings().failed_jobs_alarm_threshold),
                                  (tuned, int(TUNED["failedJobsAlarmThreshold"]))):
        alarm = alarms(deployment)["failed-jobs"]
        assert metric_of(alarm) == (NAMESPACE, "JobsFailed", "Sum", {})
        assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", threshold)
        assert alarm["period"] == 15 * 60


def test_a_vm_alive_longer_than_the_job_timeout_alarms(dev: Deployment, tuned: Deployment) -> None:
    """Regression: a VM whose watchdog failed runs (and bills) until the sweeper catches it, and nobody learns
    the watchdog is broken; or a threshold not following `jobTimeoutMinutes`; or one that fires early: at the bare
    timeout from launch, while the watchdog (counting from boot) is still within its time, the alarm went off for
    healthy VMs. It counts from launch to the sweeper's own limit (`DEADLINES[RUNNING]`)."""
    for deployment in (dev, tuned):
        settings = deployment.namespace["settings"]
        alarm = alarms(deployment)["vm-overdue"]
        assert metric_of(alarm) == (NAMESPACE, "OldestVmSeconds", "Maximum", {})
        limit = jobmodel.DEADLINES[Status.RUNNING].limit(settings.job_timeout_minutes).total_seconds()
        assert alarm["threshold"] == limit, "the moment the sweeper calls a VM overdue, not the bare timeout"
        assert alarm["comparisonOperator"] == "GreaterThanThreshold"
        assert alarm["period"] >= settings.sweep_interval_minutes * 60, "a period without a sweep has no data"


def test_any_api_5xx_alarms(dev: Deployment) -> None:
    """Regression: the API failing (a 5xx is a server fault by the contract) without anyone told."""
    alarm = alarms(dev)["api-5xx"]
    api = dev.one("aws:apigatewayv2/api:Api")
    stage = dev.one("aws:apigatewayv2/stage:Stage").inputs["name"]
    assert metric_of(alarm) == ("AWS/ApiGateway", "5xx", "Sum", {"ApiId": f"{api.name}-id", "Stage": stage})
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)


def test_the_alarm_email_is_subscribed_only_when_set(dev: Deployment, tuned: Deployment) -> None:
    """Regression: a subscription to an empty address (the deploy fails), or an address set but never mailed."""
    assert not dev.of_type("aws:sns/topicSubscription:TopicSubscription")
    subscription = tuned.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert (subscription["topic"], subscription["protocol"]) == (topic_arn(tuned), "email")
    assert subscription["endpoint"] == TUNED["alarmEmail"]


def filters(deployment: Deployment) -> dict[str, dict[str, Any]]:
    return {r.name.removeprefix("monitoring-"): r.inputs
            for r in deployment.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")}


def test_every_custom_metric_an_alarm_or_the_dashboard_reads_has_a_filter(dev: Deployment) -> None:
    """Regression: an alarm on a metric nothing publishes stays OK for ever."""
    published = {f["metricTransformation"]["name"] for f in filters(dev).values()}
    assert {f["metricTransformation"]["namespace"] for f in filters(dev).values()} == {NAMESPACE}
    read = {a["metricName"] for a in alarms(dev).values() if a["namespace"] == NAMESPACE}
    body = json.loads(dev.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    for widget in body["widgets"]:
        for metric in widget["properties"].get("metrics", []):
            if metric[0] == NAMESPACE:
                read.add(metric[1])
    assert read <= published, read - published
    assert {"JobsSubmitted", "JobsSucceeded", "JobsFailed", "JobsCancelled", "JobsQueued", "VmsAlive", "JobWaitSeconds",
            "JobRunSeconds", "OldestVmSeconds"} <= published


def test_metric_filters_read_the_log_groups_that_write_the_lines(dev: Deployment) -> None:
    """Regression: a filter on the wrong log group never matches (the sweep report is the sweeper's; job ends are
    logged by the launcher, which sees every job end once; submitted jobs are the stage's access log)."""
    groups = {r.name: r.outputs["name"] for r in dev.of_type("aws:cloudwatch/logGroup:LogGroup")}
    expected = {"access": groups["api-access-logs"], "launcher": groups["compute-launcher-logs"],
                "sweeper": groups["compute-sweeper-logs"]}
    found = filters(dev)
    assert len(found) == len(LOG_METRICS)
    for metric in LOG_METRICS:
        name = f"{re.sub(r'(?<!^)(?=[A-Z])', '-', metric.metric).lower()}-{metric.source}"
        assert found[name]["logGroupName"] == expected[metric.source], name
        assert found[name]["pattern"] == metric.pattern and found[name]["metricTransformation"]["value"] == metric.value


SUCCEEDED_LINE = {"level": "INFO", "message": "job finished", EVENT: JOB_FINISHED, "job_id": "V1StGXR8_Z5jdHi6B-myT",
                  "status": "SUCCEEDED", "wait_seconds": 12.5, "run_seconds": 30.1}
FAILED_AT_LAUNCH = {"level": "ERROR", "message": "job finished", EVENT: JOB_FINISHED, "job_id": "x", "status": "FAILED"}
CANCELLED_QUEUED = {"level": "INFO", "message": "job finished", EVENT: JOB_FINISHED, "job_id": "x",
                    "status": "CANCELLED"}
SWEEP_LINE = {"level": "INFO", "message": "sweep", EVENT: SWEEP_REPORT, "vms_alive": 2, "jobs_queued": 5,
              "oldest_vm_seconds": 301}
CREATED_ACCESS = {"routeKey": "POST /api/jobs", "status": "201", "latencyMs": "80"}


@pytest.mark.parametrize(("line", "metrics"), [
    (SUCCEEDED_LINE, {"JobsSucceeded", "JobWaitSeconds", "JobRunSeconds"}),
    (FAILED_AT_LAUNCH, {"JobsFailed"}),
    (CANCELLED_QUEUED, {"JobsCancelled"}),
    (SWEEP_LINE, {"VmsAlive", "JobsQueued", "OldestVmSeconds"}),
    (CREATED_ACCESS, {"JobsSubmitted"}),
    ({**CREATED_ACCESS, "status": "400"}, set()),
    ({**CREATED_ACCESS, "routeKey": "POST /api/uploads"}, set()),
])
def test_the_documented_log_lines_feed_exactly_their_metrics(line: dict[str, Any], metrics: set[str]) -> None:
    """Regression: a pattern that misses the line the handlers write (a field renamed, a status compared as a number
    when the access log writes a string), or that counts a refused job as submitted."""
    assert {m.metric for m in LOG_METRICS if matches(m.pattern, line)} == metrics


def test_the_dashboard_shows_jobs_queue_vms_and_phase_durations(dev: Deployment) -> None:
    """Regression: a dashboard widget pointing at another region, or one of the views operators asked for missing."""
    dashboard = dev.one("aws:cloudwatch/dashboard:Dashboard").inputs
    assert dashboard["dashboardName"] == WORKER_TAG
    body = json.loads(dashboard["dashboardBody"])
    titles = {w["properties"]["title"] for w in body["widgets"]}
    assert {"Alarms", "Jobs", "Queue depth", "VMs alive", "Phase durations (seconds)"} <= titles
    assert all(w["properties"]["region"] == REGION for w in body["widgets"] if w["type"] == "metric")
    [alarm_widget] = [w for w in body["widgets"] if w["type"] == "alarm"]
    arns = {r.outputs["arn"] for r in dev.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert set(alarm_widget["properties"]["alarms"]) == arns


def test_stack_outputs_name_the_topic_and_dashboard(dev: Deployment) -> None:
    assert dev.exports["alarmTopicArn"] == topic_arn(dev)
    assert dev.exports["dashboardName"] == WORKER_TAG


def test_stack_outputs_name_every_log_group(dev: Deployment) -> None:
    """Regression: an operator following a job (docs/deploy.md's Logs Insights query) without the groups' names."""
    groups = {r.name: r.outputs["name"] for r in dev.of_type("aws:cloudwatch/logGroup:LogGroup")}
    assert dev.exports["logGroups"] == {
        "upload": groups["api-upload-logs"], "jobs": groups["api-jobs-logs"], "manage": groups["api-manage-logs"],
        "launcher": groups["compute-launcher-logs"], "release": groups["compute-release-logs"],
        "sweeper": groups["compute-sweeper-logs"],
        "apiAccess": groups["api-access-logs"],
    }
    assert set(groups) == {"api-upload-logs", "api-jobs-logs", "api-manage-logs", "compute-launcher-logs",
                           "compute-release-logs",
                           "compute-sweeper-logs",
                           "api-access-logs"}
