"""Worker time, bytes through the VM and peak RSS at each input size, against a plain boto3 streaming copy and
Python's floor.

Each copy runs in a fresh process against a moto server, the worker's and the plain copy's runs interleaved so
that noise on the machine falls on both alike, on the worker's interpreter (AL2023's Python 3.9 and boto3 when
`make` could build it, `local/workerpython.py`). Time is the copy's alone (the process's start is the cold-start
figures' business) and CPU time is the copying process's own (the VM's work; the emulator's is not in it);
bytes through the VM are the process's socket bytes, sent and received, during the copy
(`probe.SocketBytes`); RSS is the whole process's peak, whose floor is Python with boto3 imported and one client
made.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.children import BOTO3_FLOOR, run_child
from bench.figures import Figure, figure
from bench.plan import Plan
from local.emulator import REGION, EndpointSession, MotoServer, aws_environment
from local.workerpython import worker_python

MIB = 1024 * 1024
GROUP = "worker"
INPUT_BUCKET = "bench-inputs"
"""A bucket of the benchmark's own emulator, which holds nothing else."""


def probe_python() -> str:
    """The interpreter the copies run on: the worker's, else this one."""
    return worker_python() or sys.executable


@dataclass(frozen=True)
class Copy:
    """One copy in its own process."""

    seconds: float
    cpu_seconds: float
    """The process's CPU time during the copy: what the VM itself spends."""
    peak_rss_mib: float
    network_mib: float
    """Bytes its sockets sent and received, in MiB."""


class PatternReader(io.RawIOBase):
    """`size` bytes of a repeated random block, read without holding them all."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.left = size
        self.block = os.urandom(MIB)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left, len(self.block))
        buffer[:n] = self.block[:n]
        self.left -= n
        return n


@contextmanager
def emulator() -> Iterator[tuple[Any, dict[str, str]]]:
    """A moto server with the input bucket: an S3 client for it, and the environment that sends a child to it."""
    moto = MotoServer()
    moto.start()
    try:
        s3 = EndpointSession(moto.endpoint_url, REGION).client("s3")
        s3.create_bucket(Bucket=INPUT_BUCKET)
        yield s3, {**os.environ, **aws_environment(moto.endpoint_url, REGION)}
    finally:
        moto.stop()


def copy_once(mode: str, key: str, s3: Any, env: dict[str, str]) -> Copy:
    run = run_child([probe_python(), "-m", "bench.probe", mode, INPUT_BUCKET, key], env)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    s3.delete_object(Bucket=INPUT_BUCKET, Key=result["key"])
    return Copy(seconds=float(result["seconds"]), cpu_seconds=float(result["cpu_seconds"]),
                peak_rss_mib=float(result["peak_rss_mib"]),
                network_mib=(int(result["sent"]) + int(result["received"])) / MIB)


def measure(plan: Plan) -> list[Figure]:
    figures: list[Figure] = []
    floor = [float(run_child([probe_python(), "-c", BOTO3_FLOOR]).stdout) for _ in range(plan.worker_runs)]
    with emulator() as (s3, env):
        for size in plan.worker_sizes_mib:
            key = f"inputs/bench-{size}.bin"
            s3.upload_fileobj(PatternReader(size * MIB), INPUT_BUCKET, key)
            runs: dict[str, list[Copy]] = {"worker": [], "copy": []}
            for _ in range(plan.worker_runs_for(size)):
                for mode, done in runs.items():
                    done.append(copy_once(mode, key, s3, env))
            s3.delete_object(Bucket=INPUT_BUCKET, Key=key)
            figures += size_figures(size, runs["worker"], runs["copy"], floor)
    return figures


def size_figures(size: int, worker: Sequence[Copy], copy: Sequence[Copy], floor: Sequence[float]) -> list[Figure]:
    def seconds(runs: Sequence[Copy]) -> list[float]:
        return [run.seconds for run in runs]

    def cpu(runs: Sequence[Copy]) -> list[float]:
        return [run.cpu_seconds for run in runs]

    def network(runs: Sequence[Copy]) -> list[float]:
        return [run.network_mib for run in runs]

    def rss(runs: Sequence[Copy]) -> list[float]:
        return [run.peak_rss_mib for run in runs]

    return [
        figure(f"worker time, {size} MiB", "s", seconds(worker), seconds(copy), group=GROUP,
               kind="time", who="worker", size_mib=size),
        figure(f"plain copy time, {size} MiB", "s", seconds(copy), None, group=GROUP,
               kind="time", who="copy", size_mib=size),
        figure(f"worker CPU time, {size} MiB", "s", cpu(worker), cpu(copy), group=GROUP,
               kind="cpu", who="worker", size_mib=size),
        figure(f"plain copy CPU time, {size} MiB", "s", cpu(copy), None, group=GROUP,
               kind="cpu", who="copy", size_mib=size),
        figure(f"worker bytes through the VM, {size} MiB", "MiB", network(worker), network(copy), group=GROUP,
               kind="network", who="worker", size_mib=size),
        figure(f"plain copy bytes through the VM, {size} MiB", "MiB", network(copy), None, group=GROUP,
               kind="network", who="copy", size_mib=size),
        figure(f"worker peak RSS, {size} MiB", "MiB", rss(worker), floor, group=GROUP,
               kind="rss", who="worker", size_mib=size),
        figure(f"plain copy peak RSS, {size} MiB", "MiB", rss(copy), floor, group=GROUP,
               kind="rss", who="copy", size_mib=size),
    ]
