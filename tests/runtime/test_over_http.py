"""The runtime pieces chained through a moto server over HTTP, the worker running as its own process on AL2023's
Python 3.9 and boto3 (`tests/runtime/workerpy.py`)."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
import requests

from handlers import jobmodel, launcher
from handlers.jobmodel import JOB_ID_TAG, Status
from handlers.jobs import create_job
from handlers.upload import create_upload
from local.streams import matches
from stackspec.triggers import LAUNCHER_EVENT_FILTERS
from tests.conftest import Aws
from tests.runtime.jobs import OWNER, get_item
from tests.runtime.workerpy import worker_interpreter
from tests.streams import lambda_records
from worker.userdata import WORKER_PATH


def upload_like_a_browser(aws: Aws, filename: str, content: bytes) -> str:
    """Ask for a presigned POST and send the multipart form the way the web form does; return the key."""
    grant = create_upload(aws.client("s3"), aws.stack.api_config(),
                          {"filename": filename, "size": len(content), "content_type": "text/plain"}, OWNER)
    response = requests.post(grant["url"], data=grant["fields"], files={"file": (filename, content)}, timeout=10)
    assert response.status_code in (200, 204), response.text
    return str(grant["key"])


def run_worker(aws: Aws, job_id: str, instance_id: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ, "AWS_ENDPOINT_URL": aws.endpoint_url or "", "AWS_DEFAULT_REGION": "us-east-1",
    }
    return subprocess.run(
        # `--job-id=<id>` as user-data passes it: a nanoid may start with "-", which argparse would take for an option
        [worker_interpreter(), str(WORKER_PATH), f"--job-id={job_id}", f"--instance-id={instance_id}",
         f"--table={aws.stack.table}", f"--bucket={aws.stack.bucket}"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def instance_ids(aws: Aws) -> list[str]:
    reservations = aws.client("ec2").describe_instances()["Reservations"]
    return [i["InstanceId"] for r in reservations for i in r["Instances"]]


def launch(aws: Aws, batch: list[dict[str, Any]]) -> dict[str, Any]:
    return launcher.handle_batch(aws.launcher_services(), {"Records": batch})


def test_upload_job_stream_launch_and_worker_end_to_end(aws_server: Aws) -> None:
    aws = aws_server
    content = "line one\nline two \u00e9\n".encode()
    key = upload_like_a_browser(aws, "notes.txt", content)
    assert aws.client("s3").get_object(Bucket=aws.stack.bucket, Key=key)["Body"].read() == content

    job = create_job(aws.client("dynamodb"), aws.client("s3"), aws.stack.api_config(),
                     {"input_text": "  hello \u2713 ", "key": key}, OWNER)
    assert job["status"] == Status.PENDING

    records = lambda_records(aws.client("dynamodbstreams"), aws.stack.stream_arn)
    batch = [r for r in records if any(matches(pattern, r) for pattern in LAUNCHER_EVENT_FILTERS)]
    assert [(r["eventName"], r["dynamodb"]["Keys"]["id"]["S"]) for r in batch] == [("INSERT", job["id"])], (
        "the launcher gets the new job, not its owner's counter")
    assert isinstance(batch[0]["dynamodb"]["ApproximateCreationDateTime"], int)
    assert launch(aws, batch) == {"batchItemFailures": []}
    (instance_id,) = instance_ids(aws)
    tags = aws.client("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]}])["Tags"]
    assert {"Key": JOB_ID_TAG, "Value": job["id"]} in [{"Key": t["Key"], "Value": t["Value"]} for t in tags]

    finished = run_worker(aws, job["id"], instance_id)
    assert finished.returncode == 0, finished.stderr

    item = get_item(aws.client("dynamodb"), aws.stack, job["id"])
    assert item is not None and item["status"] == Status.SUCCEEDED, item
    bucket, out_key = jobmodel.split_s3_path(item["output_file_path"])
    assert out_key == f"outputs/{job['id']}/notes.out.txt"
    output = aws.client("s3").get_object(Bucket=bucket, Key=out_key)["Body"].read()
    assert output == content + " : hello \u2713".encode()
    assert item["instance_id"] == instance_id


def test_two_deliveries_of_the_same_record_start_one_instance(aws_server: Aws) -> None:
    aws = aws_server
    key = upload_like_a_browser(aws, "a.txt", b"abc")
    create_job(aws.client("dynamodb"), aws.client("s3"), aws.stack.api_config(),
               {"input_text": "x", "key": key}, OWNER)
    batch = lambda_records(aws.client("dynamodbstreams"), aws.stack.stream_arn)

    launch(aws, batch)
    launch(aws, batch)

    assert len(instance_ids(aws)) == 1


def test_worker_process_reports_a_missing_input_as_failed(aws_server: Aws) -> None:
    aws = aws_server
    key = upload_like_a_browser(aws, "gone.txt", b"abc")
    job = create_job(aws.client("dynamodb"), aws.client("s3"), aws.stack.api_config(),
                     {"input_text": "x", "key": key}, OWNER)
    launch(aws, lambda_records(aws.client("dynamodbstreams"), aws.stack.stream_arn))
    aws.client("s3").delete_object(Bucket=aws.stack.bucket, Key=key)

    finished = run_worker(aws, job["id"], instance_ids(aws)[0])

    assert finished.returncode == 1
    item = get_item(aws.client("dynamodb"), aws.stack, job["id"])
    assert item is not None and item["status"] == Status.FAILED
    assert "does not exist" in item["error"]
    assert "does not exist" in finished.stderr


PEAK_RSS_PROBE = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
    sys.stderr.write("PEAK_RSS_KB=%s\\n" % hwm.split()[1])
"""
"""Runs the worker and prints its peak RSS. VmHWM belongs to the process's own address space, unlike ru_maxrss,
which Linux carries across fork and exec from the (large) test process."""


def worker_peak_rss_kb(aws: Aws, size: int) -> int:
    """Run the worker on an input of `size` zero bytes; check its output, return its peak RSS."""
    key = f"inputs/{jobmodel.new_id()}/big.bin"
    job_id = key.split("/")[1]
    aws.client("s3").put_object(Bucket=aws.stack.bucket, Key=key, Body=b"\x00" * size)
    now = jobmodel.utc_now()
    item = {"id": job_id, "input_text": "t", "input_file_path": f"{aws.stack.bucket}/{key}",
            "status": Status.LAUNCHING.value, "created_at": now, "updated_at": now}
    aws.client("dynamodb").put_item(TableName=aws.stack.table, Item={k: {"S": v} for k, v in item.items()})
    env = {**os.environ, "AWS_ENDPOINT_URL": aws.endpoint_url or "", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [worker_interpreter(), "-c", PEAK_RSS_PROBE, str(WORKER_PATH), f"--job-id={job_id}", "--instance-id=i-1",
         f"--table={aws.stack.table}", f"--bucket={aws.stack.bucket}"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    done = get_item(aws.client("dynamodb"), aws.stack, job_id)
    assert done is not None and done["status"] == Status.SUCCEEDED
    bucket, out_key = jobmodel.split_s3_path(done["output_file_path"])
    body = aws.client("s3").get_object(Bucket=bucket, Key=out_key)["Body"]
    assert body.read(size) == b"\x00" * size and body.read() == b" : t", "the output is not input + ' : t'"
    return int(result.stderr.rsplit("PEAK_RSS_KB=", 1)[1].split()[0])


@pytest.mark.slow
def test_worker_memory_does_not_grow_with_the_input(aws_server: Aws) -> None:
    """A 128 MiB input is copied inside S3 (UploadPartCopy with byte ranges, which the moto server answers to the
    old botocore of AL2023's boto3): the worker's peak memory is the same as for 1 MiB, within 16 MiB.

    Measured before the server-side copy: about 57 MiB for 1 MiB, about 120 MiB for 96 or 200 MiB (the multipart
    buffers of the streaming copy).
    """
    small = worker_peak_rss_kb(aws_server, 1024 * 1024)
    large = worker_peak_rss_kb(aws_server, 128 * 1024 * 1024)
    assert large - small < 16 * 1024, f"peak RSS grew from {small} KiB to {large} KiB for a 128 MiB input"
