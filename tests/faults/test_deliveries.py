"""At-least-once stream delivery: however often a job's INSERT record reaches the launcher, and whenever, the job
gets exactly one VM and one output."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from local.app import LocalPipeline
from tests.faults.conftest import CAP
from tests.faults.harness import Deliveries, get_job, instances_per_job, output_keys, settle
from tests.local.harness import signed_in
from tests.records import wait_for_final
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

JOBS = CAP
"""As many as the cap: they all launch from the first batch and its duplicates, which race for the same slots."""


def submit_jobs(pipeline: LocalPipeline, count: int, tag: str) -> list[tuple[dict[str, Any], bytes, str]]:
    inputs = [(f"{tag}-{i}.txt", f"{tag} input {i}\n".encode(), f"{tag} text {i}") for i in range(count)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        jobs = list(pool.map(lambda args: signed_in(pipeline).submit(*args), inputs))
    return [(job, data, text) for job, (_, data, text) in zip(jobs, inputs, strict=True)]


def assert_one_vm_and_one_output_each(pipeline: LocalPipeline, jobs: list[tuple[dict[str, Any], bytes, str]]) -> None:
    ids = [job["id"] for job, _, _ in jobs]
    finals = {job_id: wait_for_final(signed_in(pipeline), job_id, timeout=60) for job_id in ids}
    assert {f["status"] for f in finals.values()} == {"SUCCEEDED"}, [f.get("error") for f in finals.values()]
    settle(pipeline)

    assert instances_per_job(pipeline, ids) == dict.fromkeys(ids, 1)
    assert pipeline.vmhost is not None
    booted = [run.job_id for run in pipeline.vmhost.runs.values() if run.job_id in finals]
    assert sorted(booted) == sorted(ids), "each job ran on exactly one local VM"
    for job, data, text in jobs:
        final = finals[job["id"]]
        output_key = final["output_file_path"].split("/", 1)[1]
        assert output_keys(pipeline, job["id"]) == sorted([output_key, f"outputs/{job['id']}/worker.log"])
        assert requests.get(final["output_url"], timeout=10).content == data + b" : " + text.encode()


def test_every_record_delivered_three_times_starts_one_vm_per_job(
    pipeline: LocalPipeline, deliveries: Deliveries
) -> None:
    """Each batch goes to the launcher once, then twice more at the same time (two launchers racing)."""
    deliveries.copies = 3
    jobs = submit_jobs(pipeline, JOBS, "triple")
    assert_one_vm_and_one_output_each(pipeline, jobs)
    assert deliveries.calls >= 3 * len(deliveries.batches) > 0


def test_records_delivered_again_later_start_nothing(pipeline: LocalPipeline, deliveries: Deliveries) -> None:
    """The previous batch arrives again with each new one (its jobs then queued, launching or running), and every
    batch arrives once more after all the jobs are over."""
    deliveries.replay_previous = True
    jobs = submit_jobs(pipeline, 1, "late")
    first = jobs[0][0]["id"]  # once its record has been delivered, the next batch replays it while it runs
    wait_for(lambda: "instance_id" in get_job(pipeline, first), 20, "the first job to launch")
    jobs += submit_jobs(pipeline, 1, "later")
    for job, _, _ in jobs:
        wait_for_final(signed_in(pipeline), job["id"], timeout=60)
    settle(pipeline)
    assert len(deliveries.batches) >= 2, "a batch was replayed while its jobs ran"
    assert pipeline.vmhost is not None
    runs_before = len(pipeline.vmhost.runs)

    deliveries.replay_all(copies=2)

    settle(pipeline)
    assert len(pipeline.vmhost.runs) == runs_before, "a late delivery booted a VM"
    assert_one_vm_and_one_output_each(pipeline, jobs)
