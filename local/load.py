"""`make load`: submit many jobs at once to a local stack and report what became of them.

Reports how many jobs SUCCEEDED, failed, were lost (accepted but never final) or duplicated (more than one VM or
output for one job), the most worker VMs alive at once (sampled from the emulator), submit -> SUCCEEDED latency, and
the CPU time the local VMs used per job (user + system time of every user-data process tree, from the resource
usage of this process's waited-for children: the moto server, also a child, is not waited for until the end).
"""

from __future__ import annotations

import argparse
import logging
import resource
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from handlers.instances import describe_instances, tags
from handlers.jobmodel import FINAL_STATES, JOB_ID_TAG, OUTPUT_PREFIX, VM_ALIVE_STATES, from_dynamodb, log_key
from local.app import LocalPipeline
from local.client import ApiClient, SubmitError, access_token
from stackspec.settings import StackSettings


@dataclass
class LoadReport:
    jobs: int
    cap: int
    submitted: int = 0
    refused: list[str] = field(default_factory=list)
    succeeded: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    max_vms_alive: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    vm_cpu_seconds: tuple[float, float] = (0.0, 0.0)
    """User and system CPU time of all the local VMs' processes together."""

    def vm_cpu_per_job(self) -> str:
        user, system = (value / max(1, self.submitted) for value in self.vm_cpu_seconds)
        return f"{user + system:.2f} s ({user:.2f} s user + {system:.2f} s system)"

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

    def lines(self) -> list[str]:
        return [
            f"jobs submitted:        {self.submitted}/{self.jobs} (refused: {len(self.refused)})",
            f"SUCCEEDED:             {self.succeeded}/{self.submitted}",
            f"FAILED:                {len(self.failed)}",
            f"lost (never final):    {len(self.lost)}",
            f"duplicated:            {len(self.duplicated)}",
            f"max VMs alive at once: {self.max_vms_alive} (cap {self.cap})",
            f"submit -> SUCCEEDED:   p50 {self.percentile(0.5):.1f} s, p95 {self.percentile(0.95):.1f} s, "
            f"max {max(self.latencies, default=float('nan')):.1f} s",
            f"wall time:             {self.seconds:.1f} s",
            f"VM CPU per job:        {self.vm_cpu_per_job()}",
        ]


def alive_instances(ec2: Any) -> list[str]:
    """Ids of the job VMs that exist now (every state that counts against the cap)."""
    filters = [
        {"Name": "tag-key", "Values": [JOB_ID_TAG]},
        {"Name": "instance-state-name", "Values": list(VM_ALIVE_STATES)},
    ]
    return sorted(i["InstanceId"] for i in describe_instances(ec2, filters))


class VmSampler:
    """Counts the job VMs alive in the emulator every `interval` seconds, in a background thread."""

    def __init__(self, ec2: Any, interval: float = 0.05) -> None:
        self.ec2 = ec2
        self.interval = interval
        self.samples = 0
        self.maximum = 0
        self.worst: list[str] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vm-sampler", daemon=True)

    def __enter__(self) -> VmSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                alive = alive_instances(self.ec2)
            except Exception:  # a sample lost to a busy emulator is only a sample
                self.errors += 1
                continue
            self.samples += 1
            if len(alive) > self.maximum:
                self.maximum, self.worst = len(alive), alive


def submit_all(url: str, token: str, count: int, concurrency: int) -> tuple[dict[str, float], list[str]]:
    """Submit `count` jobs from `concurrency` threads as one signed-in user; return job id -> submit time, and
    refusals."""
    started: dict[str, float] = {}
    refused: list[str] = []
    local = threading.local()

    def one(index: int) -> None:
        client = getattr(local, "client", None) or ApiClient(url, token)
        local.client = client
        begun = time.time()
        try:
            job = client.submit(f"load-{index}.txt", f"input {index}\n".encode(), f"text {index}")
        except (SubmitError, requests.RequestException) as err:
            refused.append(f"job {index}: {err}")
            return
        started[job["id"]] = begun

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(count)))
    return started, refused


def final_items(pipeline: LocalPipeline, ids: set[str]) -> dict[str, dict[str, str]]:
    items: dict[str, dict[str, str]] = {}
    for page in pipeline.client("dynamodb").get_paginator("scan").paginate(TableName=pipeline.stack.table):
        for raw in page["Items"]:
            item = from_dynamodb(raw)
            if item.get("id") in ids:
                items[item["id"]] = item
    return items


def wait_until_final(pipeline: LocalPipeline, ids: set[str], timeout: float, progress: bool) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        items = final_items(pipeline, ids)
        done = sum(1 for item in items.values() if item.get("status") in FINAL_STATES)
        if progress:
            counts = Counter(item.get("status") for item in items.values())
            print(f"  {done}/{len(ids)} final  " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
                  file=sys.stderr, flush=True)
        if done == len(ids) or time.monotonic() > deadline:
            return items
        time.sleep(1.0 if progress else 0.3)


def duplicates(pipeline: LocalPipeline, ids: set[str]) -> list[str]:
    """Jobs with more than one VM ever started, or more than one output object."""
    vms: Counter[str] = Counter()
    for instance in describe_instances(pipeline.client("ec2"), [{"Name": "tag-key", "Values": [JOB_ID_TAG]}]):
        vms[tags(instance)[JOB_ID_TAG]] += 1
    outputs: Counter[str] = Counter()
    s3 = pipeline.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=pipeline.stack.bucket, Prefix=OUTPUT_PREFIX):
        for obj in page.get("Contents", []):
            job_id = obj["Key"].split("/")[1]
            if obj["Key"] != log_key(job_id):
                outputs[job_id] += 1
    return sorted(j for j in ids if vms[j] > 1 or outputs[j] > 1)


LOAD_USER = "load@example.com"


def load_settings(jobs: int, cap: int) -> StackSettings:
    """A stack for a load run: `cap` VMs at once, and one user allowed all `jobs` at once and their uploads (the
    run measures the pipeline; the per-user limits have their own tests)."""
    return StackSettings(max_concurrent_vms=cap, max_active_jobs_per_user=max(jobs, 1),
                         upload_grants_per_hour=max(jobs, 1))


def children_cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def wait_for_vms(pipeline: LocalPipeline, timeout: float) -> None:
    """Until every local VM's processes are gone (a job is final a moment before its VM has powered off)."""
    assert pipeline.vmhost is not None
    deadline = time.monotonic() + timeout
    for run in list(pipeline.vmhost.runs.values()):
        run.finished.wait(max(0.0, deadline - time.monotonic()))


def run_load(pipeline: LocalPipeline, jobs: int, concurrency: int, timeout: float,
             progress: bool = False) -> LoadReport:
    report = LoadReport(jobs=jobs, cap=pipeline.settings.max_concurrent_vms)
    began = time.monotonic()
    cpu_before = children_cpu()
    with VmSampler(pipeline.client("ec2")) as sampler:
        user = pipeline.create_user(LOAD_USER)
        token = access_token(pipeline.url, user.email, user.password)
        started, report.refused = submit_all(pipeline.url, token, jobs, concurrency)
        report.submitted = len(started)
        items = wait_until_final(pipeline, set(started), timeout, progress)
    report.max_vms_alive = sampler.maximum
    report.seconds = time.monotonic() - began
    wait_for_vms(pipeline, timeout=30)
    cpu_after = children_cpu()
    report.vm_cpu_seconds = (cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1])
    for job_id in started:
        item = items.get(job_id, {})
        if item.get("status") == "SUCCEEDED":
            report.succeeded += 1
            finished = datetime.fromisoformat(item["finished_at"].replace("Z", "+00:00"))
            report.latencies.append((finished - datetime.fromtimestamp(started[job_id], UTC)).total_seconds())
        elif item.get("status") == "FAILED":
            report.failed[job_id] = item.get("error", "")
        else:
            report.lost.append(job_id)
    report.duplicated = duplicates(pipeline, set(started))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Submit many jobs at once to a local filepipe stack.")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--cap", type=int, default=4, help="maxConcurrentVms")
    parser.add_argument("--concurrency", type=int, default=50, help="submitting threads")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for every job to end")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the local stack (moto server, VMs) is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    settings = load_settings(args.jobs, args.cap)
    print(f"filepipe load: {args.jobs} jobs from {args.concurrency} threads, cap {args.cap} VMs", flush=True)
    with LocalPipeline(port=0, settings=settings) as pipeline:
        report = run_load(pipeline, args.jobs, args.concurrency, args.timeout, progress=True)
    print("\n".join(report.lines()))
    for problem in [*report.refused[:5], *list(report.failed.values())[:5]]:
        print(f"  e.g. {problem}")
    ok = report.succeeded == args.jobs and not report.lost and not report.duplicated
    return 0 if ok and report.max_vms_alive <= args.cap else 1


if __name__ == "__main__":
    sys.exit(main())
