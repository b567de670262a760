"""The local emulator codes around moto gaps that DynamoDB does not have (local/emulator.py): requests are
atomic, and a cancelled transaction leaves the table's stream readable."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from handlers import grants, jobmodel, quota
from local.emulator import EndpointSession, MotoServer
from tests.records import active_jobs

TABLE = "emulator-test-jobs"


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[EndpointSession]:
    emulator = MotoServer()
    emulator.start()
    try:
        session = EndpointSession(emulator.endpoint_url)
        session.client("dynamodb").create_table(**jobmodel.table_definition(TABLE))
        yield session
    finally:
        emulator.stop()


def new_job(owner: str) -> dict[str, str]:
    job_id = jobmodel.new_id()
    return jobmodel.new_job(job_id, "t", f"b/inputs/{job_id}/a.txt", owner)


def test_concurrent_conditional_writes_cannot_all_pass(dynamodb: EndpointSession) -> None:
    """Twenty submissions at once against a limit of five: exactly five are saved, as DynamoDB guarantees."""
    jobs = [new_job("burst-user") for _ in range(20)]
    clients = [dynamodb.client("dynamodb") for _ in jobs]

    def create(pair: tuple[Any, dict[str, str]]) -> bool:
        client, job = pair
        try:
            quota.create_job(client, TABLE, job, max_active_jobs_per_user=5)
        except quota.QuotaExceededError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=20) as pool:
        created = list(pool.map(create, zip(clients, jobs, strict=True)))
    assert created.count(True) == 5
    assert active_jobs(dynamodb.client("dynamodb"), TABLE, "burst-user") == 5


def test_concurrent_upload_grants_cannot_pass_the_hourly_allowance(dynamodb: EndpointSession) -> None:
    """Twenty grants asked at once by one user against an allowance of five (handlers/grants.py): exactly five."""
    clients = [dynamodb.client("dynamodb") for _ in range(20)]

    def ask(client: Any) -> bool:
        try:
            grants.take_grant(client, TABLE, "grant-user", per_hour=5)
        except grants.TooManyGrantsError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=20) as pool:
        granted = list(pool.map(ask, clients))
    assert granted.count(True) == 5


def test_a_cancelled_transaction_leaves_the_stream_readable(dynamodb: EndpointSession) -> None:
    """Regression: after moto rolled a transaction back, a stream reader never saw another record."""
    ddb, streams = dynamodb.client("dynamodb"), dynamodb.client("dynamodbstreams")
    stream_arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard, ShardIteratorType="LATEST")
    position = iterator["ShardIterator"]

    quota.create_job(ddb, TABLE, new_job("one-place"), max_active_jobs_per_user=1)
    refused = new_job("one-place")
    with pytest.raises(quota.QuotaExceededError):
        quota.create_job(ddb, TABLE, refused, max_active_jobs_per_user=1)
    after = new_job("someone-else")
    quota.create_job(ddb, TABLE, after, max_active_jobs_per_user=1)

    records = streams.get_records(ShardIterator=position)["Records"]
    inserted = [r["dynamodb"]["Keys"]["id"]["S"] for r in records if r["eventName"] == "INSERT"]
    assert after["id"] in inserted, "the write after the rollback reaches the stream"
    assert refused["id"] not in inserted, "the rolled-back write does not"


def test_a_cancelled_transaction_puts_back_exactly_the_items_it_touched(dynamodb: EndpointSession) -> None:
    """The job put and the counter update of a refused submission are both undone; other items stay as they were."""
    ddb = dynamodb.client("dynamodb")
    kept = new_job("full-user")
    quota.create_job(ddb, TABLE, kept, max_active_jobs_per_user=1)
    bystander = new_job("bystander")
    quota.create_job(ddb, TABLE, bystander, max_active_jobs_per_user=1)
    before = ddb.scan(TableName=TABLE, ConsistentRead=True)["Items"]

    refused = new_job("full-user")
    with pytest.raises(quota.QuotaExceededError):
        quota.create_job(ddb, TABLE, refused, max_active_jobs_per_user=1)
    with pytest.raises(quota.JobExistsError):
        quota.create_job(ddb, TABLE, {**kept, "owner": "bystander"}, max_active_jobs_per_user=5)

    after = ddb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    assert sorted(map(str, after)) == sorted(map(str, before))
    assert active_jobs(ddb, TABLE, "full-user") == 1
    assert active_jobs(ddb, TABLE, "bystander") == 1


def test_a_part_copy_reads_only_its_range_of_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto read the whole source object for each UploadPartCopy (a 4 GiB input in eight parts: 32 GiB read); local
    mode reads the range, and the part holds exactly those bytes."""
    import boto3  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415
    from moto.s3.models import FakeKey, S3Backend  # noqa: PLC0415

    from local.emulator import copy_only_the_range_of_a_part  # noqa: PLC0415

    monkeypatch.setattr(S3Backend, "upload_part_copy", S3Backend.upload_part_copy)  # put back after the test
    copy_only_the_range_of_a_part()
    content = bytes(range(256)) * 8 * 4096  # 8 MiB

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="emulator-test-data")
        s3.put_object(Bucket="emulator-test-data", Key="in", Body=content)
        upload = s3.create_multipart_upload(Bucket="emulator-test-data", Key="out")["UploadId"]

        def whole_read(self: FakeKey) -> bytes:
            raise AssertionError(f"the whole of {self.name} was read")

        with monkeypatch.context() as reading:
            reading.setattr(FakeKey, "value", property(whole_read, FakeKey.value.fset))
            copied = s3.upload_part_copy(Bucket="emulator-test-data", Key="out", UploadId=upload, PartNumber=1,
                                         CopySource={"Bucket": "emulator-test-data", "Key": "in"},
                                         CopySourceRange="bytes=1000-5243879")
        last = s3.upload_part(Bucket="emulator-test-data", Key="out", UploadId=upload, PartNumber=2, Body=b"!")
        s3.complete_multipart_upload(Bucket="emulator-test-data", Key="out", UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": copied["CopyPartResult"]["ETag"]},
                      {"PartNumber": 2, "ETag": last["ETag"]}]})
        assert s3.get_object(Bucket="emulator-test-data", Key="out")["Body"].read() == content[1000:5243880] + b"!"


@pytest.fixture
def local_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An in-process moto S3 with local mode's part copy and completion (`local.emulator`), put back afterwards;
    its client, with the bucket "emulator-test-data"."""
    import boto3  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415
    from moto.s3.models import FakeKey, FakeMultipart, S3Backend  # noqa: PLC0415

    from local.emulator import copy_only_the_range_of_a_part, join_parts_once  # noqa: PLC0415

    for owner, name in ((S3Backend, "upload_part_copy"), (S3Backend, "complete_multipart_upload"),
                        (FakeMultipart, "complete"), (FakeKey, "value")):
        monkeypatch.setattr(owner, name, owner.__dict__[name])
    copy_only_the_range_of_a_part()
    join_parts_once()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="emulator-test-data")
        yield s3


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of every read from an S3 object's or part's buffer (moto's FakeKey holds its bytes in a
    SpooledTemporaryFile), from now on."""
    reads: list[int] = []
    read = tempfile.SpooledTemporaryFile.read

    def counted(self: tempfile.SpooledTemporaryFile[bytes], *args: Any) -> bytes:
        data = read(self, *args)
        reads.append(len(data))
        return data

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "read", counted)
    return reads


PATTERN = bytes(range(256)) * 4096  # 1 MiB


def test_a_part_copy_reads_its_range_once_and_its_etag_is_the_md5_of_the_range(
        local_s3: Any, bytes_read: list[int]) -> None:
    """moto read the whole source, then the part again to hash its ETag; local mode reads the range once and hashes
    it on the way, into the ETag S3 gives a part (its bytes' MD5)."""
    content = PATTERN * 12
    local_s3.put_object(Bucket="emulator-test-data", Key="in", Body=content)
    upload = local_s3.create_multipart_upload(Bucket="emulator-test-data", Key="out")["UploadId"]
    bytes_read.clear()

    copied = local_s3.upload_part_copy(Bucket="emulator-test-data", Key="out", UploadId=upload, PartNumber=1,
                                       CopySource={"Bucket": "emulator-test-data", "Key": "in"},
                                       CopySourceRange="bytes=1000-6292455")

    assert sum(bytes_read) == 6292456 - 1000
    assert copied["CopyPartResult"]["ETag"] == f'"{hashlib.md5(content[1000:6292456]).hexdigest()}"'


def test_completing_an_upload_reads_each_part_once_into_a_byte_exact_object(
        local_s3: Any, bytes_read: list[int]) -> None:
    """moto read every part whole twice (the object, its default checksum) and copied the joins several times over;
    local mode reads each part once. The object is the parts' bytes in order, its ETag S3's
    "<MD5 of the part MD5s>-<number of parts>", its checksum the one moto computes for the whole."""
    from moto.core import DEFAULT_ACCOUNT_ID  # noqa: PLC0415
    from moto.s3.models import s3_backends  # noqa: PLC0415
    from moto.s3.utils import compute_checksum  # noqa: PLC0415

    content = PATTERN * 12
    local_s3.put_object(Bucket="emulator-test-data", Key="in", Body=content)
    upload = local_s3.create_multipart_upload(Bucket="emulator-test-data", Key="out")["UploadId"]
    ranges = ["bytes=0-5242879", f"bytes=5242880-{len(content) - 1}"]
    etags = [local_s3.upload_part_copy(Bucket="emulator-test-data", Key="out", UploadId=upload, PartNumber=number,
                                       CopySource={"Bucket": "emulator-test-data", "Key": "in"},
                                       CopySourceRange=byte_range)["CopyPartResult"]["ETag"]
             for number, byte_range in enumerate(ranges, start=1)]
    etags.append(local_s3.upload_part(Bucket="emulator-test-data", Key="out", UploadId=upload, PartNumber=3,
                                      Body=b" : text")["ETag"])
    bytes_read.clear()

    answer = local_s3.complete_multipart_upload(
        Bucket="emulator-test-data", Key="out", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, start=1)]})

    assert sum(bytes_read) == len(content) + len(b" : text")
    expected = content + b" : text"
    part_md5s = b"".join(hashlib.md5(part).digest() for part in (content[:5242880], content[5242880:], b" : text"))
    etag = f'"{hashlib.md5(part_md5s).hexdigest()}-3"'
    assert answer["ETag"] == etag
    stored = local_s3.get_object(Bucket="emulator-test-data", Key="out")
    assert (stored["Body"].read(), stored["ETag"], stored["ContentLength"]) == (expected, etag, len(expected))
    key = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object("emulator-test-data", "out")
    assert (key.checksum_type, key.checksum_value, key.checksum_parts) == \
        ("FULL_OBJECT", compute_checksum(expected, "CRC64NVME").decode(), 1)


def test_completing_refuses_what_s3_refuses(local_s3: Any) -> None:
    """The parts are checked as moto checks them: an ETag that is not the part's, a part under 5 MiB but the last."""
    upload = local_s3.create_multipart_upload(Bucket="emulator-test-data", Key="out")["UploadId"]
    small = local_s3.upload_part(Bucket="emulator-test-data", Key="out", UploadId=upload, PartNumber=1,
                                 Body=b"small")["ETag"]
    last = local_s3.upload_part(Bucket="emulator-test-data", Key="out", UploadId=upload, PartNumber=2,
                                Body=b"last")["ETag"]

    for parts, code in (([(1, last)], "InvalidPart"), ([(1, small), (2, last)], "EntityTooSmall")):
        with pytest.raises(ClientError) as refused:
            local_s3.complete_multipart_upload(
                Bucket="emulator-test-data", Key="out", UploadId=upload,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]})
        assert refused.value.response["Error"]["Code"] == code


def test_part_copies_of_one_source_do_not_hold_its_lock_between_slices(local_s3: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The source's lock guards its file's position for one read: held across a whole part copy, it made the
    copies of one input's parts wait for one another."""
    from moto.core import DEFAULT_ACCOUNT_ID  # noqa: PLC0415
    from moto.s3.models import s3_backends  # noqa: PLC0415

    from local import emulator  # noqa: PLC0415

    monkeypatch.setattr(emulator, "COPY_CHUNK_BYTES", 1000)
    local_s3.put_object(Bucket="emulator-test-data", Key="in", Body=PATTERN * 6)
    source = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object("emulator-test-data", "in")

    slices = emulator.read_range(source, 10, 2500)
    first = next(slices)

    assert not source.lock.locked()
    assert first + b"".join(slices) == (PATTERN * 6)[10:2510]
