"""Users managing jobs while the pipeline works on them: a cancel racing the worker's last write, a cancel while the
launcher starts the VM, concurrent retries, and a delete racing the launcher's quota release. Each ends in one
consistent state, with no VM left alive, no slot held (the package's fixture checks both) and the owner's count
exact."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from handlers import jobmodel
from handlers.instances import tags
from handlers.jobmodel import JOB_ID_TAG, Status
from local.app import LocalPipeline
from local.vmhost import Ending
from tests.faults.harness import (
    GATE_MARKER,
    Deliveries,
    gated_worker_script,
    held_slots,
    instances_per_job,
    live_console,
    output_keys,
    settle,
    sweep,
    wait_for_status,
    worker_script,
)
from tests.local.harness import instance_state, owner_of, signed_in
from tests.records import active_jobs, wait_for_final
from tests.streams import lambda_records
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def gates(pipeline: LocalPipeline, tmp_path: Path) -> Iterator[Path]:
    """VMs run a worker that waits before its last write until `<gates>/<job id>` exists."""
    with worker_script(pipeline, gated_worker_script(tmp_path)):
        yield tmp_path


@pytest.fixture
def idle_worker(pipeline: LocalPipeline) -> Iterator[None]:
    """VMs run a "worker" that only sleeps: a VM ends only when something terminates it from outside (the real
    worker would find its job CANCELLED and power the VM off itself, sooner or later than the launcher's call)."""
    with worker_script(pipeline, b"import time\ntime.sleep(3600)\n"):
        yield


def counted(pipeline: LocalPipeline) -> int:
    return active_jobs(pipeline.client("dynamodb"), pipeline.stack.table, owner_of(signed_in(pipeline)))


def final_states(pipeline: LocalPipeline, job_id: str) -> set[str]:
    """Every final state the job's item was ever written with (from the table's stream)."""
    records = lambda_records(pipeline.client("dynamodbstreams"), pipeline.stack.stream_arn)
    images = [r["dynamodb"].get("NewImage", {}) for r in records if r["dynamodb"]["Keys"]["id"]["S"] == job_id]
    return {i["status"]["S"] for i in images if "status" in i} & set(jobmodel.FINAL_STATES)


def at_the_gate(pipeline: LocalPipeline, name: str) -> dict[str, Any]:
    """Submit a job and wait until its worker has written the output and waits before its last write."""
    job = signed_in(pipeline).submit(f"{name}.txt", name.encode(), name)
    running = wait_for_status(pipeline, job["id"], "RUNNING")
    assert pipeline.vmhost is not None
    run = wait_for(lambda: pipeline.vmhost.runs.get(running["instance_id"]), 10, "the VM to run")  # type: ignore[union-attr]
    wait_for(lambda: GATE_MARKER in live_console(run), 30, "the worker to reach its last write")
    return running


@pytest.mark.parametrize("order", ["cancel first", "worker first", "together"])
def test_a_cancel_racing_the_workers_last_write_ends_in_one_final_state(
    pipeline: LocalPipeline, gates: Path, order: str
) -> None:
    """RUNNING -> SUCCEEDED (the worker) against RUNNING -> CANCELLED (the owner): both are conditional on RUNNING,
    so whichever lands first is the only final state ever written, the API's answer says which, the VM is gone
    either way and the owner's place is given back once."""
    client = signed_in(pipeline)
    job = at_the_gate(pipeline, order.replace(" ", "-"))
    let_through = (gates / job["id"]).touch

    if order == "cancel first":
        answer = client.cancel(job["id"])
        let_through()
    elif order == "worker first":
        let_through()
        wait_for_status(pipeline, job["id"], "SUCCEEDED")
        answer = client.cancel(job["id"])
    else:
        with ThreadPoolExecutor(max_workers=2) as both:
            cancelling = both.submit(client.cancel, job["id"])
            both.submit(let_through)
            answer = cancelling.result()

    settle(pipeline)
    final = client.job(job["id"])
    if answer.status_code == 200:
        assert final["status"] == answer.json()["status"] == "CANCELLED"
        assert "output_file_path" not in final, "the worker's last write never landed"
    else:
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "job_finished")
        assert final["status"] == "SUCCEEDED"
    if order != "together":
        assert final["status"] == {"cancel first": "CANCELLED", "worker first": "SUCCEEDED"}[order]
    assert final_states(pipeline, job["id"]) == {final["status"]}, "exactly one final state was ever written"
    assert instance_state(pipeline, job["instance_id"]) == "terminated"
    wait_for(lambda: counted(pipeline) == 0, 20, "the owner's place to be given back")


class CancellingEc2:
    """An EC2 client whose RunInstances starts the VM, then lets the job's owner cancel it over the API and waits
    until the launcher has read the CANCELLED record (the owner's place given back), all before the caller hears
    back: so the caller records the instance id after the cancel's record was handled, without it. With `booted`,
    the cancel waits until the VM host runs the VM first."""

    def __init__(self, real: Any, pipeline: LocalPipeline, booted: bool) -> None:
        self.real, self.pipeline, self.booted = real, pipeline, booted
        self.answers: list[requests.Response] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def run_instances(self, **kwargs: Any) -> Any:
        started = self.real.run_instances(**kwargs)
        if self.booted:
            instance_id = started["Instances"][0]["InstanceId"]
            assert self.pipeline.vmhost is not None
            wait_for(lambda: instance_id in self.pipeline.vmhost.runs, 20, "the VM host to boot the VM")
        self.answers.append(signed_in(self.pipeline).cancel(kwargs["ClientToken"]))
        wait_for(lambda: counted(self.pipeline) == 0, 20, "the launcher to read the CANCELLED record")
        return started


def hide_from_vmhost(pipeline: LocalPipeline, monkeypatch: pytest.MonkeyPatch, job_id: str) -> None:
    """The VM host never sees the job's instance: it is terminated before it boots (EC2 terminating a pending
    instance), so only the termination event can give its slot back."""
    vmhost = pipeline.vmhost
    assert vmhost is not None
    seen = vmhost.live_instances
    monkeypatch.setattr(vmhost, "live_instances", lambda: [i for i in seen() if tags(i).get(JOB_ID_TAG) != job_id])


@pytest.mark.parametrize("booted", [True, False], ids=["VM booted", "VM not booted yet"])
def test_a_cancel_while_the_vm_starts_terminates_it_and_frees_its_slot(
    pipeline: LocalPipeline, deliveries: Deliveries, idle_worker: None, monkeypatch: pytest.MonkeyPatch,
    booted: bool,
) -> None:
    """The job is started by a sweep (its stream record was lost), so the stream launcher is free to handle the
    cancel's record meanwhile: that record had no instance id yet, and the later write of the instance id no longer
    passes the launcher's filter (the job holds no place any more). What terminates the VM is the starter's own
    write of the instance id, which returns the job CANCELLED; the VM's termination gives the slot back, whether
    the VM host had booted the VM or not (then the sweep's own client's termination is the announcement)."""
    deliveries.drop_new = True  # for the whole test (the poller may read the record at any time); reset after it
    job = signed_in(pipeline).submit("starting.txt", b"starting", "cancelled while starting")
    if not booted:
        hide_from_vmhost(pipeline, monkeypatch, job["id"])
    ec2 = CancellingEc2(pipeline.client("ec2"), pipeline, booted)

    report = sweep(pipeline, later=jobmodel.DEADLINES[Status.PENDING].after + timedelta(seconds=1), ec2=ec2)

    assert report.queued == [job["id"]] and [a.status_code for a in ec2.answers] == [200]
    settle(pipeline)
    final = signed_in(pipeline).job(job["id"])
    assert final["status"] == "CANCELLED" and "started_at" not in final, "the worker never ran it"
    assert instances_per_job(pipeline, [job["id"]])[job["id"]] == 1
    assert instance_state(pipeline, final["instance_id"]) == "terminated"
    assert pipeline.vmhost is not None
    run = pipeline.vmhost.runs.get(final["instance_id"])
    if booted:
        assert run is not None and run.ending == Ending.TERMINATED, "terminated from outside, not by its user-data"
    else:
        assert run is None, "the VM host never booted it"
    assert output_keys(pipeline, job["id"]) == []
    wait_for(lambda: held_slots(pipeline) == {}, 20, "the slot to be given back")
    assert counted(pipeline) == 0


def test_concurrent_retries_of_one_job_make_one_new_job(pipeline: LocalPipeline) -> None:
    """Eight retries at once: one 201, seven 200 with the same job; one new job, one copy of the input, counted
    once; it runs to SUCCEEDED."""
    client = signed_in(pipeline)
    job = client.submit("again.txt", b"again", "retried at once")
    assert client.cancel(job["id"]).status_code == 200
    settle(pipeline)
    before = {j["id"] for j in client.get("/api/jobs").json()["jobs"]}

    with ThreadPoolExecutor(max_workers=8) as many:
        answers = list(many.map(lambda _: client.retry(job["id"]), range(8)))

    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    made = answers[0].json()["id"]
    assert {j["id"] for j in client.get("/api/jobs").json()["jobs"]} - before == {made}
    listed = pipeline.client("s3").list_objects_v2(Bucket=pipeline.stack.bucket, Prefix="inputs/")
    copies = [o["Key"] for o in listed["Contents"] if o["Key"].endswith("/again.txt")]
    assert sorted(copies) == sorted([f"inputs/{job['id']}/again.txt", f"inputs/{made}/again.txt"])
    assert wait_for_final(client, made, timeout=60)["status"] == "SUCCEEDED"
    wait_for(lambda: counted(pipeline) == 0, 20, "the count to come back to zero")


@pytest.mark.parametrize("order", ["delete first", "release first", "together"])
def test_a_delete_racing_the_launchers_release_keeps_the_count_exact(
    pipeline: LocalPipeline, deliveries: Deliveries, caplog: pytest.LogCaptureFixture, order: str
) -> None:
    """A finished job whose record the launcher has not read yet still counts; its delete and the launcher's release
    each decrement only on the quota mark as they read it: one decrement whoever wins, and one `job_finished` line."""
    client = signed_in(pipeline)
    caplog.set_level(logging.INFO, logger="handlers")
    release = threading.Event()
    deliveries.hold_finished = release
    job = client.submit("held.txt", b"held", "deleted while counted")
    assert wait_for_final(client, job["id"], timeout=60)["status"] == "SUCCEEDED"
    wait_for(lambda: held_slots(pipeline) == {}, 30, "the job's VM to be gone")
    assert counted(pipeline) == 1, "the release is held back"

    if order == "delete first":
        answer = client.delete_job(job["id"])
        release.set()
    elif order == "release first":
        release.set()
        wait_for(lambda: counted(pipeline) == 0, 20, "the launcher's release")
        answer = client.delete_job(job["id"])
    else:
        with ThreadPoolExecutor(max_workers=2) as both:
            deleting = both.submit(client.delete_job, job["id"])
            both.submit(release.set)
            answer = deleting.result()

    assert answer.status_code == 204
    wait_for(lambda: deliveries.held_delivered == 1, 20, "the launcher to handle the held record")
    assert counted(pipeline) == 0, "decremented exactly once"
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404
    lines = [r for r in caplog.records if getattr(r, "event", None) == jobmodel.JOB_FINISHED_EVENT
             and getattr(r, "job_id", None) == job["id"]]
    assert len(lines) == 1, "the job's end is counted once, by whichever released it"
