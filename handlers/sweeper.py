"""Scheduled safety net: no VM outlives the job timeout, no job hangs in a non-final state, the queue keeps moving.

Every step is a conditional write or an idempotent call, so two sweeps at once (or a sweep racing the launcher or a
worker) cannot fail a finished job, free a slot twice or start a job twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from handlers import capacity, dispatch, jobmodel
from handlers.config import LauncherConfig
from handlers.instances import describe_instances, tags
from handlers.jobmodel import DEADLINES, Actor, Status
from handlers.services import (
    DISPATCH_CALLS,
    LauncherServices,
    deadline_of,
    function_timeout_seconds,
    launcher_services,
)

log = logging.getLogger(__name__)

SWEEP_SLOW_CALLS = 7
"""The steps of a sweep before it dispatches, each one AWS call that may be slow: find the VMs, terminate the
overdue, list LAUNCHING and RUNNING jobs, read the slots, list PENDING jobs, count the queue."""
TIMEOUT_SECONDS = function_timeout_seconds(
    DISPATCH_CALLS, SWEEP_SLOW_CALLS + dispatch.JOB_START_SLOW_CALLS, dispatch.LAUNCH_BACKOFF_SECONDS
)
"""The sweeper's Lambda timeout: one slow call in each step, then one job start at its slowest."""

SWEEP_REPORT_EVENT = "sweep_report"
"""`event` of the sweeper's one log line per sweep (`SweepReport.fields`); components/monitoring.py reads it."""


@dataclass
class SweepReport:
    terminated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    slots_freed: list[int] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    started: int = 0
    vms_alive: int = 0
    """This stack's VMs not terminated, as the sweep found them."""
    jobs_queued: int = 0
    """Jobs still QUEUED after the sweep started what it could."""
    oldest_vm_seconds: float = 0
    """Age (since its launch) of the oldest of those VMs still pending or running (0 with none): a VM already
    shutting down, stopping or stopped is on its way out, as the watchdog or the sweeper wanted."""

    def fields(self) -> dict[str, Any]:
        """The `sweep_report` log fields: what the sweep did, and the gauges the dashboard and alarms read."""
        return {"event": SWEEP_REPORT_EVENT, **asdict(self)}


def minutes(count: int) -> str:
    return f"{count} minute" if count == 1 else f"{count} minutes"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def stack_instances(ec2: Any, stack: str) -> dict[str, dict[str, Any]]:
    """Job id -> instance, for this stack's VMs that are not terminated."""
    filters = [
        {"Name": f"tag:{jobmodel.STACK_TAG}", "Values": [stack]},
        {"Name": "instance-state-name", "Values": list(jobmodel.VM_ALIVE_STATES)},
    ]
    found: dict[str, dict[str, Any]] = {}
    for instance in describe_instances(ec2, filters):
        job_id = tags(instance).get(jobmodel.JOB_ID_TAG)
        if job_id is not None:
            found[job_id] = instance
    return found


RUNNING_STATES = frozenset({"pending", "running"})
"""VM states in which a worker may still be running its job (not yet shutting down)."""


def oldest_running_seconds(instances: Iterable[Mapping[str, Any]], now: datetime) -> float:
    """Age since launch of the oldest VM still pending or running; 0 with none."""
    return max((round((now - i["LaunchTime"]).total_seconds(), 3) for i in instances
                if i.get("State", {}).get("Name") in RUNNING_STATES), default=0)


@dataclass
class Sweep:
    """One pass of the sweeper over this stack's VMs, jobs and slots."""

    services: LauncherServices
    now: datetime
    deadline: float | None = None
    """`time.monotonic()` when the invocation ends (None: no limit), for `dispatch.dispatch`."""
    report: SweepReport = field(default_factory=SweepReport)

    @property
    def ddb(self) -> Any:
        return self.services.ddb

    @property
    def config(self) -> LauncherConfig:
        return self.services.config

    def run(self) -> SweepReport:
        instances = stack_instances(self.services.ec2, self.config.stack_tag)
        self.report.vms_alive = len(instances)
        self.report.oldest_vm_seconds = oldest_running_seconds(instances.values(), self.now)
        self.terminate_overdue(instances)
        self.fail_orphans(instances)
        self.free_leaked_slots(instances)
        self.queue_forgotten()
        outcomes = dispatch.dispatch(self.services, deadline=self.deadline)
        self.report.started = outcomes.count(dispatch.Outcome.LAUNCHED)
        self.report.jobs_queued = jobmodel.count_in_state(self.ddb, self.config.table, Status.QUEUED)
        return self.report

    def fail(self, job_id: str, reason: str) -> None:
        moved = jobmodel.transition(self.ddb, self.config.table, job_id, Status.FAILED,
                                    expected=[Status.LAUNCHING, Status.RUNNING], by=Actor.SWEEPER,
                                    attrs={"error": reason})
        if moved is not None:
            log.warning("job failed by the sweeper", extra={"job_id": job_id, "reason": reason})
            self.report.failed.append(job_id)

    def terminate_overdue(self, instances: Mapping[str, dict[str, Any]]) -> None:
        """VMs older than the job timeout (plus time for the in-VM watchdog) are terminated, their jobs failed."""
        limit = DEADLINES[Status.RUNNING].limit(self.config.job_timeout_minutes)
        overdue = {job_id: i for job_id, i in instances.items() if self.now - i["LaunchTime"] > limit}
        if not overdue:
            return
        self.services.ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in overdue.values()])
        for job_id, instance in overdue.items():
            self.report.terminated.append(instance["InstanceId"])
            self.fail(job_id, f"The job did not finish within {minutes(self.config.job_timeout_minutes)}; "
                              f"its VM {instance['InstanceId']} was terminated.")

    def fail_orphans(self, instances: Mapping[str, dict[str, Any]]) -> None:
        """Fail LAUNCHING jobs whose VM never appeared and RUNNING jobs whose VM is gone."""
        for job in jobmodel.jobs_in_state(self.ddb, self.config.table, Status.LAUNCHING, limit=1000):
            grace = DEADLINES[Status.LAUNCHING].after
            if job["id"] not in instances and self.age(job) > grace:
                waited = minutes(int(grace.total_seconds() // 60))
                self.fail(job["id"], f"The job's VM never started; it was given up after {waited}.")
        for job in jobmodel.jobs_in_state(self.ddb, self.config.table, Status.RUNNING, limit=1000):
            if job["id"] not in instances and self.age(job) > jobmodel.VANISHED_GRACE:
                self.fail(job["id"], "The job's VM stopped before the job finished "
                                     "(the worker crashed, was killed, or reached the time limit).")

    def free_leaked_slots(self, instances: Mapping[str, dict[str, Any]]) -> None:
        """Give back slots whose holder can no longer need them (a VM's termination event may have been lost).

        A holder back in the queue, or a finished or missing holder with no VM alive, needs no slot; a LAUNCHING or
        RUNNING holder keeps it (its VM may not be visible yet; `fail_orphans` deals with it). A missing holder whose
        VM is still alive keeps it too: the API deletes only jobs whose VM is gone, but should a job's item vanish
        while its VM lives, the slot is that VM's, and freeing it would let one VM too many run.
        """
        table = self.config.table
        for lease in capacity.leases(self.ddb, table, self.config.max_concurrent_vms):
            status = (jobmodel.read_job(self.ddb, table, lease.job_id) or {}).get("status")
            over = status is None or status in jobmodel.FINAL_STATES
            leaked = status in (Status.PENDING, Status.QUEUED) or (over and lease.job_id not in instances)
            if leaked and capacity.release(self.ddb, table, lease.job_id, lease.slot):
                self.report.slots_freed.append(lease.slot)

    def queue_forgotten(self) -> None:
        """Queue PENDING jobs whose INSERT record never reached the launcher (retries exhausted, sent to SQS)."""
        for job in jobmodel.jobs_in_state(self.ddb, self.config.table, Status.PENDING, limit=1000):
            if self.age(job) > DEADLINES[Status.PENDING].after and jobmodel.transition(
                self.ddb, self.config.table, job["id"], Status.QUEUED, expected=[Status.PENDING], by=Actor.SWEEPER
            ):
                log.warning("job was still PENDING: queued by the sweeper", extra={"job_id": job["id"]})
                self.report.queued.append(job["id"])

    def age(self, job: Mapping[str, str]) -> timedelta:
        """Time since the job last changed state."""
        return self.now - parse_time(job["updated_at"])


def sweep(services: LauncherServices, now: datetime | None = None, deadline: float | None = None) -> SweepReport:
    report = Sweep(services, now or datetime.now(UTC), deadline).run()
    log.info("sweep done", extra=report.fields())
    return report


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    return asdict(sweep(launcher_services(), deadline=deadline_of(context)))
