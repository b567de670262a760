"""Fault injection for the local pipeline: duplicate stream deliveries, a failing RunInstances, a hanging worker,
and a sampler of the VMs alive in the emulator.

Everything here acts from outside the production code: it wraps what the stream poller calls, wraps the EC2 client
the launcher module uses, or replaces the worker object the VMs download at boot.
"""

from __future__ import annotations

import copy
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from handlers import capacity, sweeper
from handlers.instances import describe_instances
from handlers.jobmodel import JOB_ID_TAG
from local.app import LocalPipeline
from local.load import alive_instances
from local.streams import LambdaHandler
from local.vmhost import VmRun
from tests.local.harness import signed_in
from tests.runtime import jobs
from tests.waiting import wait_for
from worker.userdata import WORKER_PATH, WORKER_SCRIPT_KEY

"""Instance states that count against the cap: the sweeper's own list (pending, running, shutting-down, stopping,
stopped)."""


# -- duplicate deliveries --------------------------------------------------------------------------------------------
@dataclass
class Deliveries:
    """What the stream poller calls instead of the launcher: records every batch and can deliver it more than once.

    `copies` > 1 delivers each batch once, then `copies - 1` more times concurrently (two launchers racing on the
    same records, as Lambda may run a retried batch while a slow first invocation still works). `replay_previous`
    delivers the previous batch again before each new one: a late duplicate reaching the launcher while its job is
    already launching, running or done.
    """

    copies: int = 1
    replay_previous: bool = False
    hold_finished: threading.Event | None = None
    """When set to an event, a batch with a finished job's record (MODIFY) waits for it before it reaches the
    launcher: the job stays counted against its owner until the test lets the release through."""
    held_delivered: int = 0
    """Held batches the launcher has handled since."""
    drop_new: bool = False
    """New jobs' records (INSERT) are lost on the way: the jobs stay PENDING until a sweep queues them."""
    handler: LambdaHandler | None = None
    batches: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, handler: LambdaHandler) -> LambdaHandler:
        self.handler = handler
        return self.deliver

    def reset(self) -> None:
        if self.hold_finished is not None:
            self.hold_finished.set()  # never leave the stream poller waiting
        self.copies, self.replay_previous, self.hold_finished, self.held_delivered = 1, False, None, 0
        self.drop_new = False
        with self._lock:
            self.batches.clear()
            self.calls = 0

    def deliver(self, event: Mapping[str, Any], context: object) -> Any:
        if self.drop_new:
            event = {**event, "Records": [r for r in event.get("Records", []) if r.get("eventName") != "INSERT"]}
        hold = self.hold_finished
        if hold is not None and any(r.get("eventName") == "MODIFY" for r in event.get("Records", [])):
            assert hold.wait(HOLD_LIMIT_SECONDS), "a held stream batch was never let through"
            answer = self.deliver_now(event, context)
            self.held_delivered += 1
            return answer
        return self.deliver_now(event, context)

    def deliver_now(self, event: Mapping[str, Any], context: object) -> Any:
        with self._lock:
            previous = self.batches[-1] if self.batches else None
            self.batches.append(copy.deepcopy(dict(event)))
        if self.replay_previous and previous is not None:
            self._call(previous, context)
        first = self._call(event, context)
        if self.copies <= 1:
            return first
        with ThreadPoolExecutor(max_workers=self.copies - 1) as pool:
            others = list(pool.map(lambda _: self._call(event, context), range(self.copies - 1)))
        return merged_failures([first, *others])

    def replay_all(self, copies: int = 1) -> None:
        """Deliver every batch seen so far again, `copies` times (from the calling thread)."""
        with self._lock:
            batches = list(self.batches)
        for batch in batches:
            for _ in range(copies):
                self._call(batch, None)

    def _call(self, event: Mapping[str, Any], context: object) -> Any:
        assert self.handler is not None, "the pipeline has not wrapped the launcher yet"
        with self._lock:
            self.calls += 1
        return self.handler(copy.deepcopy(dict(event)), context)


HOLD_LIMIT_SECONDS = 120


def merged_failures(responses: Iterable[Any]) -> dict[str, list[dict[str, str]]]:
    """One response for several deliveries: a record failed if any delivery reported it."""
    failed = {f["itemIdentifier"] for r in responses if isinstance(r, Mapping) for f in r.get("batchItemFailures", [])}
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in sorted(failed)]}


# -- a worker that hangs mid-job -------------------------------------------------------------------------------------
HANG_MARKER = "fault injection: the worker hangs reading its input"
HANGING_WORKER = '''
import sys
import time

import botocore.client

_call = botocore.client.BaseClient._make_api_call


def _hang(self, operation, params):
    if operation == "GetObject":
        print(MARKER, file=sys.stderr, flush=True)
        time.sleep(3600)
    return _call(self, operation, params)


botocore.client.BaseClient._make_api_call = _hang
exec(compile(WORKER_SOURCE, "worker.py", "exec"), {"__name__": "__main__", "__file__": __file__})
'''


def hanging_worker_script() -> bytes:
    """The real worker, made to hang at its first S3 read: the job is RUNNING, its input not yet read."""
    source = WORKER_PATH.read_text(encoding="utf-8")
    return f"WORKER_SOURCE = {source!r}\nMARKER = {HANG_MARKER!r}\n{HANGING_WORKER}".encode()


# -- a worker that waits at its last write ---------------------------------------------------------------------------
GATE_MARKER = "fault injection: the worker waits before its last write"
GATED_WORKER = '''
import os
import sys
import time

import botocore.client

_call = botocore.client.BaseClient._make_api_call


def _gate(self, operation, params):
    to = params.get("ExpressionAttributeValues", {}).get(":to", {}).get("S")
    if operation == "UpdateItem" and to in ("SUCCEEDED", "FAILED"):
        print(MARKER, file=sys.stderr, flush=True)
        gate = os.path.join(GATE_DIR, params["Key"]["id"]["S"])
        deadline = time.monotonic() + 120
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.005)
    return _call(self, operation, params)


botocore.client.BaseClient._make_api_call = _gate
exec(compile(WORKER_SOURCE, "worker.py", "exec"), {"__name__": "__main__", "__file__": __file__})
'''


def gated_worker_script(gates: Path) -> bytes:
    """The real worker, made to wait before its last write (RUNNING -> SUCCEEDED or FAILED) until the file
    `<gates>/<job id>` exists: its output and log are written, the job still RUNNING."""
    source = WORKER_PATH.read_text(encoding="utf-8")
    return (f"WORKER_SOURCE = {source!r}\nMARKER = {GATE_MARKER!r}\nGATE_DIR = {str(gates)!r}\n"
            f"{GATED_WORKER}").encode()


def put_worker_script(pipeline: LocalPipeline, body: bytes) -> None:
    """Replace the worker object every VM downloads at boot."""
    pipeline.client("s3").put_object(Bucket=pipeline.stack.bucket, Key=WORKER_SCRIPT_KEY, Body=body,
                                     ContentType="text/x-python")


@contextmanager
def worker_script(pipeline: LocalPipeline, body: bytes) -> Iterator[None]:
    """VMs booted inside the block run `body` as their worker; the real worker is put back after, whatever
    happened."""
    put_worker_script(pipeline, body)
    try:
        yield
    finally:
        put_worker_script(pipeline, WORKER_PATH.read_bytes())


# -- observing the emulator ------------------------------------------------------------------------------------------
def live_console(run: VmRun) -> str:
    """The console so far (the VM host writes it to `<scratch>/console.log` and keeps it once the VM is gone)."""
    path = run.scratch / "console.log"
    return path.read_text(errors="replace") if path.exists() else ""


def instances_per_job(pipeline: LocalPipeline, job_ids: Iterable[str]) -> Counter[str]:
    """How many instances (in any state, terminated included) carry each job's JobId tag."""
    ids = list(job_ids)
    found = describe_instances(pipeline.client("ec2"), [{"Name": f"tag:{JOB_ID_TAG}", "Values": ids}])
    counts: Counter[str] = Counter({job_id: 0 for job_id in ids})
    for instance in found:
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        counts[tags[JOB_ID_TAG]] += 1
    return counts


def output_keys(pipeline: LocalPipeline, job_id: str) -> list[str]:
    listed = pipeline.client("s3").list_objects_v2(Bucket=pipeline.stack.bucket, Prefix=f"outputs/{job_id}/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def held_slots(pipeline: LocalPipeline) -> dict[int, str]:
    return jobs.held_slots(pipeline.client("dynamodb"), pipeline.stack.table,
                           pipeline.stack.settings.max_concurrent_vms)


def free_held_slots(pipeline: LocalPipeline) -> dict[int, str]:
    """Give back every held slot; return what was held (a test that left one fails alone, not every later test)."""
    held = held_slots(pipeline)
    ddb = pipeline.client("dynamodb")
    for slot, job_id in held.items():
        capacity.release(ddb, pipeline.stack.table, job_id, slot)
    return held


def sweep(pipeline: LocalPipeline, later: timedelta = timedelta(0), ec2: Any = None) -> sweeper.SweepReport:
    """One sweeper pass as the schedule would run it, `later` from now (with `ec2` as its EC2 client if given)."""
    services = pipeline.launcher_services
    assert services is not None, "the pipeline is not started"
    return sweeper.sweep(services if ec2 is None else replace(services, ec2=ec2), now=datetime.now(UTC) + later)


def get_job(pipeline: LocalPipeline, job_id: str) -> dict[str, Any]:
    got = signed_in(pipeline).get(f"/api/jobs/{job_id}", timeout=10)
    assert got.status_code == 200, got.text
    return dict(got.json())


def wait_for_status(pipeline: LocalPipeline, job_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
    return dict(wait_for(lambda: (job := get_job(pipeline, job_id))["status"] == status and job, timeout,
                         f"job {job_id} to be {status}"))


def settle(pipeline: LocalPipeline, timeout: float = 30) -> None:
    """Wait until no job VM is alive in the emulator or running on the VM host."""
    assert pipeline.vmhost is not None
    vmhost = pipeline.vmhost
    ec2 = pipeline.client("ec2")
    wait_for(lambda: not alive_instances(ec2) and all(r.finished.is_set() for r in list(vmhost.runs.values())),
             timeout, "every VM to be gone", interval=0.1)


SENTENCE = re.compile(r"[A-Z][^\n]{15,500}[.!]")


def assert_readable_sentence(text: str | None) -> None:
    """A reason a user can read: one sentence, no traceback or Python repr."""
    assert text and SENTENCE.fullmatch(text), f"not a readable sentence: {text!r}"
    assert "Traceback" not in text and "botocore" not in text and "Error(" not in text, text
