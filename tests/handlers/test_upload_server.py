"""The browser's path over real HTTP: presigned POST from the upload handler, multipart upload, then the job.

Runs against a moto server (`aws_server`), so the presigned form is posted as bytes on a socket, the way a browser
does it, and the jobs handler HEADs the object that upload really stored.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from handlers import jobs, upload
from tests.conftest import Aws
from tests.handlers.conftest import Handler, Reply, api_event, call

DATA = b"first line\nbinary \x00\xff\xfe bytes, not UTF-8 \x80\r\n" + bytes(range(256))


@pytest.fixture
def served(aws_server: Aws) -> Aws:
    return aws_server


def upload_handler(aws: Aws) -> Handler:
    """The upload function with services bound to the moto server (the factory's own client config)."""
    return lambda event, context: upload.router.resolve(event, aws.api_services())


def jobs_handler(aws: Aws) -> Handler:
    return lambda event, context: jobs.router.resolve(event, aws.api_services())


def browser_upload(grant: dict[str, Any], filename: str, data: bytes, content_type: str) -> requests.Response:
    """POST the form S3 expects: the signed fields first, the file last (S3 ignores fields after the file)."""
    return requests.post(
        grant["url"], data=grant["fields"], files={"file": (filename, data, content_type)}, timeout=30
    )


def ask_upload(aws: Aws, filename: str, size: int, content_type: str) -> Reply:
    return call(upload_handler(aws), api_event(
        "POST /api/uploads", {"filename": filename, "size": size, "content_type": content_type}
    ))


def test_upload_then_job_over_http(served: Aws) -> None:
    grant = ask_upload(served, "My Notes.txt", len(DATA), "text/plain")
    assert grant.status == 201, grant.body
    assert grant.body["url"].startswith(served.endpoint_url)

    posted = browser_upload(grant.body, "My Notes.txt", DATA, "text/plain")
    assert posted.status_code in {200, 201, 204}, posted.text

    created = call(jobs_handler(served), api_event("POST /api/jobs", {"input_text": " hi ", "key": grant.body["key"]}))
    assert created.status == 201, created.body
    assert created.body["input_file_path"] == f"{served.stack.bucket}/{grant.body['key']}"
    assert created.body["input_text"] == "hi"

    s3 = served.client("s3")
    stored = s3.get_object(Bucket=served.stack.bucket, Key=grant.body["key"])
    assert stored["Body"].read() == DATA, "the object holds exactly the uploaded bytes"
    assert stored["ContentType"] == "text/plain"

    read = call(jobs_handler(served), api_event("GET /api/jobs/{id}", path_parameters={"id": created.body["id"]}))
    assert (read.status, read.body) == (200, created.body)


def test_oversized_upload_is_caught_by_the_jobs_handler(served: Aws) -> None:
    """moto does not enforce content-length-range; the jobs handler re-checks the real size and refuses it."""
    too_big = b"x" * (served.stack.api_config().max_file_bytes + 1)
    grant = ask_upload(served, "big.bin", 10, "application/octet-stream")
    assert grant.status == 201
    posted = browser_upload(grant.body, "big.bin", too_big, "application/octet-stream")
    assert posted.status_code in {200, 201, 204}, "moto stored it: only the jobs handler stands in the way"

    created = call(jobs_handler(served), api_event("POST /api/jobs", {"input_text": "hi", "key": grant.body["key"]}))
    assert (created.status, created.error_code) == (413, "file_too_large")
    ddb = served.client("dynamodb")
    items = ddb.scan(TableName=served.stack.table)["Items"]
    assert [item for item in items if "status" in item] == [], "no job (the upload's grant counter is not one)"
