#!/usr/bin/env python3
"""filepipe worker: run one job on this VM and record the outcome on the job's item.

Runs on Amazon Linux 2023's system Python (3.9) with the distribution's boto3, fetched from S3 by the user-data as a
single file: so it imports nothing from this repository. The few names it shares with `handlers/jobmodel.py` are
copied below and `tests/runtime/test_worker_contract.py` checks that the copies agree.

Output: `outputs/<id>/<stem>.out<suffix>` = the input bytes, then " : ", then the job's text in UTF-8. The input is
streamed through a multipart upload, so memory stays bounded whatever the file size (up to S3's 5 GB single object).
"""

from __future__ import annotations

import argparse
import io
import logging
import signal
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Sequence

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# --- copied from handlers/jobmodel.py (kept honest by tests/runtime/test_worker_contract.py) ---
LAUNCHING = "LAUNCHING"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
OUTPUT_PREFIX = "outputs/"
WORKER_TRANSITIONS = ((LAUNCHING, RUNNING), (RUNNING, SUCCEEDED), (RUNNING, FAILED))
"""The moves of jobmodel.TRANSITIONS made by the worker."""
PHASE_STARTED = {RUNNING: "started_at", SUCCEEDED: "finished_at", FAILED: "finished_at"}
"""jobmodel.PHASE_STARTED for the states the worker moves jobs to: each move stamps it."""
# --- end of copy ---

SEPARATOR = b" : "
PART_BYTES = 8 * 1024 * 1024


def transfer_config(part_bytes: int = PART_BYTES, parts_in_memory: int = 4) -> TransferConfig:
    """Multipart settings bounding memory to about `part_bytes * parts_in_memory` for any input size.

    boto3's TransferConfig does not take `max_in_memory_upload_chunks` as an argument, but s3transfer reads the
    attribute when it uploads from a non-seekable stream, so it is set after construction.
    """
    config = TransferConfig(multipart_threshold=part_bytes, multipart_chunksize=part_bytes, max_concurrency=4)
    config.max_in_memory_upload_chunks = parts_in_memory
    return config


def even_parts(total_bytes: int, part_bytes: int = PART_BYTES) -> TransferConfig:
    """Multipart settings for an output of `total_bytes`: parts of about `part_bytes` that split it evenly.

    The output is the input plus a few bytes (separator and text), so parts of exactly `part_bytes` would send those
    bytes as a last part of their own whenever the input is a whole number of parts (a 16 MiB input: 8 MiB, 8 MiB
    and 9 bytes): one more request for almost nothing. Outputs under `part_bytes` stay a single PutObject; a part is
    under twice `part_bytes` (an output of one to two parts' size) and at most 1.5 times it from two parts on, so
    memory stays bounded whatever the size.
    """
    parts = max(1, total_bytes // part_bytes)
    size = -(-total_bytes // parts)  # ceiling: `parts` parts cover the whole output
    config = transfer_config(part_bytes=size)
    # From a stream of unknown length s3transfer first reads `multipart_threshold` bytes to choose between one
    # PutObject and a multipart upload; at exactly a part's size that read is the first part, where a smaller one
    # would have to be topped up and copied into a new buffer before the first part can go.
    config.multipart_threshold = max(size, part_bytes)
    return config


CLIENT_LIMITS = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "total_max_attempts": 5})
"""Each AWS call of the worker: 5 s to connect, 30 s for an answer (a part upload's: 8 to 16 MiB), 5 attempts in the
standard retry mode (backoff with jitter, throttling aware); so a stalled connection fails the job with a reason
long before the in-VM watchdog powers the VM off (the SDK defaults wait 60 s per read, with legacy retries)."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NO_JOB = 2
EXIT_NOT_MINE = 3

log = logging.getLogger("filepipe.worker")


class JobError(Exception):
    """A failure with a sentence a user can read; it becomes the job's `error`."""


STOPPED_REASON = ("The VM was shut down before the job finished (it reached the job's time limit, or was stopped "
                  "from outside).")


def stop_on_sigterm(signum: int, frame: Any) -> None:
    """A shutdown (the in-VM watchdog's, or anyone's) sends SIGTERM first: end the job FAILED while we still can."""
    raise JobError(STOPPED_REASON)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def output_key(job_id: str, input_key: str) -> str:
    path = PurePosixPath(PurePosixPath(input_key).name)
    return "{}{}/{}.out{}".format(OUTPUT_PREFIX, job_id, path.stem, path.suffix)


def log_key(job_id: str) -> str:
    return "{}{}/worker.log".format(OUTPUT_PREFIX, job_id)


def split_s3_path(path: str) -> "tuple[str, str]":
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise JobError("The job's input_file_path {!r} is not <bucket>/<key>.".format(path))
    return bucket, key


class ChainedReader(io.RawIOBase):
    """A read-only stream over several streams in turn: the input body, then the separator and text.

    `read(n)` returns exactly n bytes until the end, because multipart upload parts (except the last) must be at
    least 5 MiB and s3transfer takes a short read for the end of the stream. It asks the underlying stream for all it
    still wants at once (a part's size: s3transfer reads part by part, so memory stays bounded by the parts): one
    8 MiB read of the input body, not eight 1 MiB reads joined afterwards, which made a 16 MiB copy's second part
    start about 5 ms later (docs/benchmarks.md).
    """

    def __init__(self, parts: Sequence[Any]) -> None:
        super().__init__()
        self._parts = list(parts)
        self.largest_read = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is None or size < 0:
            size = sys.maxsize
        chunks = []
        wanted = size
        while wanted > 0 and self._parts:
            chunk = self._parts[0].read(wanted)
            if not chunk:
                self._parts.pop(0)
                continue
            chunks.append(chunk)
            wanted -= len(chunk)
            self.largest_read = max(self.largest_read, len(chunk))
        data = b"".join(chunks)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def transition(ddb: Any, table: str, job_id: str, to: str, *, expected: List[str],
               attrs: Optional[Dict[str, str]] = None) -> bool:
    """Conditional status change, as handlers/jobmodel.transition (which also stamps `PHASE_STARTED[to]`): False
    when the job is not in `expected`."""
    for state in expected:
        if (state, to) not in WORKER_TRANSITIONS:
            raise ValueError("the worker may not move a job {} -> {}".format(state, to))
    names = {"#status": "status", "#updated": "updated_at", "#phase": PHASE_STARTED[to]}
    values = {":to": {"S": to}, ":now": {"S": utc_now()}}
    sets = ["#status = :to", "#updated = :now", "#phase = :now"]
    for i, (name, value) in enumerate(sorted((attrs or {}).items())):
        names["#a{}".format(i)] = name
        values[":a{}".format(i)] = {"S": value}
        sets.append("#a{0} = :a{0}".format(i))
    allowed = []
    for i, state in enumerate(expected):
        values[":e{}".format(i)] = {"S": state}
        allowed.append(":e{}".format(i))
    try:
        ddb.update_item(
            TableName=table,
            Key={"id": {"S": job_id}},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="attribute_exists(id) AND #status IN ({})".format(", ".join(allowed)),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    except ClientError as err:
        if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def read_job(ddb: Any, table: str, job_id: str) -> Optional[Dict[str, str]]:
    item = ddb.get_item(TableName=table, Key={"id": {"S": job_id}}, ConsistentRead=True).get("Item")
    if item is None:
        return None
    return {name: value["S"] for name, value in item.items() if "S" in value}


def describe(err: Exception, action: str) -> str:
    """A readable sentence for an AWS error, e.g. 'The input file s3://b/k no longer exists.'"""
    if isinstance(err, ClientError):
        code = err.response["Error"].get("Code", "")
        message = err.response["Error"].get("Message", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            return "{}: the object does not exist (it may have been deleted).".format(action)
        if code in ("AccessDenied", "403"):
            return "{}: access denied ({}).".format(action, message or code)
        return "{}: {} ({}).".format(action, message or "AWS error", code)
    return "{}: {}: {}.".format(action, type(err).__name__, err)


def write_output(s3: Any, job: Dict[str, str], job_id: str, bucket: str,
                 transfer: Optional[TransferConfig] = None) -> str:
    """Stream input + separator + text into the output object; return `<bucket>/<key>`.

    `transfer` defaults to `even_parts` for the output's size."""
    in_bucket, in_key = split_s3_path(job["input_file_path"])
    try:
        source = s3.get_object(Bucket=in_bucket, Key=in_key)
    except ClientError as err:
        raise JobError(describe(err, "Reading the input file s3://{}/{}".format(in_bucket, in_key))) from err
    text = job.get("input_text", "").encode("utf-8")
    reader = ChainedReader([source["Body"], io.BytesIO(SEPARATOR + text)])
    out_key = output_key(job_id, in_key)
    content_type = source.get("ContentType") or "application/octet-stream"
    if transfer is None:
        transfer = even_parts(int(source.get("ContentLength", 0)) + len(SEPARATOR) + len(text))
    try:
        s3.upload_fileobj(reader, bucket, out_key, ExtraArgs={"ContentType": content_type}, Config=transfer)
    except (ClientError, BotoCoreError) as err:
        raise JobError(describe(err, "Writing the output file s3://{}/{}".format(bucket, out_key))) from err
    log.info("wrote s3://%s/%s (%d bytes, largest read %d bytes)", bucket, out_key, reader.bytes_read,
             reader.largest_read)
    return "{}/{}".format(bucket, out_key)


def upload_log(s3: Any, bucket: str, job_id: str, log_file: Path) -> Optional[str]:
    """Best effort: a job's outcome must be recorded even when its log cannot be."""
    key = log_key(job_id)
    try:
        s3.upload_file(str(log_file), bucket, key, ExtraArgs={"ContentType": "text/plain; charset=utf-8"})
    except (ClientError, BotoCoreError, OSError) as err:
        log.warning("could not upload the log: %s", err)
        return None
    return "{}/{}".format(bucket, key)


@dataclass(frozen=True)
class Run:
    """Where one job run reads and writes: clients, table, bucket, and the local log file."""

    s3: Any
    ddb: Any
    table: str
    bucket: str
    job_id: str
    log_file: Path
    transfer: Optional[TransferConfig] = None
    """Multipart settings; None: `even_parts` for each output's size."""


def run_job(run: Run, instance_id: str) -> int:
    """Run one job from LAUNCHING to SUCCEEDED or FAILED; return the process exit code."""
    started = transition(run.ddb, run.table, run.job_id, RUNNING, expected=[LAUNCHING],
                         attrs={"instance_id": instance_id})
    if not started:
        job = read_job(run.ddb, run.table, run.job_id)
        if job is None:
            log.error("job %s does not exist in table %s: nothing to do", run.job_id, run.table)
            return EXIT_NO_JOB
        log.error("job %s is %s, not %s: another worker has it or it is over", run.job_id, job.get("status"),
                  LAUNCHING)
        return EXIT_NOT_MINE
    log.info("job %s: RUNNING on %s", run.job_id, instance_id)
    try:
        job = read_job(run.ddb, run.table, run.job_id)
        if job is None:
            raise JobError("The job's item disappeared while it was running.")
        output_path = write_output(run.s3, job, run.job_id, run.bucket, run.transfer)
    except Exception as err:  # any failure must end the job FAILED with a reason
        reason = str(err) if isinstance(err, JobError) else describe(err, "The worker failed")
        log.exception("job %s failed: %s", run.job_id, reason)
        finish(run, FAILED, {"error": reason})
        return EXIT_FAILED
    log.info("job %s: SUCCEEDED", run.job_id)
    finish(run, SUCCEEDED, {"output_file_path": output_path})
    return EXIT_OK


def finish(run: Run, status: str, attrs: Dict[str, str]) -> None:
    final = dict(attrs)
    log_path = upload_log(run.s3, run.bucket, run.job_id, run.log_file)
    if log_path:
        final["log_path"] = log_path
    if not transition(run.ddb, run.table, run.job_id, status, expected=[RUNNING], attrs=final):
        log.error("job %s was no longer RUNNING; %s not recorded", run.job_id, status)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run one filepipe job on this VM.")
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--bucket", required=True)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="filepipe-"))
    log_file = log_dir / "worker.log"
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(str(log_file), encoding="utf-8")):
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    session = boto3.session.Session()
    run = Run(s3=session.client("s3", config=CLIENT_LIMITS), ddb=session.client("dynamodb", config=CLIENT_LIMITS),
              table=args.table, bucket=args.bucket, job_id=args.job_id, log_file=log_file)
    return run_job(run, args.instance_id)


if __name__ == "__main__":
    sys.exit(main())
