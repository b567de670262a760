"""Monitoring: an alarm topic (optionally mailed), CloudWatch alarms on what needs a person, and a dashboard.

Job metrics come from CloudWatch Logs metric filters, not a metrics pipeline: a filter turns matching JSON log lines
of a log group into a metric in this deployment's namespace. What each filter matches is below (`LOG_METRICS`):

- jobs submitted: the API stage's access log, a `201` to `POST /api/jobs` (no handler change needed);
- jobs succeeded / failed / cancelled and the phase durations: the launcher's `job_finished` line, written once
  per job when the finished job's stream record releases its owner's quota (`handlers.launcher.release_quota`),
  whoever finished it (worker, launcher, sweeper or its owner);
- VMs alive, queued jobs, the oldest VM's age: the sweeper's `sweep_report` line, once per sweep.

The two handler lines are JSON log records (the Lambda JSON log format puts `logging`'s `extra` fields at the top
level) with these fields: `event`, and for `job_finished` `job_id`, `status` (`SUCCEEDED` | `FAILED` | `CANCELLED`)
and, when the job got that far, `wait_seconds` (created -> started) and `run_seconds` (started -> finished); for
`sweep_report` `vms_alive`, `jobs_queued`, `oldest_vm_seconds` (0 with no VM). A metric shows no data until its line
is written.
`tests/runtime/test_log_lines.py` runs the handlers and applies these patterns to the lines they write.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from handlers.jobmodel import DEADLINES, JOB_FINISHED_EVENT, Status
from handlers.routes import ROUTES
from handlers.sweeper import SWEEP_REPORT_EVENT
from stackspec.settings import FAILED_JOBS_WINDOW_MINUTES, StackSettings

EVENT = "event"
JOB_FINISHED = JOB_FINISHED_EVENT
SWEEP_REPORT = SWEEP_REPORT_EVENT
CREATE_JOB_ROUTE = next(route.key for route in ROUTES if route.method == "POST" and route.path == "/api/jobs")
PERIOD_SECONDS = 300
API_STAGE = "$default"


@dataclass(frozen=True)
class LogMetric:
    """A metric taken from log lines: `pattern` selects the lines of `source`, `value` is 1 or a `$.field`."""

    metric: str
    source: str
    pattern: str
    value: str = "1"
    unit: str = "Count"


def _finished(status: str) -> str:
    return f'{{ ($.{EVENT} = "{JOB_FINISHED}") && ($.status = "{status}") }}'


def _field_of(event: str, field: str) -> str:
    # A metric value taken from a field needs the field in the pattern (`= *` matches any value).
    return f'{{ ($.{EVENT} = "{event}") && ($.{field} = *) }}'


LOG_METRICS: tuple[LogMetric, ...] = (
    LogMetric("JobsSubmitted", "access", f'{{ ($.routeKey = "{CREATE_JOB_ROUTE}") && ($.status = "201") }}'),
    *(LogMetric(f"Jobs{status.title()}", "launcher", _finished(status))
      for status in ("SUCCEEDED", "FAILED", "CANCELLED")),
    *(LogMetric(metric, "launcher", _field_of(JOB_FINISHED, field), f"$.{field}", "Seconds")
      for metric, field in (("JobWaitSeconds", "wait_seconds"), ("JobRunSeconds", "run_seconds"))),
    *(LogMetric(metric, "sweeper", _field_of(SWEEP_REPORT, field), f"$.{field}", unit)
      for metric, field, unit in (("VmsAlive", "vms_alive", "Count"), ("JobsQueued", "jobs_queued", "Count"),
                                  ("OldestVmSeconds", "oldest_vm_seconds", "Seconds"))),
)
"""Every metric filter, by the log group it reads: `access` (API stage), `launcher`, `sweeper`."""


@dataclass
class MonitoringArgs:
    stack_tag: pulumi.Input[str]
    """This deployment's unique tag value: the metric namespace and dashboard name are made from it."""
    log_groups: dict[str, pulumi.Input[str]]
    """Log group names by `LogMetric.source`: `access`, `launcher`, `sweeper`."""
    launcher_function: pulumi.Input[str]
    sweeper_function: pulumi.Input[str]
    release_function: pulumi.Input[str]
    """The slot release function (a terminated VM's slot back, the queue moved)."""
    failure_queue: pulumi.Input[str]
    """Name of the launcher's on-failure SQS queue."""
    api_id: pulumi.Input[str]
    settings: StackSettings


class Monitoring(pulumi.ComponentResource):
    """`topic` receives every alarm's changes (and mails `alarm_email` if set); `dashboard` shows the pipeline."""

    topic: aws.sns.Topic
    alarms: dict[str, aws.cloudwatch.MetricAlarm]
    dashboard: aws.cloudwatch.Dashboard
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("filepipe:monitoring:Monitoring", name, None, opts)
        self._name = name
        child = pulumi.ResourceOptions(parent=self)
        self.namespace = pulumi.Output.concat("filepipe/", args.stack_tag)
        self.topic = aws.sns.Topic(f"{name}-alarms", opts=child)
        if args.settings.alarm_email:
            aws.sns.TopicSubscription(
                f"{name}-alarm-email", topic=self.topic.arn, protocol="email", endpoint=args.settings.alarm_email,
                opts=child,
            )
        for log_metric in LOG_METRICS:
            aws.cloudwatch.LogMetricFilter(
                f"{name}-{slug(log_metric.metric)}-{log_metric.source}",
                log_group_name=args.log_groups[log_metric.source],
                pattern=log_metric.pattern,
                metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                    name=log_metric.metric, namespace=self.namespace, value=log_metric.value, unit=log_metric.unit,
                ),
                opts=child,
            )
        self.alarms = {key: self._alarm(key, **spec) for key, spec in alarm_specs(args, self.namespace).items()}
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=pulumi.Output.from_input(args.stack_tag).apply(dashboard_name),
            dashboard_body=pulumi.Output.all(
                region=region, namespace=self.namespace, args=_resolved(args),
                alarms=[alarm.arn for alarm in self.alarms.values()],
            ).apply(lambda v: json.dumps(dashboard_body(v["region"], v["namespace"], v["args"], v["alarms"],
                                                        args.settings))),
            opts=child,
        )
        self.register_outputs({"topic": self.topic.arn, "dashboard": self.dashboard.dashboard_name})

    def _alarm(self, key: str, **spec: Any) -> aws.cloudwatch.MetricAlarm:
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-{key}",
            alarm_actions=[self.topic.arn],
            ok_actions=[self.topic.arn],
            evaluation_periods=1,
            treat_missing_data="notBreaching",
            opts=pulumi.ResourceOptions(parent=self),
            **spec,
        )


def alarm_specs(args: MonitoringArgs, namespace: pulumi.Input[str]) -> dict[str, dict[str, Any]]:
    """Each alarm's metric, statistic, period and threshold, by key (the alarm is named `<component>-<key>`)."""
    settings = args.settings
    any_in = {"comparison_operator": "GreaterThanThreshold", "threshold": 0, "period": PERIOD_SECONDS}
    errors = {"namespace": "AWS/Lambda", "metric_name": "Errors", "statistic": "Sum", **any_in}
    return {
        "failure-queue": {
            "alarm_description": "A stream batch of new jobs was given up on (on-failure queue); its jobs wait for "
                                 "the sweeper. Read the message, then purge it.",
            "namespace": "AWS/SQS", "metric_name": "ApproximateNumberOfMessagesVisible", "statistic": "Maximum",
            "dimensions": {"QueueName": args.failure_queue}, **any_in,
        },
        "launcher-errors": {
            "alarm_description": "The launcher failed (see its log group): new jobs or freed VM slots wait.",
            "dimensions": {"FunctionName": args.launcher_function}, **errors,
        },
        "release-errors": {
            "alarm_description": "The slot release function failed (see its log group): a terminated VM's slot may "
                                 "stay taken and queued jobs wait for the sweeper.",
            "dimensions": {"FunctionName": args.release_function}, **errors,
        },
        "sweeper-errors": {
            "alarm_description": "The sweeper failed (see its log group): overdue VMs and stuck jobs are not "
                                 "cleaned up.",
            "dimensions": {"FunctionName": args.sweeper_function}, **errors,
        },
        "failed-jobs": {
            "alarm_description": f"More than {settings.failed_jobs_alarm_threshold} jobs failed within "
                                 f"{FAILED_JOBS_WINDOW_MINUTES} minutes; their `error` says why.",
            "namespace": namespace, "metric_name": "JobsFailed", "statistic": "Sum",
            "comparison_operator": "GreaterThanThreshold", "threshold": settings.failed_jobs_alarm_threshold,
            "period": FAILED_JOBS_WINDOW_MINUTES * 60,
        },
        "vm-overdue": {
            "alarm_description": f"A worker VM still running {overdue_seconds(settings) // 60} minutes after its "
                                 f"launch (the job timeout, {settings.job_timeout_minutes} minutes, plus the time "
                                 f"the in-VM watchdog has to power it off): the watchdog did not. The sweeper "
                                 f"terminates it; find out why.",
            "namespace": namespace, "metric_name": "OldestVmSeconds", "statistic": "Maximum",
            "comparison_operator": "GreaterThanThreshold", "threshold": overdue_seconds(settings),
            "period": max(PERIOD_SECONDS, settings.sweep_interval_minutes * 60),
        },
        "api-5xx": {
            "alarm_description": "The API answered 5xx (a server fault, never a client mistake): see the API "
                                 "functions' logs.",
            "namespace": "AWS/ApiGateway", "metric_name": "5xx", "statistic": "Sum",
            "dimensions": {"ApiId": args.api_id, "Stage": API_STAGE}, **any_in,
        },
    }


def overdue_seconds(settings: StackSettings) -> int:
    """When a VM is overdue, counted from its launch: the sweeper's own limit (`DEADLINES[RUNNING]`: the job timeout
    the watchdog's `shutdown -h +N` counts down from boot, plus time for the boot and the power-off), so the alarm
    fires for the VMs the sweeper terminates, not for one the watchdog is still powering off."""
    return int(DEADLINES[Status.RUNNING].limit(settings.job_timeout_minutes).total_seconds())


def slug(metric: str) -> str:
    """`JobsFailed` -> `jobs-failed`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", metric).lower()


def dashboard_name(stack_tag: str) -> str:
    """A dashboard name may hold letters, digits, `-` and `_` only; a stack name may also hold `.`."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", stack_tag)


def _resolved(args: MonitoringArgs) -> pulumi.Output[dict[str, str]]:
    return pulumi.Output.all(
        launcher=args.launcher_function, sweeper=args.sweeper_function, release=args.release_function,
        queue=args.failure_queue, api=args.api_id,
    )


def _metric_widget(title: str, region: str, metrics: list[list[Any]], **properties: Any) -> dict[str, Any]:
    return {"type": "metric", "width": 12, "height": 6,
            "properties": {"title": title, "region": region, "metrics": metrics, "period": PERIOD_SECONDS,
                           "view": "timeSeries", **properties}}


def dashboard_body(
    region: str, namespace: str, names: dict[str, str], alarms: list[str], settings: StackSettings
) -> dict[str, Any]:
    """Jobs submitted/succeeded/failed/cancelled, queue depth, VMs alive, phase durations, the functions' errors,
    alarms."""
    stat = {"stat": "Sum"}
    return {"widgets": [
        {"type": "alarm", "width": 24, "height": 3, "properties": {"title": "Alarms", "alarms": alarms}},
        _metric_widget("Jobs", region, [
            [namespace, "JobsSubmitted", stat], [namespace, "JobsSucceeded", stat], [namespace, "JobsFailed", stat],
            [namespace, "JobsCancelled", stat],
        ]),
        _metric_widget("Queue depth", region, [
            [namespace, "JobsQueued", {"stat": "Maximum", "label": "jobs QUEUED (per sweep)"}],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", names["queue"],
             {"stat": "Maximum", "label": "stream batches given up on"}],
        ]),
        _metric_widget("VMs alive", region, [[namespace, "VmsAlive", {"stat": "Maximum"}]],
                       annotations={"horizontal": [{"label": "maxConcurrentVms",
                                                    "value": settings.max_concurrent_vms}]}),
        _metric_widget("Phase durations (seconds)", region, [
            [namespace, "JobWaitSeconds", {"stat": "p50", "label": "wait p50 (created -> started)"}],
            [namespace, "JobWaitSeconds", {"stat": "p90", "label": "wait p90"}],
            [namespace, "JobRunSeconds", {"stat": "p50", "label": "run p50 (started -> finished)"}],
            [namespace, "JobRunSeconds", {"stat": "p90", "label": "run p90"}],
        ]),
        _metric_widget("Errors", region, [
            ["AWS/Lambda", "Errors", "FunctionName", names["launcher"], stat],
            ["AWS/Lambda", "Errors", "FunctionName", names["sweeper"], stat],
            ["AWS/Lambda", "Errors", "FunctionName", names["release"], stat],
            ["AWS/ApiGateway", "5xx", "ApiId", names["api"], "Stage", API_STAGE, stat],
        ]),
    ]}
