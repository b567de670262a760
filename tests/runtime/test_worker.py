"""The VM worker in-process against moto: exact output bytes, final item, and every failure ending FAILED."""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from handlers import jobmodel
from handlers.jobmodel import Actor, Status
from tests.conftest import Aws
from tests.runtime.jobs import get_item, put_job
from tests.waiting import wait_for
from worker import worker

MIB = 1024 * 1024


def run(aws: Aws, job_id: str, tmp_path: Path, s3: Any = None, copier: Any = None) -> int:
    log_file = tmp_path / "worker.log"
    log_file.write_text("")
    context = worker.Run(s3=s3 or aws.client("s3"), ddb=aws.client("dynamodb"), table=aws.stack.table,
                         bucket=aws.stack.bucket, job_id=job_id, log_file=log_file, copier=copier)
    return worker.run_job(context, "i-0123456789abcdef0")


def output_bytes(aws: Aws, item: dict[str, str]) -> bytes:
    bucket, key = item["output_file_path"].split("/", 1)
    return aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.mark.parametrize(
    ("content", "text", "filename", "expected_name"),
    [
        (b"hello", "world", "notes.txt", "notes.out.txt"),
        (b"", "only text", "empty.txt", "empty.out.txt"),
        (bytes(range(256)) * 4, "binary", "blob.bin", "blob.out.bin"),
        (b"caf\xc3\xa9", "na\u00efve \u2014 \u65e5\u672c\u8a9e \U0001f600", "u.txt", "u.out.txt"),
        (b"no ext", "x", "README", "README.out"),
        (b"dots", "y", "archive.tar.gz", "archive.tar.out.gz"),
    ],
)
def test_output_is_input_then_separator_then_text(
    aws: Aws, tmp_path: Path, content: bytes, text: str, filename: str, expected_name: str
) -> None:
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    job_id, _ = put_job(s3, ddb, aws.stack, content=content, text=text, filename=filename)

    assert run(aws, job_id, tmp_path) == worker.EXIT_OK

    item = get_item(ddb, aws.stack, job_id)
    assert item is not None and item["status"] == Status.SUCCEEDED
    assert item["output_file_path"] == f"{aws.stack.bucket}/outputs/{job_id}/{expected_name}"
    assert output_bytes(aws, item) == content + b" : " + text.encode("utf-8")
    assert item["instance_id"] == "i-0123456789abcdef0"
    assert item["started_at"] <= item["finished_at"]


def test_log_is_uploaded_next_to_the_output(aws: Aws, tmp_path: Path) -> None:
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    job_id, _ = put_job(s3, ddb, aws.stack, content=b"a", text="b")
    (tmp_path / "worker.log").write_text("")
    run(aws, job_id, tmp_path)
    item = get_item(ddb, aws.stack, job_id)
    assert item is not None
    assert item["log_path"] == f"{aws.stack.bucket}/outputs/{job_id}/worker.log"


class Overridden:
    """`client` with some of its methods replaced: a fault injected into one call the worker makes."""

    def __init__(self, client: Any, **methods: Any) -> None:
        self._client = client
        self.__dict__.update(methods)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class Recording:
    """An S3 client that records each call's operation and parameters (from any thread), and can fail one
    operation with an AWS error."""

    def __init__(self, s3: Any, fail: str | None = None) -> None:
        self.s3, self.fail = s3, fail
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.s3, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            if name == self.fail:
                raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, name)
            return method(*args, **kwargs)
        return call

    def named(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for called, kwargs in self.calls if called == name]


def no_uploads_left(aws: Aws) -> bool:
    return not aws.client("s3").list_multipart_uploads(Bucket=aws.stack.bucket).get("Uploads")


def test_a_large_input_is_copied_inside_s3_and_only_the_text_crosses_the_vm(aws: Aws, tmp_path: Path) -> None:
    """Regression: the worker streamed every input down and the output up (a 64 MiB job moved 129 MiB through the
    VM). An input of 5 MiB or more is now copied by S3 (UploadPartCopy of its byte ranges, guarded by the ETag
    HEAD saw); the VM sends one part, the separator and the text."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    content = os.urandom(MIB) * 12 + b"end"
    job_id, key = put_job(s3, ddb, aws.stack, content=content, text="caf\u00e9", filename="big.bin",
                          content_type="application/x-filepipe-test")
    recording = Recording(s3)

    assert run(aws, job_id, tmp_path, s3=recording) == worker.EXIT_OK

    item = get_item(ddb, aws.stack, job_id) or {}
    assert output_bytes(aws, item) == content + " : caf\u00e9".encode()
    bucket, out_key = item["output_file_path"].split("/", 1)
    assert s3.head_object(Bucket=bucket, Key=out_key)["ContentType"] == "application/x-filepipe-test"
    assert recording.named("get_object") == [], "the input was read through the VM"
    etag = s3.head_object(Bucket=aws.stack.bucket, Key=key)["ETag"]
    assert [(c["CopySourceRange"], c["CopySourceIfMatch"], c["PartNumber"]) for c in recording.named(
        "upload_part_copy")] == [(f"bytes=0-{len(content) - 1}", etag, 1)]
    [last] = recording.named("upload_part")
    assert (last["PartNumber"], last["Body"]) == (2, " : caf\u00e9".encode())
    assert no_uploads_left(aws)


def test_copy_parts_of_a_large_input_end_with_a_tiny_text_part(aws: Aws, tmp_path: Path) -> None:
    """Three copied ranges (each at least S3's 5 MiB, which moto enforces on completion) and a 4-byte last part."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    content = os.urandom(MIB) * 25 + b"odd"
    job_id, _ = put_job(s3, ddb, aws.stack, content=content, text="t", filename="parts.bin")
    recording = Recording(s3)
    job = get_item(ddb, aws.stack, job_id) or {}

    path = worker.write_output(s3, job, job_id, aws.stack.bucket, copy_part_bytes=10 * MIB, copier=recording)

    assert output_bytes(aws, {"output_file_path": path}) == content + b" : t"
    ranges = sorted((c["PartNumber"], c["CopySourceRange"]) for c in recording.named("upload_part_copy"))
    # 26,214,403 bytes in three (at most 10 MiB each): 8,738,135 + 8,738,134 + 8,738,134
    assert ranges == [(1, "bytes=0-8738134"), (2, "bytes=8738135-17476268"), (3, "bytes=17476269-26214402")]


@pytest.mark.parametrize("size", [5 * MIB, 10 * MIB + 1, 512 * MIB, 512 * MIB + 1, 1024 * MIB, 5 * 10**9,
                                  5 * 1024 * MIB + 7])
@pytest.mark.parametrize("part_bytes", [10 * MIB, worker.COPY_PART_BYTES])
def test_copy_ranges_cover_the_input_in_parts_s3_accepts(size: int, part_bytes: int) -> None:
    """Contiguous, the whole input, each 5 MiB to `part_bytes` (so under S3's 5 GiB), with room for the last part
    within S3's 10,000."""
    ranges = worker.copy_ranges(size, part_bytes)
    assert ranges[0][0] == 0 and ranges[-1][1] == size - 1
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
    lengths = [last - first + 1 for first, last in ranges]
    assert all(worker.MIN_PART_BYTES <= n <= part_bytes for n in lengths), (min(lengths), max(lengths))
    assert len(ranges) + 1 <= 10_000


def test_copy_ranges_refuse_what_s3_would() -> None:
    with pytest.raises(ValueError, match="not copied in parts"):
        worker.copy_ranges(worker.MIN_PART_BYTES - 1)
    with pytest.raises(ValueError, match="10 MiB to 5 GiB"):
        worker.copy_ranges(6 * MIB, part_bytes=6 * MIB)


def test_an_input_under_5_mib_is_read_and_written_with_one_put(aws: Aws, tmp_path: Path) -> None:
    """Under S3's minimum part size an input cannot be a copied part followed by the text: one GET, one PUT, no
    multipart upload; the content type is the input's."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    content = os.urandom(worker.MIN_PART_BYTES - 1)
    job_id, _ = put_job(s3, ddb, aws.stack, content=content, text="x", content_type="image/png")
    recording = Recording(s3)

    assert run(aws, job_id, tmp_path, s3=recording) == worker.EXIT_OK

    item = get_item(ddb, aws.stack, job_id) or {}
    assert output_bytes(aws, item) == content + b" : x"
    assert [name for name, _ in recording.calls if name != "upload_file"] == ["head_object", "get_object",
                                                                               "put_object"]
    assert recording.named("put_object")[0]["ContentType"] == "image/png"


@pytest.mark.parametrize("failing", ["upload_part_copy", "upload_part", "complete_multipart_upload"])
def test_a_failure_during_the_copy_aborts_the_upload_and_fails_the_job(aws: Aws, tmp_path: Path,
                                                                       failing: str) -> None:
    """No parts left behind (billed until the lifecycle rule's day is over), no output, the job FAILED with the
    output it could not write."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    job_id, _ = put_job(s3, ddb, aws.stack, content=os.urandom(MIB) * 6, text="t", filename="f.bin")
    recording = Recording(s3, fail=failing)

    assert run(aws, job_id, tmp_path, s3=recording) == worker.EXIT_FAILED

    item = get_item(ddb, aws.stack, job_id) or {}
    assert item["status"] == Status.FAILED and "Writing the output file" in item["error"] and "injected" in item[
        "error"]
    assert len(recording.named("abort_multipart_upload")) == 1
    assert no_uploads_left(aws)
    listed = s3.list_objects_v2(Bucket=aws.stack.bucket, Prefix=f"outputs/{job_id}/")
    assert [o["Key"] for o in listed.get("Contents", [])] == [f"outputs/{job_id}/worker.log"]


def test_a_shutdown_during_the_copy_aborts_the_upload(aws: Aws, tmp_path: Path) -> None:
    """The watchdog's SIGTERM lands while a part is being copied (in a copy thread): the job ends FAILED with the
    reason and the upload is aborted."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    job_id, _ = put_job(s3, ddb, aws.stack, content=os.urandom(MIB) * 6, text="t", filename="f.bin")

    def upload_part_copy(**kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)  # the main thread handles the signal meanwhile
        return s3.upload_part_copy(**kwargs)

    previous = signal.signal(signal.SIGTERM, worker.stop_on_sigterm)
    try:
        copier = Overridden(s3, upload_part_copy=upload_part_copy)
        assert run(aws, job_id, tmp_path, copier=copier) == worker.EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)

    item = get_item(ddb, aws.stack, job_id) or {}
    assert item["status"] == Status.FAILED and item["error"] == worker.STOPPED_REASON
    wait_for(lambda: no_uploads_left(aws), 5, "the output's upload to be aborted")


def test_missing_input_ends_failed_with_a_reason(aws: Aws, tmp_path: Path) -> None:
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    job_id, key = put_job(s3, ddb, aws.stack, content=b"gone", text="t")
    s3.delete_object(Bucket=aws.stack.bucket, Key=key)

    assert run(aws, job_id, tmp_path) == worker.EXIT_FAILED

    item = get_item(ddb, aws.stack, job_id)
    assert item is not None and item["status"] == Status.FAILED
    assert "does not exist" in item["error"] and key in item["error"]
    assert "output_file_path" not in item
    assert item["log_path"].endswith(f"outputs/{job_id}/worker.log")


def test_missing_item_exits_clearly_and_writes_nothing(aws: Aws, tmp_path: Path) -> None:
    ddb = aws.client("dynamodb")
    assert run(aws, "x" * 21, tmp_path) == worker.EXIT_NO_JOB
    assert get_item(ddb, aws.stack, "x" * 21) is None, "the worker created an item for an unknown job"


@pytest.mark.parametrize("status", [Status.PENDING, Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED])
def test_a_job_not_launching_is_left_alone(aws: Aws, tmp_path: Path, status: Status) -> None:
    """A second VM for the same job (or a late one) must not run it again nor move it."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    job_id, _ = put_job(s3, ddb, aws.stack, content=b"a", text="b", status=status)
    before = get_item(ddb, aws.stack, job_id)

    assert run(aws, job_id, tmp_path) == worker.EXIT_NOT_MINE

    assert get_item(ddb, aws.stack, job_id) == before
    listed = s3.list_objects_v2(Bucket=aws.stack.bucket, Prefix=f"outputs/{job_id}/")
    assert listed["KeyCount"] == 0


class CancelledWhileReading:
    """An S3 client that lets the job's owner cancel it while the worker reads its input (`fail`: then the read
    fails too)."""

    def __init__(self, s3: Any, ddb: Any, aws: Aws, job_id: str, fail: bool = False) -> None:
        self.s3, self.ddb, self.aws, self.job_id, self.fail = s3, ddb, aws, job_id, fail

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)

    def get_object(self, **kwargs: Any) -> Any:
        moved = jobmodel.transition(self.ddb, self.aws.stack.table, self.job_id, Status.CANCELLED,
                                    expected=[Status.RUNNING], by=Actor.USER)
        assert moved is not None
        if self.fail:
            kwargs["Key"] += ".gone"
        return self.s3.get_object(**kwargs)


@pytest.mark.parametrize("fail", [False, True], ids=["succeeds", "fails"])
def test_a_job_cancelled_mid_run_stays_cancelled(aws: Aws, tmp_path: Path, fail: bool) -> None:
    """The worker's last write (RUNNING -> SUCCEEDED or FAILED) is conditional on RUNNING: a cancel that lands while
    the worker runs is never overwritten, whatever the worker's outcome."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    job_id, _ = put_job(s3, ddb, aws.stack, content=b"a", text="b")
    log_file = tmp_path / "worker.log"
    log_file.write_text("")
    run = worker.Run(s3=CancelledWhileReading(s3, ddb, aws, job_id, fail), ddb=ddb, table=aws.stack.table,
                     bucket=aws.stack.bucket, job_id=job_id, log_file=log_file)

    worker.run_job(run, "i-1")

    item = get_item(ddb, aws.stack, job_id)
    assert item is not None and item["status"] == Status.CANCELLED
    assert "output_file_path" not in item and "error" not in item and "log_path" not in item


def test_a_shutdown_mid_job_ends_it_failed_with_the_reason(aws: Aws, tmp_path: Path) -> None:
    """The watchdog's `shutdown -h +N` sends SIGTERM to the worker first: the job must end FAILED, not hang RUNNING."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    job_id, _ = put_job(s3, ddb, aws.stack, content=b"slow", text="t")

    def get_object(**kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        return s3.get_object(**kwargs)

    previous = signal.signal(signal.SIGTERM, worker.stop_on_sigterm)
    try:
        assert run(aws, job_id, tmp_path, s3=Overridden(s3, get_object=get_object)) == worker.EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)

    item = get_item(ddb, aws.stack, job_id)
    assert item is not None and item["status"] == Status.FAILED
    assert item["error"] == worker.STOPPED_REASON


def test_the_worker_bounds_every_aws_call(aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: with the SDK defaults (60 s reads, legacy retries) a stalled connection held the job until the
    in-VM watchdog powered the VM off, with no reason recorded. `main` builds every client with the limits: the
    part copies' with a longer read (S3 may answer one only once its range is copied), the others with 30 s."""
    job_id, _ = put_job(aws.client("s3"), aws.client("dynamodb"), aws.stack, content=b"x", text="t")
    built: list[tuple[str, Any]] = []
    real_client = worker.boto3.session.Session.client

    def client(self: Any, service: str, **kwargs: Any) -> Any:
        built.append((service, kwargs.get("config")))
        return real_client(self, service, **kwargs)

    monkeypatch.setattr(worker.boto3.session.Session, "client", client)
    monkeypatch.setattr(worker.signal, "signal", lambda *args: None)
    code = worker.main([f"--job-id={job_id}", "--instance-id=i-1", f"--table={aws.stack.table}",
                        f"--bucket={aws.stack.bucket}"])

    assert code == worker.EXIT_OK
    assert sorted((service, id(config)) for service, config in built) == sorted(
        [("s3", id(worker.CLIENT_LIMITS)), ("dynamodb", id(worker.CLIENT_LIMITS)), ("s3", id(worker.COPY_LIMITS))])
    sdk_default = Config()
    for limits in (worker.CLIENT_LIMITS, worker.COPY_LIMITS):
        assert limits.connect_timeout < sdk_default.connect_timeout
        assert limits.retries is not None and limits.retries["mode"] == "standard"
        assert limits.retries["total_max_attempts"]
    assert worker.CLIENT_LIMITS.read_timeout < sdk_default.read_timeout < worker.COPY_LIMITS.read_timeout


def test_an_input_replaced_while_the_job_reads_it_fails_the_job(aws: Aws, tmp_path: Path) -> None:
    """The reads name the ETag HEAD saw (GetObject's IfMatch; each UploadPartCopy's CopySourceIfMatch, which S3
    enforces and moto ignores): an input overwritten in between fails the job with that reason, rather than mixing
    two versions or writing the new one under the old one's job."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    job_id, key = put_job(s3, ddb, aws.stack, content=b"first", text="t")

    def head_object(**kwargs: Any) -> Any:
        answer = s3.head_object(**kwargs)
        s3.put_object(Bucket=aws.stack.bucket, Key=key, Body=b"second")
        return answer

    assert run(aws, job_id, tmp_path, s3=Overridden(s3, head_object=head_object)) == worker.EXIT_FAILED

    item = get_item(ddb, aws.stack, job_id) or {}
    assert item["status"] == Status.FAILED and "replaced while the job read it" in item["error"], item
    assert "output_file_path" not in item
