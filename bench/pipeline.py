"""Pipeline latency: submit -> SUCCEEDED for one job at a time and for a burst at once, split into the phases the
job's own phase times mark; and the CPU one local VM (user-data + worker) spends on a job.

Everything goes over HTTP (submit as the form does, follow with `GET /api/jobs`), so the same code measures a
deployed stack. Locally the burst runs twice: with a cap above the burst (every job gets its VM at once) and
with the default cap (jobs wait for a place). Baselines: starting Python and importing boto3 (the least a VM
does) for one job and for a VM's CPU; one job alone for a job of a burst.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime

from bench.children import run_child
from bench.figures import Figure, figure
from bench.plan import BenchError, Plan
from bench.stacks import Stack, local_stack, remote_stack
from handlers.jobmodel import FINAL_STATES
from handlers.jobs import LIST_LIMIT
from local.client import ApiClient
from local.load import children_cpu, submit_all, wait_for_vms
from local.vmhost import vm_python

GROUP = "pipeline"
MARKS = ("created_at", "queued_at", "launching_at", "started_at", "finished_at")
"""The job's phase times in order; those a job lacks (QUEUED is optional, older stacks record fewer) are skipped."""
SUBMIT = "submit"
IMPORT_BOTO3 = "import boto3"
LOCAL_TIMEOUT = 300.0
REMOTE_TIMEOUT = 1800.0


def parse(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class Burst:
    """Jobs submitted at once and followed until final."""

    totals: list[float] = field(default_factory=list)
    """Submit (the client starting the upload) -> finished_at, per SUCCEEDED job, in seconds."""
    phases: dict[str, list[float]] = field(default_factory=dict)
    """`<mark> -> <next mark>` -> seconds per job (0 for a job that skipped an optional mark)."""
    vm_cpu_per_job: float | None = None


def job_phases(job: dict[str, str], submitted: float) -> dict[str, float]:
    marks = [(SUBMIT, submitted)] + [(mark, parse(job[mark])) for mark in MARKS if job.get(mark)]
    return {f"{a} → {b}": t2 - t1 for (a, t1), (b, t2) in itertools.pairwise(marks)}


def follow(stack: Stack, started: dict[str, float], timeout: float) -> dict[str, dict[str, str]]:
    """Poll `GET /api/jobs` (the user's newest jobs) until every job submitted is final."""
    client = ApiClient(stack.url, stack.token)
    deadline = time.monotonic() + timeout
    while True:
        listed = client.get("/api/jobs", params={"limit": LIST_LIMIT}).json()["jobs"]
        jobs = {job["id"]: job for job in listed if job["id"] in started}
        if len(jobs) == len(started) and all(job["status"] in FINAL_STATES for job in jobs.values()):
            return jobs
        if time.monotonic() > deadline:
            raise BenchError(f"{sum(j['status'] in FINAL_STATES for j in jobs.values())} of {len(started)} jobs "
                             f"final after {timeout:.0f} s")
        time.sleep(0.25)


def run_burst(stack: Stack, jobs: int, timeout: float) -> Burst:
    if jobs > LIST_LIMIT:
        raise ValueError(f"a burst is followed on one page of GET /api/jobs: at most {LIST_LIMIT} jobs")
    cpu_before = children_cpu()
    started, refused = submit_all(stack.url, stack.token, jobs, concurrency=jobs)
    if refused:
        raise BenchError(f"{len(refused)} of {jobs} submissions refused, e.g. {refused[0]} (a 429: the stack's "
                         "maxActiveJobsPerUser is below the burst)")
    final = follow(stack, started, timeout)
    burst = Burst()
    if stack.pipeline is not None:
        wait_for_vms(stack.pipeline, timeout=30)
        user, system = (after - before for after, before in zip(children_cpu(), cpu_before, strict=True))
        burst.vm_cpu_per_job = (user + system) / jobs
    failed = [job for job in final.values() if job["status"] != "SUCCEEDED"]
    if failed:
        raise BenchError(f"{len(failed)} of {jobs} jobs did not succeed, e.g. {failed[0].get('error')}")
    per_job = [job_phases(final[job_id], submitted) for job_id, submitted in started.items()]
    names = list(dict.fromkeys(name for phases in per_job for name in phases))
    burst.phases = {name: [phases.get(name, 0.0) for phases in per_job] for name in names}
    burst.totals = [parse(final[job_id]["finished_at"]) - submitted for job_id, submitted in started.items()]
    return burst


Runs = tuple[str, int, int]
"""(label, jobs at once, how many times)."""


def configurations(plan: Plan) -> list[tuple[AbstractContextManager[Stack], list[Runs]]]:
    """Each stack the plan measures, with its runs: one job alone first (the bursts' baseline), then the bursts."""
    single: Runs = ("1 job", 1, plan.single_job_runs)
    if plan.remote is not None:
        return [(remote_stack(plan.remote), [single, (f"{plan.burst_jobs} jobs at once", plan.burst_jobs, 1)])]
    high, default = plan.burst_caps
    return [
        (local_stack(default), [single, (f"{plan.burst_jobs} jobs at once, cap {default}", plan.burst_jobs, 1)]),
        (local_stack(high), [(f"{plan.burst_jobs} jobs at once, cap {high}", plan.burst_jobs, 1)]),
    ]


def measure(plan: Plan) -> list[Figure]:
    floor = [run_child([vm_python(), "-c", IMPORT_BOTO3]) for _ in range(plan.coldstart_runs)]  # the VMs' Python
    timeout = REMOTE_TIMEOUT if plan.remote else LOCAL_TIMEOUT
    figures: list[Figure] = []
    single: list[float] = []
    cpu: list[float] = []
    for stack, configured in configurations(plan):
        with stack as running:
            for label, jobs, times in configured:
                runs = [run_burst(running, jobs, timeout) for _ in range(times)]
                totals = [t for run in runs for t in run.totals]
                cpu += [run.vm_cpu_per_job for run in runs if run.vm_cpu_per_job is not None]
                baseline = [f.wall_seconds for f in floor] if jobs == 1 else statistics.median(single)
                single = single or totals
                figures.append(figure(f"{label}: submit → SUCCEEDED", "s", totals, baseline, group=GROUP,
                                      label=label, phase="total"))
                figures += phase_figures(label, runs)
    if cpu:
        figures.append(figure("VM CPU per job (user-data + worker)", "s", cpu, [f.cpu_seconds for f in floor],
                              group=GROUP, label="cpu"))
    return figures


def phase_figures(label: str, runs: Sequence[Burst]) -> list[Figure]:
    names = list(dict.fromkeys(name for run in runs for name in run.phases))
    return [figure(f"{label}: {name}", "s", [t for run in runs for t in run.phases.get(name, [])], None,
                   group=GROUP, label=label, phase=name) for name in names]
