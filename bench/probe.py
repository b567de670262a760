"""The child side of the worker figures: copy one object in a fresh process, print the seconds the copy took.

    python -m bench.probe worker <bucket> <key>   # the worker's own data path (worker.write_output)
    python -m bench.probe copy <bucket> <key>     # a plain boto3 streaming copy of the same object

Prints `{"seconds", "key", "peak_rss_mib"}`: the copy's time, what it wrote (the parent deletes it), and this
process's peak RSS. The AWS endpoint comes from the environment.
"""

from __future__ import annotations

import json
import sys
import time

import boto3

from worker.worker import write_output

BENCH_JOB_ID = "benchbenchbenchbench0"
"""A job id of the right shape (21 characters) for the worker's output key."""


def peak_rss_mib() -> float:
    """This process's own high-water RSS (`VmHWM`). Not `ru_maxrss`: Linux carries the parent's high-water mark
    into a child through fork and exec, so a child of a big parent would report the parent's size."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def worker_copy(s3: object, bucket: str, key: str) -> str:
    job = {"input_file_path": f"{bucket}/{key}", "input_text": "bench"}
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
    began = time.perf_counter()
    out_key = MODES[mode](s3, bucket, key)
    seconds = time.perf_counter() - began
    print(json.dumps({"seconds": seconds, "key": out_key, "peak_rss_mib": peak_rss_mib()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
