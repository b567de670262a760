"""Worker throughput and peak RSS at each input size, against a plain boto3 streaming copy and Python's floor.

Each copy runs in a fresh process against a moto server, the worker's and the plain copy's runs interleaved so
that noise on the machine falls on both alike. Throughput is input MiB / seconds of the copy alone (the process's
start is the cold-start figures' business); RSS is the whole process's peak, whose floor is Python with boto3
imported and one client made.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bench.children import BOTO3_FLOOR, python, run_child
from bench.figures import Figure, figure
from bench.plan import Plan
from local.emulator import REGION, EndpointSession, MotoServer, aws_environment

MIB = 1024 * 1024
GROUP = "worker"
INPUT_BUCKET = "bench-inputs"
"""A bucket of the benchmark's own emulator, which holds nothing else."""


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


def copy_once(mode: str, key: str, s3: Any, env: dict[str, str]) -> tuple[float, float]:
    """Seconds of the copy and peak RSS (MiB) of its process."""
    run = run_child([sys.executable, "-m", "bench.probe", mode, INPUT_BUCKET, key], env)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    s3.delete_object(Bucket=INPUT_BUCKET, Key=result["key"])
    return float(result["seconds"]), float(result["peak_rss_mib"])


def measure(plan: Plan) -> list[Figure]:
    figures: list[Figure] = []
    floor = [float(python(BOTO3_FLOOR).stdout) for _ in range(plan.worker_runs)]
    with emulator() as (s3, env):
        for size in plan.worker_sizes_mib:
            key = f"inputs/bench-{size}.bin"
            s3.upload_fileobj(PatternReader(size * MIB), INPUT_BUCKET, key)
            runs: dict[str, list[tuple[float, float]]] = {"worker": [], "copy": []}
            for _ in range(plan.worker_runs_for(size)):
                for mode, done in runs.items():
                    done.append(copy_once(mode, key, s3, env))
            s3.delete_object(Bucket=INPUT_BUCKET, Key=key)
            figures += size_figures(size, runs["worker"], runs["copy"], floor)
    return figures


def size_figures(size: int, worker: Sequence[tuple[float, float]], copy: Sequence[tuple[float, float]],
                 floor: Sequence[float]) -> list[Figure]:
    def mibps(runs: Sequence[tuple[float, float]]) -> list[float]:
        return [size / seconds for seconds, _ in runs]

    def rss(runs: Sequence[tuple[float, float]]) -> list[float]:
        return [peak for _, peak in runs]

    return [
        figure(f"worker throughput, {size} MiB", "MiB/s", mibps(worker), mibps(copy), group=GROUP,
               kind="throughput", who="worker", size_mib=size),
        figure(f"plain copy throughput, {size} MiB", "MiB/s", mibps(copy), None, group=GROUP,
               kind="throughput", who="copy", size_mib=size),
        figure(f"worker peak RSS, {size} MiB", "MiB", rss(worker), floor, group=GROUP,
               kind="rss", who="worker", size_mib=size),
        figure(f"plain copy peak RSS, {size} MiB", "MiB", rss(copy), floor, group=GROUP,
               kind="rss", who="copy", size_mib=size),
    ]
