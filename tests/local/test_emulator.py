"""The local emulator codes around moto gaps that DynamoDB does not have (local/emulator.py): requests are
atomic, and a cancelled transaction leaves the table's stream readable."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

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
