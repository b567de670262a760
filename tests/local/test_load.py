"""A small load run in every test pass: many jobs at once, a cap of 2 VMs, nothing lost or doubled."""

from __future__ import annotations

from dataclasses import replace

import pytest

from local.app import LocalPipeline
from local.load import load_settings, run_load

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

JOBS = 40
CAP = 2


def test_forty_jobs_with_a_cap_of_two_lose_nothing_double_nothing_and_hold_the_cap() -> None:
    with LocalPipeline(port=0, settings=replace(load_settings(JOBS, CAP), max_file_mb=1)) as pipeline:
        report = run_load(pipeline, jobs=JOBS, concurrency=10, timeout=240)
    print("\n".join(report.lines()))

    assert report.refused == []
    assert report.lost == [], "accepted jobs that never ended"
    assert report.duplicated == [], "jobs with more than one VM or output"
    assert report.failed == {}
    assert report.succeeded == JOBS
    assert 1 <= report.max_vms_alive <= CAP, f"{report.max_vms_alive} VMs alive at once with a cap of {CAP}"
    assert len(report.latencies) == JOBS and min(report.latencies) > 0
