"""The VM worker in-process against moto: exact output bytes, final item, and every failure ending FAILED."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from handlers import jobmodel
from handlers.jobmodel import Actor, Status
from tests.conftest import Aws
from tests.runtime.jobs import get_item, put_job
from worker import worker

SMALL_PARTS = worker.transfer_config(part_bytes=5 * 1024 * 1024, parts_in_memory=2)


def run(aws: Aws, job_id: str, tmp_path: Path, transfer: TransferConfig | None = None) -> int:
    log_file = tmp_path / "worker.log"
    log_file.write_text("")
    context = worker.Run(s3=aws.client("s3"), ddb=aws.client("dynamodb"), table=aws.stack.table,
                         bucket=aws.stack.bucket, job_id=job_id, log_file=log_file, transfer=transfer)
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


def test_large_input_is_streamed_in_bounded_reads(aws: Aws, tmp_path: Path) -> None:
    """A 12 MiB input goes through a multipart upload read 1 MiB at a time, never loaded whole."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    content = bytes(range(256)) * (12 * 4096)
    job_id, _ = put_job(s3, ddb, aws.stack, content=content, text="big", filename="big.bin")
    reads: list[int] = []
    original = worker.ChainedReader.read

    def spy(self: worker.ChainedReader, size: int | None = -1) -> bytes:
        data = original(self, size)
        reads.append(len(data))
        return data

    worker.ChainedReader.read = spy  # type: ignore[method-assign]
    try:
        assert run(aws, job_id, tmp_path, transfer=SMALL_PARTS) == worker.EXIT_OK
    finally:
        worker.ChainedReader.read = original  # type: ignore[method-assign]

    item = get_item(ddb, aws.stack, job_id)
    assert item is not None
    assert output_bytes(aws, item) == content + b" : big"
    assert max(reads) <= SMALL_PARTS.multipart_chunksize, "the worker read more than one part at a time"
    assert len([r for r in reads if r]) >= 3, "the input was not read in parts"


def test_an_input_of_whole_parts_makes_no_tiny_last_part(aws: Aws, tmp_path: Path) -> None:
    """A 16 MiB input: the output (16 MiB + " : text") goes up in two parts, not 8 MiB + 8 MiB + 9 bytes."""
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    content = os.urandom(1024) * (16 * 1024)
    job_id, _ = put_job(s3, ddb, aws.stack, content=content, text="whole", filename="whole.bin")
    uploaded: list[int] = []
    worker_s3 = aws.client("s3")
    worker_s3.meta.events.register("before-call.s3.UploadPart", lambda params, **_: uploaded.append(
        len(params["body"]) if isinstance(params.get("body"), bytes) else -1))
    log_file = tmp_path / "worker.log"
    log_file.write_text("")
    context = worker.Run(s3=worker_s3, ddb=ddb, table=aws.stack.table, bucket=aws.stack.bucket, job_id=job_id,
                         log_file=log_file)
    assert worker.run_job(context, "i-0123456789abcdef0") == worker.EXIT_OK

    assert output_bytes(aws, get_item(ddb, aws.stack, job_id) or {}) == content + b" : whole"
    assert len(uploaded) == 2, uploaded


@pytest.mark.parametrize("total", [1, worker.PART_BYTES - 1, worker.PART_BYTES, worker.PART_BYTES + 9,
                                   2 * worker.PART_BYTES + 9, 3 * worker.PART_BYTES - 1, 1024 * worker.PART_BYTES + 9])
def test_even_parts_cover_the_output_in_parts_s3_accepts(total: int) -> None:
    """Every part but the last at least S3's 5 MiB, at most 10,000 parts, none beyond the output, memory bounded."""
    config = worker.even_parts(total)
    if total < worker.PART_BYTES:
        assert config.multipart_threshold > total, "a small output is one PutObject"
        return
    size = config.multipart_chunksize
    parts = -(-total // size)
    assert 5 * 1024 * 1024 <= size < 2 * worker.PART_BYTES
    assert parts == max(1, total // worker.PART_BYTES) and parts <= 10_000
    assert total - (parts - 1) * size > 0, "no empty last part"
    assert config.multipart_threshold == size, "s3transfer's first read (the threshold) is the whole first part"


class RecordingStream(io.BytesIO):
    """Remembers how much each read asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(size)
        return super().read(size)


def test_chained_reader_fills_each_read_across_parts() -> None:
    """Multipart parts must be full-size until the end; short reads between streams would make S3 refuse them."""
    streams = [RecordingStream(b"abc"), RecordingStream(b""), RecordingStream(b"defgh")]
    reader = worker.ChainedReader(streams)
    assert reader.read(4) == b"abcd"
    assert reader.read(10) == b"efgh"
    assert reader.read(10) == b""
    asked = [size for stream in streams for size in stream.asked]
    assert all(size is not None and 0 < size <= 10 for size in asked), f"an unbounded or oversized read: {asked}"
    assert reader.largest_read == 4 and reader.bytes_read == 8


def test_chained_reader_asks_for_a_whole_part_in_one_read() -> None:
    """s3transfer reads a part at a time: one read of the input per part, not a series of small reads joined."""
    part = 8 * 1024 * 1024
    body = RecordingStream(bytes(2 * part))
    reader = worker.ChainedReader([body, io.BytesIO(b" : text")])
    assert len(reader.read(part)) == part
    assert body.asked == [part]


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

    class ShutdownWhileReading:
        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def get_object(self, **kwargs: Any) -> Any:
            os.kill(os.getpid(), signal.SIGTERM)
            return s3.get_object(**kwargs)

    previous = signal.signal(signal.SIGTERM, worker.stop_on_sigterm)
    try:
        log_file = tmp_path / "worker.log"
        log_file.write_text("")
        run = worker.Run(s3=ShutdownWhileReading(), ddb=ddb, table=aws.stack.table, bucket=aws.stack.bucket,
                         job_id=job_id, log_file=log_file)
        assert worker.run_job(run, "i-1") == worker.EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)

    item = get_item(ddb, aws.stack, job_id)
    assert item is not None and item["status"] == Status.FAILED
    assert item["error"] == worker.STOPPED_REASON


def test_the_worker_bounds_every_aws_call(aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: with the SDK defaults (60 s reads, legacy retries) a stalled connection held the job until the
    in-VM watchdog powered the VM off, with no reason recorded. `main` builds both clients with the limits."""
    job_id, _ = put_job(aws.client("s3"), aws.client("dynamodb"), aws.stack, content=b"x", text="t")
    built: dict[str, Any] = {}
    real_client = worker.boto3.session.Session.client

    def client(self: Any, service: str, **kwargs: Any) -> Any:
        built[service] = kwargs.get("config")
        return real_client(self, service, **kwargs)

    monkeypatch.setattr(worker.boto3.session.Session, "client", client)
    monkeypatch.setattr(worker.signal, "signal", lambda *args: None)
    code = worker.main([f"--job-id={job_id}", "--instance-id=i-1", f"--table={aws.stack.table}",
                        f"--bucket={aws.stack.bucket}"])

    assert code == worker.EXIT_OK
    assert set(built) == {"s3", "dynamodb"} and all(config is worker.CLIENT_LIMITS for config in built.values())
    limits, sdk_default = worker.CLIENT_LIMITS, Config()
    assert limits.connect_timeout < sdk_default.connect_timeout and limits.read_timeout < sdk_default.read_timeout
    assert limits.retries is not None and limits.retries["mode"] == "standard" and limits.retries["total_max_attempts"]
