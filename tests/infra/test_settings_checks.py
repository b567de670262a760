"""Checks `StackSettings` makes for the Pulumi program and local mode alike, before anything is created."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stackspec.settings import NO_RESERVATION, StackSettings, settings_from_mapping
from tests.infra.conftest import ROOT, stack_config


@pytest.mark.parametrize("days", [1, 7, 14, 30, 365, 3653])
def test_log_retention_accepts_what_cloudwatch_accepts(days: int) -> None:
    assert settings_from_mapping({"logRetentionDays": str(days)}).log_retention_days == days


@pytest.mark.parametrize("days", [2, 10, 15, 366, 5000])
def test_log_retention_refuses_what_cloudwatch_refuses(days: int) -> None:
    """Regression: `logRetentionDays=10` passes a plain range check but CloudWatch rejects it mid-deploy (and local
    mode, which never talks to CloudWatch, would accept a stack config AWS refuses)."""
    with pytest.raises(ValueError, match=r"logRetentionDays must be one of 1, 3, 5, 7, 14, 30.*got " + str(days)):
        settings_from_mapping({"logRetentionDays": str(days)})


@pytest.mark.parametrize("key", ["apiReservedConcurrency", "launcherReservedConcurrency"])
@pytest.mark.parametrize(("value", "ok"), [("1", True), ("50", True), (str(NO_RESERVATION), True), ("0", False),
                                           ("-2", False)])
def test_reserved_concurrency_is_positive_or_none(key: str, value: str, ok: bool) -> None:
    """Regression: a reservation of 0 deploys fine and then throttles every request to that function."""
    if ok:
        settings_from_mapping({key: value})
    else:
        with pytest.raises(ValueError, match=f"{key} must be at least 1, or -1 for no reservation"):
            settings_from_mapping({key: value})


@pytest.mark.parametrize(("value", "ok"), [("1", True), ("2", True), ("60", True), ("0", False), ("61", False)])
def test_sweep_interval_is_between_a_minute_and_an_hour(value: str, ok: bool) -> None:
    """Regression: EventBridge's finest rate is one minute; a sweep rarer than hourly leaves stuck jobs and leaked
    VM slots (a stalled queue) for too long to call it a safety net."""
    if ok:
        assert settings_from_mapping({"sweepIntervalMinutes": value}).sweep_interval_minutes == int(value)
    else:
        with pytest.raises(ValueError, match="sweepIntervalMinutes must be between 1 and 60"):
            settings_from_mapping({"sweepIntervalMinutes": value})


def test_settings_import_without_pulumi() -> None:
    """Regression: local mode imports its limits, stream filters and network layout from `stackspec.settings`;
    if that module (or what it imports) pulled in Pulumi, `make dev` would need the Pulumi SDK and its startup cost."""
    code = "import sys, stackspec.settings; sys.exit('pulumi' in sys.modules or 'pulumi_aws' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr or "stackspec.settings imported pulumi"


@pytest.mark.parametrize(("value", "ok"), [("ops@example.org", True), ("", True), ("ops", False),
                                           ("a@example.org, b@example.org", False), ("a b@example.org", False)])
def test_alarm_email_is_one_address_or_none(value: str, ok: bool) -> None:
    """Regression: a typo or a list in `alarmEmail` that SNS rejects only at deploy time, after the alarms exist."""
    if ok:
        assert settings_from_mapping({"alarmEmail": value}).alarm_email == value
    else:
        with pytest.raises(ValueError, match="alarmEmail must be one e-mail address"):
            settings_from_mapping({"alarmEmail": value})


def test_failed_jobs_alarm_threshold_is_not_negative() -> None:
    """Regression: a negative threshold makes the alarm fire on any period with a data point, even 0 failed jobs."""
    assert settings_from_mapping({"failedJobsAlarmThreshold": "0"}).failed_jobs_alarm_threshold == 0
    with pytest.raises(ValueError, match="failedJobsAlarmThreshold must be at least 0"):
        settings_from_mapping({"failedJobsAlarmThreshold": "-1"})


def test_a_stack_that_protects_its_data_needs_an_alarm_email() -> None:
    """Regression: a production stack (`protectData`) whose alarms (failed jobs, overdue VMs, function errors) go to
    a topic nobody reads; it must refuse to deploy, saying why."""
    with pytest.raises(ValueError, match="protectData is true but alarmEmail is empty: a stack that keeps users' "
                                         "data must tell someone when its alarms go off"):
        settings_from_mapping({"protectData": "true"})
    assert settings_from_mapping({"protectData": "true", "alarmEmail": "ops@example.org"}).protect_data
    assert not settings_from_mapping({"protectData": "false"}).alarm_email, "a disposable stack needs none"


def test_the_committed_prod_stack_refuses_to_deploy_until_its_operator_sets_an_alarm_email() -> None:
    """Pulumi.prod.yaml holds no address of ours: `pulumi up` on it stops with the sentence, before any resource."""
    config = stack_config("prod")
    assert "filepipe:alarmEmail" not in config
    with pytest.raises(ValueError, match="set alarmEmail to an address that is read"):
        StackSettings.from_config(lambda key: config.get(f"filepipe:{key}"))
