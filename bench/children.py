"""Run one child process and take its own resource usage: wall time, CPU time (`wait4`), and stdout.

`wait4` reports the usage of that one child (and its waited-for descendants), so measurements stay apart even
though this process has other children (the emulator, local VMs).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BOTO3_FLOOR = "import boto3; boto3.client('s3'); from bench.probe import peak_rss_mib; print(peak_rss_mib())"
"""The floor a Python process with boto3 cannot go below: the interpreter, boto3 imported, one client made; prints
its peak RSS in MiB."""


@dataclass(frozen=True)
class ChildRun:
    wall_seconds: float
    cpu_seconds: float
    """User + system time."""
    stdout: str


class ChildFailedError(RuntimeError):
    pass


def run_child(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 600) -> ChildRun:
    """Run `argv` from the repository root; raise ChildFailedError (with its stderr) unless it exits 0."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        process = subprocess.Popen(list(argv), cwd=REPO_ROOT, env=dict(env) if env is not None else None,
                                   stdout=out, stderr=err)
        try:
            _, status, usage = _wait4(process.pid, timeout)
        except TimeoutError:
            process.kill()
            process.wait()
            raise
        wall = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise ChildFailedError(f"{' '.join(argv[:4])}... exited {process.returncode}: "
                              f"{err.read().decode(errors='replace')[-2000:]}")
        return ChildRun(wall_seconds=wall, cpu_seconds=usage.ru_utime + usage.ru_stime,
                        stdout=out.read().decode())


def _wait4(pid: int, timeout: float) -> tuple[int, int, resource.struct_rusage]:
    deadline = time.monotonic() + timeout
    while True:
        waited, status, usage = os.wait4(pid, os.WNOHANG)
        if waited == pid:
            return waited, status, usage
        if time.monotonic() > deadline:
            raise TimeoutError(f"child {pid} still running after {timeout} s")
        time.sleep(0.002)


def python(code: str, env: Mapping[str, str] | None = None) -> ChildRun:
    """`python -c code` with this interpreter."""
    return run_child([sys.executable, "-c", code], env)
