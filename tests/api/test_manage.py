"""Cancel, retry and delete over HTTP through the local stack: each answer as documented, exactly what it changed in
the table and the bucket, and that repeating it changes nothing more. (The refusals are in test_bad_inputs.py.) No
VM runs here (the launcher starts nothing): states a VM would reach are set in the table."""

from __future__ import annotations

from typing import Any

import pytest

from handlers import jobmodel
from local.app import LocalPipeline
from local.client import ApiClient
from tests.api.conftest import Snapshot
from tests.api.openapi import check_response
from tests.local.harness import new_user, owner_of
from tests.records import active_jobs

CANCEL, RETRY, DELETE = "POST /api/jobs/{id}/cancel", "POST /api/jobs/{id}/retry", "DELETE /api/jobs/{id}"


@pytest.fixture(scope="module")
def user(pipeline: LocalPipeline) -> ApiClient:
    return new_user(pipeline, "manager")


def raw_item(pipeline: LocalPipeline, job_id: str) -> dict[str, str]:
    return jobmodel.read_job(pipeline.client("dynamodb"), pipeline.stack.table, job_id) or {}


def set_status(pipeline: LocalPipeline, job_id: str, status: str) -> None:
    pipeline.client("dynamodb").update_item(
        TableName=pipeline.stack.table, Key={"id": {"S": job_id}}, UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": status}})


def counted(pipeline: LocalPipeline, user: ApiClient) -> int:
    return active_jobs(pipeline.client("dynamodb"), pipeline.stack.table, owner_of(user))


def keys(pipeline: LocalPipeline) -> set[str]:
    return {key for key, _ in Snapshot.of(pipeline).objects}


def documented(route: str, response: Any) -> Any:
    body = response.json() if response.content else None
    check_response(route, response.status_code, body)
    return body


def test_cancel_moves_the_job_once_and_answers_the_same_again(pipeline: LocalPipeline, user: ApiClient) -> None:
    job = user.submit("c.txt", b"cancel me", "cancel")
    before = raw_item(pipeline, job["id"])

    first = user.cancel(job["id"])

    assert first.status_code == 200
    body = documented(CANCEL, first)
    after = raw_item(pipeline, job["id"])
    assert body["status"] == after["status"] == "CANCELLED" and body == user.job(job["id"])
    changed = {name for name in after if after.get(name) != before.get(name)}
    assert changed == {"status", "updated_at", "finished_at"}, "a cancel writes the state and its times only"
    snapshot = Snapshot.of(pipeline)
    again = user.cancel(job["id"])
    assert (again.status_code, again.json()) == (200, body)
    assert Snapshot.of(pipeline) == snapshot, "a repeated cancel writes nothing"


def test_retry_copies_the_input_into_a_new_job_once(pipeline: LocalPipeline, user: ApiClient) -> None:
    old = user.submit("r.txt", b"retry me", "again")
    set_status(pipeline, old["id"], "FAILED")
    objects, count = keys(pipeline), counted(pipeline, user)

    made = user.retry(old["id"])

    assert made.status_code == 201
    new = documented(RETRY, made)
    assert (new["status"], new["input_text"]) == ("PENDING", "again") and new["id"] != old["id"]
    key = f"inputs/{new['id']}/r.txt"
    assert keys(pipeline) == objects | {key}
    copied = pipeline.client("s3").get_object(Bucket=pipeline.stack.bucket, Key=key)["Body"].read()
    assert copied == b"retry me"
    assert user.job(old["id"])["retried_as"] == new["id"]
    assert counted(pipeline, user) == count + 1
    snapshot = Snapshot.of(pipeline)
    again = user.retry(old["id"])
    assert (again.status_code, documented(RETRY, again)) == (200, new)
    assert Snapshot.of(pipeline) == snapshot, "a repeated retry makes no second job, copy or count"


def test_delete_removes_the_job_its_files_and_its_count(pipeline: LocalPipeline, user: ApiClient) -> None:
    job = user.submit("d.txt", b"delete me", "gone")
    s3, bucket = pipeline.client("s3"), pipeline.stack.bucket
    key = f"inputs/{job['id']}/d.txt"
    s3.put_object(Bucket=bucket, Key=jobmodel.output_key(job["id"], key), Body=b"delete me : gone")
    s3.put_object(Bucket=bucket, Key=jobmodel.log_key(job["id"]), Body=b"log")
    set_status(pipeline, job["id"], "SUCCEEDED")
    objects, count = keys(pipeline), counted(pipeline, user)
    mine = {key, jobmodel.output_key(job["id"], key), jobmodel.log_key(job["id"])}
    assert mine <= objects

    deleted = user.delete_job(job["id"])

    assert (deleted.status_code, deleted.content) == (204, b"")
    documented(DELETE, deleted)
    assert raw_item(pipeline, job["id"]) == {}
    assert keys(pipeline) == objects - mine, "its three objects, and nothing else"
    assert counted(pipeline, user) == count - 1, "the launcher had not released it: the delete did"
    assert user.get(f"/api/jobs/{job['id']}").status_code == 404
    snapshot = Snapshot.of(pipeline)
    again = user.delete_job(job["id"])
    assert (again.status_code, again.json()["error"]["code"]) == (404, "job_not_found")
    assert Snapshot.of(pipeline) == snapshot
