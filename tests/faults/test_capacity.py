"""The VM cap under load and under failing jobs: VMs alive in the emulator never exceed it, and a failed job's VM
gives its slot back so that queued jobs start."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from local.app import LocalPipeline
from local.load import VmSampler
from tests.faults.conftest import CAP
from tests.faults.harness import held_slots, instances_per_job, settle
from tests.local.harness import DELETE_INPUT_MARKER, finished_run, instance_state, signed_in
from tests.records import wait_for_final

pytestmark = pytest.mark.e2e


def test_six_jobs_at_once_never_have_more_than_the_cap_of_vms_alive(pipeline: LocalPipeline) -> None:
    inputs = [(f"load-{i}.txt", f"load {i}\n".encode(), f"text {i}") for i in range(3 * CAP)]
    sampling = VmSampler(pipeline.client("ec2"), interval=0.05)
    with sampling as sampler, ThreadPoolExecutor(max_workers=len(inputs)) as pool:
        jobs = list(pool.map(lambda args: signed_in(pipeline).submit(*args), inputs))
        finals = list(pool.map(lambda job: wait_for_final(signed_in(pipeline), job["id"], timeout=90), jobs))
        settle(pipeline)

    assert [f["status"] for f in finals] == ["SUCCEEDED"] * len(inputs), [f.get("error") for f in finals]
    assert sampler.samples >= 20 and sampler.errors <= sampler.samples // 10
    assert sampler.maximum == CAP, f"VMs alive at once: at most {sampler.maximum} (cap {CAP}): {sampler.worst}"
    ids = [job["id"] for job in jobs]
    assert instances_per_job(pipeline, ids) == dict.fromkeys(ids, 1)
    outputs = [requests.get(f["output_url"], timeout=10).content for f in finals]
    assert outputs == [data + b" : " + text.encode() for _, data, text in inputs]


def test_jobs_whose_input_is_gone_fail_and_give_their_slots_to_the_queue(pipeline: LocalPipeline) -> None:
    """The first `CAP` jobs take every slot and fail (their input is deleted before their VMs run); the next job
    can only start once one of their VMs is terminated and its slot given back (no sweeper runs here)."""
    doomed = [signed_in(pipeline).submit(f"gone-{i}.txt", b"deleted", DELETE_INPUT_MARKER) for i in range(CAP)]
    survivor = signed_in(pipeline).submit("kept.txt", b"kept", "after the failures")

    failed = [wait_for_final(signed_in(pipeline), job["id"]) for job in doomed]
    succeeded = wait_for_final(signed_in(pipeline), survivor["id"])
    settle(pipeline)

    for job in failed:
        assert job["status"] == "FAILED", job
        assert "does not exist" in job["error"], job["error"]
        assert instance_state(pipeline, job["instance_id"]) == "terminated"
    assert succeeded["status"] == "SUCCEEDED", succeeded
    doomed_runs = [finished_run(pipeline, job["instance_id"]) for job in failed]
    survivor_run = finished_run(pipeline, succeeded["instance_id"])
    assert survivor_run.started >= min(run.stopped for run in doomed_runs), "it waited for a freed slot"
    ids = [job["id"] for job in (*doomed, survivor)]
    assert instances_per_job(pipeline, ids) == dict.fromkeys(ids, 1)
    assert held_slots(pipeline) == {}
