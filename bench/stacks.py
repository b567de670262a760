"""The stack a figure group measures: a local stack started for it, or the deployed one of `make bench BENCH_URL=`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.plan import Remote
from local.app import LocalPipeline
from local.client import access_token
from stackspec.settings import StackSettings

BENCH_USER = "bench@example.com"
UNLIMITED_JOBS = 100_000
"""The per-user limit of a benchmark's local stack: one user submits every job (the limit has its own tests)."""


@dataclass(frozen=True)
class Stack:
    url: str
    token: str
    pipeline: LocalPipeline | None = None
    """The local stack, None for a deployed one."""


def no_launch(handler: Any, pipeline: LocalPipeline) -> Any:
    """The launcher replaced by one that takes every record and starts nothing: jobs stay PENDING, no VM runs."""
    def take(event: Mapping[str, Any], context: Any) -> dict[str, list[Any]]:
        return {"batchItemFailures": []}
    return take


@contextmanager
def local_stack(max_concurrent_vms: int = StackSettings().max_concurrent_vms, *,
                launch: bool = True) -> Iterator[Stack]:
    """A local stack with one signed-in user allowed any number of jobs; `launch=False`: no VM ever starts (the API
    figures measure the HTTP layer, not VMs competing for the CPU)."""
    settings = StackSettings(max_concurrent_vms=max_concurrent_vms, max_active_jobs_per_user=UNLIMITED_JOBS,
                             upload_grants_per_hour=UNLIMITED_JOBS)
    with LocalPipeline(port=0, settings=settings, sweep_seconds=None,
                       wrap_launcher=None if launch else no_launch) as pipeline:
        user = pipeline.create_user(BENCH_USER)
        yield Stack(pipeline.url, access_token(pipeline.url, user.email, user.password), pipeline)


@contextmanager
def remote_stack(remote: Remote) -> Iterator[Stack]:
    yield Stack(remote.url, access_token(remote.url, remote.email, remote.password))
