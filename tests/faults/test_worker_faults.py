"""A worker that hangs or dies mid-job: the VM is powered off (its exit trap, the in-VM watchdog, or the sweeper
terminating it) and the job ends FAILED with a reason. The VMs run the real rendered user-data; the worker object
they download is the real worker made to hang at its first S3 read (after it moved the job to RUNNING)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import timedelta

import psutil
import pytest

from handlers import jobmodel, sweeper
from handlers.jobmodel import Status
from local.app import LocalPipeline
from local.vmhost import Ending, VmRun
from tests.faults.conftest import SETTINGS
from tests.faults.harness import (
    HANG_MARKER,
    assert_readable_sentence,
    get_job,
    hanging_worker_script,
    live_console,
    sweep,
    wait_for_status,
    worker_script,
)
from tests.local.harness import finished_run, gone, instance_state, signed_in
from tests.waiting import wait_for
from worker.userdata import render_user_data

pytestmark = pytest.mark.e2e

WATCHDOG_MINUTE_SECONDS = 6.0
"""How long a minute of `shutdown -h +N` lasts in the watchdog test: enough for the worker to reach RUNNING
(1.5 to 2 s here, on a busy 2-core machine) with room to spare."""
VANISHED = jobmodel.VANISHED_GRACE + timedelta(seconds=1)


@pytest.fixture
def hanging_worker(pipeline: LocalPipeline) -> Iterator[None]:
    with worker_script(pipeline, hanging_worker_script()):
        yield


def hung_job(pipeline: LocalPipeline, name: str) -> tuple[dict[str, str], VmRun]:
    """Submit a job and wait until its worker hangs mid-job: RUNNING, blocked reading its input."""
    job = signed_in(pipeline).submit(f"{name}.txt", name.encode(), name)
    running = wait_for_status(pipeline, job["id"], "RUNNING")
    assert pipeline.vmhost is not None
    run = pipeline.vmhost.runs[running["instance_id"]]
    wait_for(lambda: HANG_MARKER in live_console(run), 20, "the worker to hang")
    return running, run


def vm_processes(run: VmRun) -> list[psutil.Process]:
    assert run.process is not None
    root = psutil.Process(run.process.pid)
    return [root, *root.children(recursive=True)]


def worker_process(run: VmRun) -> psutil.Process:
    (worker,) = [p for p in vm_processes(run) if any(arg.endswith("/worker.py") for arg in p.cmdline())]
    return worker


def failed_after_sweep(pipeline: LocalPipeline, job_id: str) -> tuple[dict[str, str], sweeper.SweepReport]:
    """Run the sweeper once the VM has been gone longer than its grace: the job must then be FAILED with a reason."""
    report = sweep(pipeline, later=VANISHED)
    failed = get_job(pipeline, job_id)
    assert failed["status"] == "FAILED", failed
    assert_readable_sentence(failed["error"])
    return failed, report


@pytest.mark.usefixtures("hanging_worker")
def test_a_worker_killed_mid_job_powers_the_vm_off_and_the_job_fails(pipeline: LocalPipeline) -> None:
    job, run = hung_job(pipeline, "killed")
    processes = vm_processes(run)

    worker_process(run).send_signal(signal.SIGKILL)

    finished_run(pipeline, job["instance_id"])
    assert run.ending == Ending.SHUTDOWN, "the user-data's exit trap powered the VM off"
    assert f"exit status {128 + signal.SIGKILL}; powering off" in run.console
    assert instance_state(pipeline, job["instance_id"]) == "terminated"
    wait_for(lambda: gone(processes), 5, "the VM's processes to end")
    failed, report = failed_after_sweep(pipeline, job["id"])
    assert report.failed == [job["id"]], "a killed worker records nothing: the sweeper ends its job"
    assert "stopped before the job finished" in failed["error"]


@pytest.mark.usefixtures("hanging_worker")
def test_the_watchdog_powers_off_a_vm_whose_worker_hangs(pipeline: LocalPipeline,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert pipeline.vmhost is not None
    monkeypatch.setattr(pipeline.vmhost, "minute_seconds", WATCHDOG_MINUTE_SECONDS)
    timeout = WATCHDOG_MINUTE_SECONDS * SETTINGS.job_timeout_minutes
    job, run = hung_job(pipeline, "hangs")
    processes = vm_processes(run)

    finished_run(pipeline, job["instance_id"], timeout=timeout + 20)

    assert run.ending == Ending.WATCHDOG
    assert run.stopped - run.started >= timeout, "not before the job timeout"
    stack = pipeline.stack
    assert run.user_data == render_user_data(bucket=stack.bucket, table=stack.table,
                                             timeout_minutes=SETTINGS.job_timeout_minutes)
    assert f"power-off scheduled in {SETTINGS.job_timeout_minutes} minute(s)" in run.console
    assert HANG_MARKER in run.console
    assert instance_state(pipeline, job["instance_id"]) == "terminated"
    wait_for(lambda: gone(processes), 5, "the VM's processes to end")
    failed_after_sweep(pipeline, job["id"])


@pytest.mark.usefixtures("hanging_worker")
def test_the_sweeper_terminates_a_vm_past_the_job_timeout_and_fails_its_job(pipeline: LocalPipeline) -> None:
    """The watchdog did not fire (a minute lasts 60 s here): the sweeper is the last resort."""
    job, run = hung_job(pipeline, "overdue")
    processes = vm_processes(run)
    overdue = jobmodel.DEADLINES[Status.RUNNING].limit(SETTINGS.job_timeout_minutes) + timedelta(seconds=1)

    report = sweep(pipeline, later=overdue)

    assert report.terminated == [job["instance_id"]] and report.failed == [job["id"]]
    finished_run(pipeline, job["instance_id"])
    assert run.ending == Ending.TERMINATED
    assert instance_state(pipeline, job["instance_id"]) == "terminated"
    wait_for(lambda: gone(processes), 5, "the VM's processes to end")
    failed = get_job(pipeline, job["id"])
    assert failed["status"] == "FAILED"
    assert_readable_sentence(failed["error"])
    assert job["instance_id"] in failed["error"]
