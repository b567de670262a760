"""Two local stacks in one process: each pipeline hands its handlers their own config and clients, so nothing is
shared through the environment or a module (regression: handlers configured at import made this impossible)."""

from __future__ import annotations

import pytest

from local.app import LocalPipeline
from stackspec.settings import StackSettings
from tests.local.harness import signed_in
from tests.records import wait_for_final

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SETTINGS = StackSettings(max_file_mb=1, max_text_length=200, max_concurrent_vms=2)


def listed_ids(pipeline: LocalPipeline) -> set[str]:
    listed = signed_in(pipeline).get("/api/jobs")
    listed.raise_for_status()
    return {job["id"] for job in listed.json()["jobs"]}


def test_two_pipelines_run_side_by_side_and_keep_their_jobs_apart() -> None:
    with LocalPipeline(port=0, settings=SETTINGS, stack="left", sweep_seconds=None) as left, \
            LocalPipeline(port=0, settings=SETTINGS, stack="right", sweep_seconds=None) as right:
        jobs = {pipeline: signed_in(pipeline).submit("a.txt", name.encode(), f"from {name}")
                for name, pipeline in (("left", left), ("right", right))}
        for pipeline, job in jobs.items():
            final = wait_for_final(signed_in(pipeline), job["id"])
            assert final["status"] == "SUCCEEDED", final
            assert final["output_file_path"].startswith(f"{pipeline.stack.bucket}/")
        assert listed_ids(left) == {jobs[left]["id"]}
        assert listed_ids(right) == {jobs[right]["id"]}
        assert left.stack.bucket != right.stack.bucket and left.endpoint_url != right.endpoint_url
