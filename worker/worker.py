#!/usr/bin/env python3
"""filepipe worker: run one job on this VM and record the outcome on the job's item.

Runs on Amazon Linux 2023's system Python (3.9) with the distribution's boto3, fetched from S3 by the user-data as a
single file: so it imports nothing from this repository. The few names it shares with `handlers/jobmodel.py` are
copied below and `tests/runtime/test_worker_contract.py` checks that the copies agree.

Output: `outputs/<id>/<stem>.out<suffix>` = the input bytes, then " : ", then the job's text in UTF-8. An input of
5 MiB or more is copied inside S3 into a multipart upload (`copy_into_output`), so neither the VM's network nor its
memory grows with the file size (up to S3's 5 GB single object); a smaller one is read and written whole.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Sequence, Tuple

import boto3
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
MIN_PART_BYTES = 5 * 1024 * 1024
"""S3's smallest part but the last (AWS's multipart upload limits: parts of 5 MiB to 5 GiB, the last may be smaller,
at most 10,000 parts). An input under this size cannot be a copied part followed by the text: it is read and
written whole."""
MAX_PART_BYTES = 5 * 1024 * 1024 * 1024
"""S3's largest part, copied or uploaded."""
COPY_PART_BYTES = 512 * 1024 * 1024
"""The size the input is copied in (parts split it evenly, none larger): a 5 GB input is 10 copy requests, which
run `COPY_THREADS` at a time inside S3; none of the input's bytes cross the VM."""
COPY_THREADS = 4


CLIENT_LIMITS = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "total_max_attempts": 5})
"""Each AWS call of the worker: 5 s to connect, 30 s for an answer, 5 attempts in the standard retry mode (backoff
with jitter, throttling aware); so a stalled connection fails the job with a reason long before the in-VM watchdog
powers the VM off (the SDK defaults wait 60 s per read, with legacy retries)."""
COPY_LIMITS = Config(connect_timeout=5, read_timeout=300, retries={"mode": "standard", "total_max_attempts": 5})
"""The part copies' client: as CLIENT_LIMITS, but S3 may answer an UploadPartCopy only once its range (up to
`COPY_PART_BYTES`) is copied, so 30 s would ask S3 to copy at least 17 MiB/s; 300 s asks 1.7 MiB/s. The job's
time limit (the watchdog) still bounds the whole."""

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
        if code in ("PreconditionFailed", "412"):  # the input's ETag no longer matches the one HEAD saw
            return "{}: the input file was replaced while the job read it; run the job again.".format(action)
        return "{}: {} ({}).".format(action, message or "AWS error", code)
    return "{}: {}: {}.".format(action, type(err).__name__, err)


def copy_ranges(size: int, part_bytes: int = COPY_PART_BYTES) -> List[Tuple[int, int]]:
    """Inclusive byte ranges that split an input of `size` bytes evenly into parts of at most `part_bytes`.

    Every range is at least S3's 5 MiB minimum for a part that is not the last: `size` is at least that, and from
    two parts on each is at least half of `part_bytes` (which is at least twice the minimum).
    """
    if size < MIN_PART_BYTES:
        raise ValueError("an input under {} bytes is not copied in parts".format(MIN_PART_BYTES))
    if not 2 * MIN_PART_BYTES <= part_bytes <= MAX_PART_BYTES:
        raise ValueError("a copy part must be 10 MiB to 5 GiB")
    parts = -(-size // part_bytes)
    base, extra = divmod(size, parts)
    ranges = []
    start = 0
    for index in range(parts):
        length = base + (1 if index < extra else 0)
        ranges.append((start, start + length - 1))
        start += length
    return ranges


@dataclass(frozen=True)
class Input:
    """The job's input object, as HEAD saw it: the copy and the read name its ETag, so that an input replaced
    meanwhile fails the job instead of mixing two versions."""

    bucket: str
    key: str
    size: int
    etag: str
    content_type: str

    @property
    def where(self) -> str:
        return "s3://{}/{}".format(self.bucket, self.key)


def head_input(s3: Any, path: str) -> Input:
    bucket, key = split_s3_path(path)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        raise JobError(describe(err, "Reading the input file s3://{}/{}".format(bucket, key))) from err
    return Input(bucket=bucket, key=key, size=int(head["ContentLength"]), etag=head["ETag"],
                 content_type=head.get("ContentType") or "application/octet-stream")


def write_output(s3: Any, job: Dict[str, str], job_id: str, bucket: str, *,
                 copy_part_bytes: int = COPY_PART_BYTES, copier: Any = None) -> str:
    """Write input + separator + text to the job's output object; return `<bucket>/<key>`.

    An input of 5 MiB or more is copied inside S3 (`copy_into_output`): the VM sends only the separator and the
    text. A smaller one is read and written whole with one PutObject (at most twice 5 MiB through the VM).
    `copier` makes the part copies (default: `s3`)."""
    source = head_input(s3, job["input_file_path"])
    tail = SEPARATOR + job.get("input_text", "").encode("utf-8")
    out_key = output_key(job_id, source.key)
    if source.size < MIN_PART_BYTES:
        put_small_output(s3, source, bucket, out_key, tail)
    else:
        copy_into_output(s3, copier or s3, source, Upload(bucket, out_key), tail, part_bytes=copy_part_bytes)
    log.info("wrote s3://%s/%s (%d bytes of input, %d of separator and text)", bucket, out_key, source.size,
             len(tail))
    return "{}/{}".format(bucket, out_key)


def put_small_output(s3: Any, source: Input, bucket: str, out_key: str, tail: bytes) -> None:
    try:
        body = s3.get_object(Bucket=source.bucket, Key=source.key, IfMatch=source.etag)["Body"].read()
    except (ClientError, BotoCoreError) as err:
        raise JobError(describe(err, "Reading the input file " + source.where)) from err
    try:
        s3.put_object(Bucket=bucket, Key=out_key, Body=body + tail, ContentType=source.content_type)
    except (ClientError, BotoCoreError) as err:
        raise JobError(describe(err, "Writing the output file s3://{}/{}".format(bucket, out_key))) from err


@dataclass(frozen=True)
class Upload:
    """The output's multipart upload."""

    bucket: str
    key: str
    upload_id: str = ""


def copy_into_output(s3: Any, copier: Any, source: Input, output: Upload, tail: bytes, *, part_bytes: int) -> None:
    """A multipart upload whose parts are server-side copies of the input's byte ranges (UploadPartCopy, made with
    `copier`), then one part (UploadPart) holding the separator and the text; completed, or aborted on any failure
    (a SIGTERM's JobError included) so that no parts are left behind to be billed (the bucket's lifecycle rule
    aborts what an abort could not)."""
    where = "Writing the output file s3://{}/{}".format(output.bucket, output.key)
    try:
        answer = s3.create_multipart_upload(Bucket=output.bucket, Key=output.key, ContentType=source.content_type)
    except (ClientError, BotoCoreError) as err:
        raise JobError(describe(err, where)) from err
    upload = Upload(output.bucket, output.key, answer["UploadId"])
    try:
        parts = copy_parts(copier, source, upload, copy_ranges(source.size, part_bytes))
        number = len(parts) + 1
        last = s3.upload_part(Bucket=upload.bucket, Key=upload.key, UploadId=upload.upload_id, PartNumber=number,
                              Body=tail)
        parts.append({"PartNumber": number, "ETag": last["ETag"]})
        s3.complete_multipart_upload(Bucket=upload.bucket, Key=upload.key, UploadId=upload.upload_id,
                                     MultipartUpload={"Parts": parts})
    except BaseException as err:
        abort_upload(s3, upload)
        if isinstance(err, (ClientError, BotoCoreError)):
            raise JobError(describe(err, where)) from err
        raise


def copy_parts(copier: Any, source: Input, upload: Upload, ranges: Sequence[Tuple[int, int]]) -> List[Dict[str, Any]]:
    """UploadPartCopy of each range, `COPY_THREADS` at a time; the parts in order. The first failure stops the
    copies not yet started and is raised."""
    def copy(number: int, first: int, last: int) -> Dict[str, Any]:
        answer = copier.upload_part_copy(
            Bucket=upload.bucket, Key=upload.key, UploadId=upload.upload_id, PartNumber=number,
            CopySource={"Bucket": source.bucket, "Key": source.key}, CopySourceIfMatch=source.etag,
            CopySourceRange="bytes={}-{}".format(first, last),
        )
        return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

    pool = ThreadPoolExecutor(max_workers=COPY_THREADS, thread_name_prefix="copy-part")
    try:
        futures = [pool.submit(copy, number, first, last) for number, (first, last) in enumerate(ranges, start=1)]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def abort_upload(s3: Any, upload: Upload) -> None:
    """Best effort: the job's failure is what matters; a part still being copied may outlive the abort, and the
    lifecycle rule aborts the upload a day later."""
    try:
        s3.abort_multipart_upload(Bucket=upload.bucket, Key=upload.key, UploadId=upload.upload_id)
        log.info("aborted the multipart upload of s3://%s/%s", upload.bucket, upload.key)
    except (ClientError, BotoCoreError) as err:
        log.warning("could not abort the multipart upload of s3://%s/%s: %s", upload.bucket, upload.key, err)


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
    copier: Any = None
    """The S3 client of the part copies (built with COPY_LIMITS); None: `s3`."""


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
        output_path = write_output(run.s3, job, run.job_id, run.bucket, copier=run.copier)
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
              copier=session.client("s3", config=COPY_LIMITS),
              table=args.table, bucket=args.bucket, job_id=args.job_id, log_file=log_file)
    return run_job(run, args.instance_id)


if __name__ == "__main__":
    sys.exit(main())
