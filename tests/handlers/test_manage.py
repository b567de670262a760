"""Cancel, retry and delete through `handler(event, None)` against moto: what each answers, and exactly what it
changes (items, objects, the owner's count) or leaves alone."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from handlers import capacity, jobmodel, manage, quota
from handlers.config import ApiConfig
from handlers.jobmodel import RETRIED_AS, Status, new_id
from handlers.services import ApiServices
from tests.handlers.conftest import OTHER_USER, USER, Reply, Stack, api_event, call
from tests.records import job_in_state

CANCEL, RETRY, DELETE = "POST /api/jobs/{id}/cancel", "POST /api/jobs/{id}/retry", "DELETE /api/jobs/{id}"
NOT_FINAL = [Status.PENDING, Status.QUEUED, Status.LAUNCHING, Status.RUNNING]
FINAL = [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED]
CONFIG = ApiConfig.from_env()


def send(route: str, job_id: str, user: str = USER, **kwargs: Any) -> Reply:
    return call(manage.handler, api_event(route, path_parameters={"id": job_id}, user=user, **kwargs))


def counted_job(stack: Stack, status: Status, owner: str = USER, files: bool = True, **attrs: str) -> str:
    """A job as the API and the pipeline leave it: counted against its owner (`holds_quota`, as until the launcher
    reads its final record), its input uploaded and, with `files`, its output and log written."""
    job_id = new_id()
    key = f"{jobmodel.INPUT_PREFIX}{job_id}/notes.txt"
    item = {**job_in_state(job_id, "shout", f"{stack.bucket}/{key}", owner, status), **attrs}
    quota.create_job(stack.client("dynamodb"), stack.table, item, 50)
    stack.put_input(key, b"hello", owner=owner)
    if files:
        s3 = stack.client("s3")
        s3.put_object(Bucket=stack.bucket, Key=jobmodel.output_key(job_id, key), Body=b"hello : shout")
        s3.put_object(Bucket=stack.bucket, Key=jobmodel.log_key(job_id), Body=b"log")
    return job_id


def released(stack: Stack, job_id: str) -> None:
    """The launcher read the job's final record: it no longer counts."""
    item = stack.raw_item(job_id) or {}
    assert quota.release(stack.client("dynamodb"), stack.table, job_id, item["owner"]["S"])


def item(stack: Stack, job_id: str) -> dict[str, str]:
    return jobmodel.from_dynamodb(stack.raw_item(job_id) or {})


def everything(stack: Stack) -> tuple[Any, ...]:
    """What a refused request must leave alone: every item (counters and slots too) and every object."""
    scan = stack.client("dynamodb").scan(TableName=stack.table, ConsistentRead=True)["Items"]
    return sorted(str(sorted(i.items())) for i in scan), stack.object_keys()


def refused(stack: Stack, route: str, job_id: str, status: int, code: str, **kwargs: Any) -> Reply:
    before = everything(stack)
    reply = send(route, job_id, **kwargs)
    assert (reply.status, reply.error_code) == (status, code), reply.body
    assert everything(stack) == before, f"{route} refused with {code} yet changed something"
    return reply


class Proxy:
    """A boto3 client whose named methods run `before(**kwargs)` first (a concurrent writer landing between two of
    the handler's calls), or are replaced outright by `instead`."""

    def __init__(self, real: Any, before: dict[str, Any] | None = None, instead: dict[str, Any] | None = None) -> None:
        self.real, self.before, self.instead = real, before or {}, instead or {}

    def __getattr__(self, name: str) -> Any:
        if name in self.instead:
            return self.instead[name]
        method = getattr(self.real, name)
        if name not in self.before:
            return method

        def wrapped(**kwargs: Any) -> Any:
            self.before.pop(name)(**kwargs)
            return method(**kwargs)
        return wrapped


def resolve(stack: Stack, route: str, job_id: str, *, ddb: Any = None, s3: Any = None,
            config: ApiConfig = CONFIG) -> Reply:
    """The route through the manage router with these clients (fault injection) and this configuration."""
    services = ApiServices(config=config, ddb=ddb or stack.client("dynamodb"), s3=s3 or stack.client("s3"))
    return call(lambda event, context: manage.router.resolve(event, services),
                api_event(route, path_parameters={"id": job_id}))


# -- who may ask ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", [CANCEL, RETRY, DELETE])
@pytest.mark.parametrize("status", [Status.RUNNING, Status.FAILED, Status.SUCCEEDED])
def test_another_users_job_is_as_unknown_as_a_missing_one(stack: Stack, route: str, status: Status) -> None:
    """No existence leak, and nothing moves: the same 404 as an id never issued and a malformed one."""
    theirs = counted_job(stack, status, owner=OTHER_USER)
    missing = refused(stack, route, new_id(), 404, "job_not_found")
    assert refused(stack, route, theirs, 404, "job_not_found").body == missing.body
    assert refused(stack, route, "not-an-id", 404, "job_not_found").body == missing.body


@pytest.mark.parametrize(("route", "status", "done"), [
    (CANCEL, Status.RUNNING, 200), (RETRY, Status.FAILED, 201), (DELETE, Status.FAILED, 204),
])
def test_a_body_with_anything_in_it_is_refused(stack: Stack, route: str, status: Status, done: int) -> None:
    """The routes take no options: an empty object passes, a field is refused as on every route, and so is a body
    that is not JSON."""
    job_id = counted_job(stack, status)
    refused(stack, route, job_id, 400, "unknown_field", body={"force": True})
    refused(stack, route, job_id, 400, "invalid_json", raw_body="{")
    refused(stack, route, job_id, 415, "unsupported_media_type", raw_body="x", headers={"content-type": "text/plain"})
    assert send(route, job_id, body={}).status == done


@pytest.mark.parametrize("route", [CANCEL, RETRY, DELETE])
def test_signed_out_is_401_and_changes_nothing(stack: Stack, route: str) -> None:
    job_id = counted_job(stack, Status.FAILED)
    before = everything(stack)
    reply = send(route, job_id, user=None)
    assert (reply.status, reply.body) == (401, {"message": "Unauthorized"})
    assert everything(stack) == before


# -- cancel -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", NOT_FINAL)
def test_an_unfinished_job_is_cancelled_at_once(stack: Stack, status: Status) -> None:
    job_id = counted_job(stack, status)

    reply = send(CANCEL, job_id)

    assert reply.status == 200
    saved = item(stack, job_id)
    assert saved["status"] == "CANCELLED" and saved["finished_at"] == saved["updated_at"]
    assert reply.body == jobmodel.to_public(saved), "the job as GET shows it: no owner, no quota mark"
    assert stack.active_jobs() == 1, "the launcher gives the place back when it reads the CANCELLED record"


def test_cancelling_again_answers_the_same_and_writes_nothing(stack: Stack) -> None:
    job_id = counted_job(stack, Status.RUNNING)
    first = send(CANCEL, job_id)
    before = everything(stack)

    again = send(CANCEL, job_id)

    assert (again.status, again.body) == (200, first.body)
    assert everything(stack) == before


@pytest.mark.parametrize("status", [Status.SUCCEEDED, Status.FAILED])
def test_a_finished_job_cannot_be_cancelled(stack: Stack, status: Status) -> None:
    job_id = counted_job(stack, status)
    reply = refused(stack, CANCEL, job_id, 409, "job_finished")
    assert status.value in reply.body["error"]["message"]


# -- retry ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED])
def test_a_retry_makes_a_new_job_with_a_copy_of_the_input(stack: Stack, status: Status) -> None:
    old = counted_job(stack, status, error="The VM could not be started.")
    released(stack, old)

    reply = send(RETRY, old)

    assert reply.status == 201, reply.body
    new = reply.body["id"]
    key = f"inputs/{new}/notes.txt"
    assert jobmodel.is_id(new) and new != old
    assert reply.body == jobmodel.to_public(item(stack, new))
    assert (reply.body["status"], reply.body["input_text"]) == ("PENDING", "shout")
    assert reply.body["input_file_path"] == f"{stack.bucket}/{key}"
    copied = stack.client("s3").get_object(Bucket=stack.bucket, Key=key)
    assert copied["Body"].read() == b"hello" and copied["Metadata"] == {"owner": USER}, "the copy keeps its owner"
    assert item(stack, old)[RETRIED_AS] == new and item(stack, old)["status"] == status.value
    assert item(stack, new)["holds_quota"] == "true" and stack.active_jobs() == 1


def test_a_second_retry_answers_the_job_the_first_made(stack: Stack) -> None:
    old = counted_job(stack, Status.FAILED)
    first = send(RETRY, old)
    before = everything(stack)

    again = send(RETRY, old)

    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    assert everything(stack) == before, "no second job, no second copy, no second count"


def test_a_job_whose_retry_was_deleted_can_be_retried_again(stack: Stack) -> None:
    old = counted_job(stack, Status.CANCELLED)
    first = send(RETRY, old).body["id"]
    stack.client("dynamodb").delete_item(TableName=stack.table, Key={"id": {"S": first}})

    again = send(RETRY, old)

    assert again.status == 201 and again.body["id"] != first
    assert item(stack, old)[RETRIED_AS] == again.body["id"]


@pytest.mark.parametrize("status", [*NOT_FINAL, Status.SUCCEEDED])
def test_only_a_failed_or_cancelled_job_is_retried(stack: Stack, status: Status) -> None:
    reply = refused(stack, RETRY, counted_job(stack, status), 409, "job_not_retryable")
    assert status.value in reply.body["error"]["message"]


def test_a_job_whose_input_is_gone_is_not_retried(stack: Stack) -> None:
    old = counted_job(stack, Status.FAILED)
    stack.client("s3").delete_object(Bucket=stack.bucket, Key=f"inputs/{old}/notes.txt")
    refused(stack, RETRY, old, 409, "input_gone")


def test_a_job_whose_input_goes_between_its_measure_and_its_copy_is_not_retried(stack: Stack) -> None:
    old = counted_job(stack, Status.FAILED)
    before = everything(stack)
    gone = {"copy_object": lambda **kwargs: stack.client("s3").delete_object(
        Bucket=stack.bucket, Key=kwargs["CopySource"]["Key"])}

    reply = resolve(stack, RETRY, old, s3=Proxy(stack.client("s3"), before=gone))

    assert (reply.status, reply.error_code) == (409, "input_gone"), reply.body
    assert everything(stack)[0] == before[0], "no item written"
    assert everything(stack)[1] == before[1] - {f"inputs/{old}/notes.txt"}, "no copy made"


@pytest.mark.parametrize(("limit", "status"), [(4, 413), (5, 201)], ids=["one byte under the file", "the file's size"])
def test_a_retry_checks_the_file_against_todays_size_limit(stack: Stack, limit: int, status: int) -> None:
    """`maxFileMb` may have been lowered since the upload: a retry of a larger file is refused as its upload
    would be today (413 `file_too_large`, nothing written); a file at the limit is retried."""
    old = counted_job(stack, Status.FAILED)  # its input is 5 bytes
    before = everything(stack)

    reply = resolve(stack, RETRY, old, config=replace(CONFIG, max_file_bytes=limit))

    assert reply.status == status, reply.body
    if status == 413:
        assert reply.error_code == "file_too_large"
        assert reply.body["error"]["message"] == "The file is 5 bytes; the limit is 4 bytes."
        assert everything(stack) == before, "a refused retry changed something"


def test_a_retry_over_the_quota_is_429_and_leaves_no_copy(stack: Stack) -> None:
    old = counted_job(stack, Status.FAILED)
    stack.client("dynamodb").put_item(TableName=stack.table, Item={
        "id": {"S": quota.counter_id(USER)}, "active": {"N": str(CONFIG.max_active_jobs_per_user)}})

    reply = refused(stack, RETRY, old, 429, "too_many_jobs")

    assert reply.headers["retry-after"].isdigit()


def test_a_retry_that_loses_a_race_answers_the_winners_job_and_deletes_its_copy(stack: Stack) -> None:
    """Two retries of one job at once: the one whose transaction is refused (the other marked the job first)
    answers the job the other made, and its copy of the input is gone."""
    old = counted_job(stack, Status.FAILED)
    winner: dict[str, Reply] = {}

    def other_retry_first(**kwargs: Any) -> None:
        winner["reply"] = send(RETRY, old)

    reply = resolve(stack, RETRY, old, ddb=Proxy(stack.client("dynamodb"), before={
        "transact_write_items": other_retry_first}))

    assert winner["reply"].status == 201
    assert (reply.status, reply.body) == (200, winner["reply"].body)
    made = winner["reply"].body["id"]
    assert [j["id"] for j in stack.items() if j["id"] != old] == [made], "one new job"
    assert {k for k in stack.object_keys() if k.startswith("inputs/")} == {f"inputs/{old}/notes.txt",
                                                                           f"inputs/{made}/notes.txt"}
    assert stack.active_jobs() == 2


def test_a_transaction_conflict_deletes_the_copy_and_is_a_server_error(stack: Stack) -> None:
    """Refused for another reason than a retry made meanwhile (a conflicting write): nothing was written, so the
    copy goes; the client may ask again (the SDK's error reaches the platform: 500)."""
    old = counted_job(stack, Status.FAILED)
    before = everything(stack)
    conflict = ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                            "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"},
                                                    {"Code": "None"}]}, "TransactWriteItems")

    def refuse(**kwargs: Any) -> None:
        raise conflict

    with pytest.raises(ClientError, match="conflict"):
        resolve(stack, RETRY, old, ddb=Proxy(stack.client("dynamodb"), instead={"transact_write_items": refuse}))
    assert everything(stack) == before


def test_an_ambiguous_failure_keeps_the_copy(stack: Stack) -> None:
    """A timeout or a 5xx may come after the transaction was applied: deleting the copy then would leave a new job
    without its input, so the copy stays (an unused object) and the error propagates."""
    old = counted_job(stack, Status.FAILED)
    inputs = {k for k in stack.object_keys() if k.startswith("inputs/")}

    def fail(**kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "try again"}}, "TransactWriteItems")

    with pytest.raises(ClientError, match="InternalServerError"):
        resolve(stack, RETRY, old, ddb=Proxy(stack.client("dynamodb"), instead={"transact_write_items": fail}))
    assert len({k for k in stack.object_keys() if k.startswith("inputs/")} - inputs) == 1


# -- delete -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", FINAL)
def test_a_finished_job_is_deleted_with_its_files(stack: Stack, status: Status) -> None:
    job_id = counted_job(stack, status)
    released(stack, job_id)
    other = counted_job(stack, status)
    others = stack.object_keys() - {k for k in stack.object_keys() if job_id in k}

    reply = send(DELETE, job_id)

    assert (reply.status, reply.body) == (204, None)
    assert stack.raw_item(job_id) is None
    assert stack.object_keys() == others, "its input, output and log are gone; nothing else is"
    assert item(stack, other)["status"] == status.value
    assert stack.active_jobs() == 1, "the other job still counts; the deleted one had been released"


def test_deleting_again_is_404(stack: Stack) -> None:
    job_id = counted_job(stack, Status.SUCCEEDED)
    assert send(DELETE, job_id).status == 204
    refused(stack, DELETE, job_id, 404, "job_not_found")


def test_a_job_without_output_files_is_deleted_too(stack: Stack) -> None:
    """A job cancelled before it ran has only its input; deleting a key that is not there is no error."""
    job_id = counted_job(stack, Status.CANCELLED, files=False)
    assert send(DELETE, job_id).status == 204
    assert stack.object_keys() == set() and stack.raw_item(job_id) is None


@pytest.mark.parametrize("status", NOT_FINAL)
def test_an_unfinished_job_is_not_deleted(stack: Stack, status: Status) -> None:
    reply = refused(stack, DELETE, counted_job(stack, status), 409, "job_not_final")
    assert "cancel" in reply.body["error"]["message"].lower()


def test_a_job_whose_vm_still_holds_a_slot_is_not_deleted(stack: Stack) -> None:
    """Its VM is alive (shutting down): deleting now would let the cap count a VM whose job is gone, and a late
    upload of its worker recreate a file of a deleted job."""
    job_id = counted_job(stack, Status.CANCELLED)
    assert capacity.acquire(stack.client("dynamodb"), stack.table, job_id, CONFIG.max_concurrent_vms) is not None
    refused(stack, DELETE, job_id, 409, "job_vm_running")


def test_deleting_a_job_that_still_counts_gives_its_place_back_and_logs_its_end(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """The launcher has not read the job's final record yet: the delete takes the count with the item (the launcher
    then finds no item to release), and writes the job's one `job_finished` line."""
    job_id = counted_job(stack, Status.FAILED)
    assert stack.active_jobs() == 1
    caplog.set_level(logging.INFO, logger="handlers.manage")

    assert send(DELETE, job_id).status == 204

    assert stack.active_jobs() == 0
    [line] = [r for r in caplog.records if getattr(r, "event", None) == jobmodel.JOB_FINISHED_EVENT]
    assert (line.job_id, line.status) == (job_id, "FAILED")
    assert not quota.release(stack.client("dynamodb"), stack.table, job_id, USER), "nothing left to release"
    assert stack.active_jobs() == 0


def test_a_delete_racing_the_launchers_release_counts_the_job_once(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """The launcher releases the job between the delete's read and its write: the write's condition (the quota mark
    as read) fails, the delete reads again and deletes without decrementing; the launcher wrote the line."""
    job_id = counted_job(stack, Status.SUCCEEDED)
    counted_job(stack, Status.RUNNING)
    caplog.set_level(logging.INFO, logger="handlers.manage")

    reply = resolve(stack, DELETE, job_id, ddb=Proxy(stack.client("dynamodb"), before={
        "transact_write_items": lambda **kwargs: released(stack, job_id)}))

    assert reply.status == 204 and stack.raw_item(job_id) is None
    assert stack.active_jobs() == 1, "decremented once (by the launcher), not twice"
    assert not [r for r in caplog.records if getattr(r, "event", None) == jobmodel.JOB_FINISHED_EVENT]


def test_files_go_first_so_a_failed_delete_can_be_repeated(stack: Stack) -> None:
    """S3 refusing one of the objects fails the request before the item is touched: the job is still listed, and
    a second DELETE finishes the work."""
    job_id = counted_job(stack, Status.SUCCEEDED)
    s3 = stack.client("s3")

    def partly(**kwargs: Any) -> dict[str, Any]:
        first, *rest = kwargs["Delete"]["Objects"]
        done = s3.delete_objects(**{**kwargs, "Delete": {**kwargs["Delete"], "Objects": rest}})
        return {**done, "Errors": [{"Key": first["Key"], "Code": "InternalError"}]}

    with pytest.raises(RuntimeError, match="did not delete"):
        resolve(stack, DELETE, job_id, s3=Proxy(s3, instead={"delete_objects": partly}))
    assert item(stack, job_id)["status"] == "SUCCEEDED" and stack.active_jobs() == 1

    assert send(DELETE, job_id).status == 204
    assert stack.raw_item(job_id) is None and stack.object_keys() == set() and stack.active_jobs() == 0


def test_the_job_keys_are_the_ones_the_worker_writes() -> None:
    job = jobmodel.new_job("V1StGXR8_Z5jdHi6B-myT", "t", "b/inputs/V1StGXR8_Z5jdHi6B-myT/notes.txt", USER)
    assert manage.job_keys(job, "b") == ["inputs/V1StGXR8_Z5jdHi6B-myT/notes.txt",
                                         "outputs/V1StGXR8_Z5jdHi6B-myT/notes.out.txt",
                                         "outputs/V1StGXR8_Z5jdHi6B-myT/worker.log"]
    with pytest.raises(RuntimeError, match="outside"):
        manage.job_keys({**job, "input_file_path": "other-bucket/inputs/x/notes.txt"}, "b")


def test_config_carries_the_vm_cap() -> None:
    """Deleting reads every VM slot: the API's config must know how many there are."""
    assert CONFIG.max_concurrent_vms > 0
    assert ApiConfig.from_env(replace(CONFIG, max_concurrent_vms=7).to_env()).max_concurrent_vms == 7


def test_the_retry_condition_lists_every_retryable_state_of_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the retry's transaction hard-coded `#status IN (:r0, :r1)`, so a third retryable state in the
    model would have been checked in Python and then refused by the write."""
    states = frozenset({Status.FAILED, Status.CANCELLED, Status.SUCCEEDED})
    monkeypatch.setattr(jobmodel, "RETRYABLE_STATES", states)
    update = manage.retried_mark("jobs", {"id": new_id(), "owner": USER}, new_id())["Update"]
    listed = update["ConditionExpression"].split("#status IN (")[1].split(")")[0].split(", ")
    assert {update["ExpressionAttributeValues"][name]["S"] for name in listed} == states


def test_in_a_versioned_bucket_retry_and_delete_work_and_leave_the_files_restorable(stack: Stack) -> None:
    """A stack with `protectData` versions its data bucket: a retry still copies the input, a delete still hides a
    job's files (delete markers) and nothing else; their versions stay for the lifecycle to expire, so a mistaken
    delete can be undone."""
    s3 = stack.client("s3")
    s3.put_bucket_versioning(Bucket=stack.bucket, VersioningConfiguration={"Status": "Enabled"})
    try:
        failed = counted_job(stack, Status.FAILED)
        retried = send(RETRY, failed)
        assert retried.status == 201, retried.body
        done = counted_job(stack, Status.SUCCEEDED)
        released(stack, done)
        files = {k for k in stack.object_keys() if done in k}

        assert send(DELETE, done).status == 204

        assert not {k for k in stack.object_keys() if done in k}, "the files are hidden at once"
        versions = s3.list_object_versions(Bucket=stack.bucket, Prefix=jobmodel.INPUT_PREFIX + done)
        assert [v["Key"] for v in versions.get("Versions", [])] == [k for k in files if k.startswith("inputs/")]
        assert len(versions.get("DeleteMarkers", [])) == 1, "hidden by a delete marker, its version kept"
        assert stack.raw_item(done) is None
    finally:
        s3.put_bucket_versioning(Bucket=stack.bucket, VersioningConfiguration={"Status": "Suspended"})
