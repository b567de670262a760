"""One local stack for every fault-injection test (starting one costs seconds), with a VM cap of 2 and a job
timeout of 1 minute.

The stream poller calls a `Deliveries` wrapper (duplicate deliveries on demand) around `deleting_inputs` (deletes the
input of jobs whose text is its marker). No sweeper runs on a schedule: tests call it when they mean to, with the
clock moved past its grace periods, so nothing heals a fault behind a test's back. After every test no VM is left
alive, no VM slot is held, and the VMs alive in the emulator never exceeded the cap.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.app import LocalPipeline
from local.load import VmSampler
from stackspec.settings import StackSettings
from tests.faults.harness import Deliveries, free_held_slots, settle
from tests.local.harness import UPLOADS_UNBOUNDED, deleting_inputs

SETTINGS = StackSettings(max_file_mb=1, max_text_length=200, job_timeout_minutes=1, max_concurrent_vms=2,
                         max_active_jobs_per_user=50, upload_grants_per_hour=UPLOADS_UNBOUNDED)
CAP = SETTINGS.max_concurrent_vms


@pytest.fixture(scope="package")
def deliveries() -> Deliveries:
    return Deliveries()


@pytest.fixture(scope="package")
def pipeline(deliveries: Deliveries) -> Iterator[LocalPipeline]:
    with LocalPipeline(port=0, settings=SETTINGS, wrap_launcher=lambda h, p: deliveries.wrap(deleting_inputs(h, p)),
                       sweep_seconds=None) as running:
        yield running


@pytest.fixture(autouse=True)
def quiet_pipeline(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts and ends with no VM alive and no slot held, and its VMs never exceed the cap."""
    if "pipeline" not in request.fixturenames:
        yield
        return
    pipeline: LocalPipeline = request.getfixturevalue("pipeline")
    deliveries: Deliveries = request.getfixturevalue("deliveries")
    settle(pipeline)
    deliveries.reset()
    with VmSampler(pipeline.client("ec2")) as sampler:
        yield
        settle(pipeline)
    deliveries.reset()
    assert free_held_slots(pipeline) == {}, "a VM slot is still held with no VM alive"
    assert sampler.maximum <= CAP, f"{sampler.maximum} VMs alive at once (cap {CAP}): {sampler.worst}"
