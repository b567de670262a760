"""The child side of the worker figures: copy one object in a fresh process, print what the copy took.

    python -m bench.probe worker <bucket> <key>   # the worker's own data path (worker.write_output)
    python -m bench.probe copy <bucket> <key>     # a plain boto3 streaming copy of the same object

Prints `{"seconds", "cpu_seconds", "key", "peak_rss_mib", "sent", "received"}`: the copy's time and this process's
CPU time during it (all threads), what it wrote (the parent deletes it), this process's peak RSS, and the bytes its
sockets sent and received during the copy. The AWS endpoint comes
from the environment. Runs on the worker's interpreter (AL2023's Python 3.9 and boto3, `local/workerpython.py`), so
it keeps to what Python 3.9 accepts.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

import boto3

from worker.worker import SEPARATOR, write_output

BENCH_JOB_ID = "benchbenchbenchbench0"
"""A job id of the right shape (21 characters) for the worker's output key."""
BENCH_TEXT = "bench"
"""The job's text: the bytes the worker sends besides requests are `" : " + BENCH_TEXT`."""
NETWORK_LIMIT_MIB = 6 + len(SEPARATOR + BENCH_TEXT.encode()) / (1024 * 1024)
"""The issue's target: bytes through the VM per job at most 6 MiB plus the separator and the text, at every size."""


class SocketBytes:
    """Bytes through this process's sockets: every send and receive of `socket.socket` (what http.client, urllib3
    and so botocore use, headers and TLS or not) is counted, from any thread, once `install` has run.

    The job's bytes through the VM are the worker's socket bytes: the worker is the only process on the VM that
    moves the job's data (besides it the user-data makes a few small requests: metadata, the worker script's
    download, the DynamoDB updates). Counting in the process, not /proc/<pid>/io's rchar/wchar, leaves out the files
    Python and botocore read at start-up (several MiB of service models), which are disk, not network.
    """

    sent = 0
    received = 0

    @classmethod
    def install(cls) -> None:
        def counted(method: Any, attribute: str, measure: Any) -> Any:
            def wrapper(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
                result = method(self, *args, **kwargs)
                setattr(cls, attribute, getattr(cls, attribute) + measure(result, args))
                return result
            return wrapper

        def size(data: Any) -> int:
            return memoryview(data).nbytes

        plain = socket.socket
        plain.send = counted(plain.send, "sent", lambda n, args: n)  # type: ignore[method-assign]
        plain.sendall = counted(plain.sendall, "sent", lambda _, args: size(args[0]))  # type: ignore[method-assign]
        plain.recv = counted(plain.recv, "received", lambda data, args: len(data))  # type: ignore[method-assign]
        plain.recv_into = counted(plain.recv_into, "received", lambda n, args: n)  # type: ignore[method-assign]


def peak_rss_mib() -> float:
    """This process's own high-water RSS (`VmHWM`). Not `ru_maxrss`: Linux carries the parent's high-water mark
    into a child through fork and exec, so a child of a big parent would report the parent's size."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def worker_copy(s3: object, bucket: str, key: str) -> str:
    job = {"input_file_path": f"{bucket}/{key}", "input_text": BENCH_TEXT}
    return write_output(s3, job, BENCH_JOB_ID, bucket).split("/", 1)[1]


def plain_copy(s3: object, bucket: str, key: str) -> str:
    """What anyone would write: stream the GET body into `upload_fileobj` with boto3's default transfer settings."""
    out_key = f"{key}.copy.out"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]  # type: ignore[attr-defined]
    s3.upload_fileobj(body, bucket, out_key)  # type: ignore[attr-defined]
    return out_key


MODES = {"worker": worker_copy, "copy": plain_copy}


def main(argv: list[str]) -> int:
    mode, bucket, key = argv
    s3 = boto3.client("s3")
    SocketBytes.install()
    began, cpu = time.perf_counter(), time.process_time()
    out_key = MODES[mode](s3, bucket, key)
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "key": out_key, "peak_rss_mib": peak_rss_mib(),
                      "sent": SocketBytes.sent, "received": SocketBytes.received}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
