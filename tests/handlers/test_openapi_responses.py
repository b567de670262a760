"""Real handler responses, one for every status each route documents, validated against `docs/openapi.json`.

Also the converse: every status the document lists for a route is produced here, so the document lists no status
the handlers never answer (503 of health is local mode's web layer, checked in tests/api).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from handlers import cursors, grants, jobmodel, jobs, quota
from handlers.config import ApiConfig
from handlers.jobmodel import Status, new_id
from tests.api.openapi import check_response, document
from tests.handlers.conftest import OTHER_USER, USER, Stack, api_event, call, entry_point, upload_key

UPLOADS, JOBS, LIST, ONE, HEALTH = (
    "POST /api/uploads", "POST /api/jobs", "GET /api/jobs", "GET /api/jobs/{id}", "GET /api/health",
)
CANCEL, RETRY, DELETE = "POST /api/jobs/{id}/cancel", "POST /api/jobs/{id}/retry", "DELETE /api/jobs/{id}"
TOO_LARGE = '{"x": "' + "a" * 20_000 + '"}'
"""A body over the API's body limit (16 KiB at the test settings' text cap)."""
LOCAL_ONLY = {(HEALTH, 503)}


def saved(stack: Stack, status: Status, **attrs: str) -> str:
    return stack.save_job(status, **attrs)


def used_key(stack: Stack) -> str:
    key = stack.put_input(upload_key())
    assert call(jobs.handler, api_event(JOBS, {"input_text": "hi", "key": key})).status == 201
    return key


def get(job_id: str) -> dict[str, Any]:
    return api_event(ONE, path_parameters={"id": job_id})


def on(route: str, job_id: str, **kwargs: Any) -> dict[str, Any]:
    return api_event(route, path_parameters={"id": job_id}, **kwargs)


def with_input(stack: Stack, status: Status, **attrs: str) -> str:
    """A job whose input object exists (a retry copies it)."""
    job_id = saved(stack, status, **attrs)
    stack.put_input(f"inputs/{job_id}/a.txt")
    return job_id


def retried(stack: Stack) -> str:
    job_id = with_input(stack, Status.FAILED)
    assert call(entry_point(RETRY), on(RETRY, job_id)).status == 201
    return job_id


def listing(query: dict[str, str]) -> dict[str, Any]:
    event = api_event(LIST)
    event["queryStringParameters"] = query
    return event


def succeeded(stack: Stack) -> dict[str, Any]:
    job_id = saved(stack, Status.SUCCEEDED, started_at=jobmodel.utc_now(), finished_at=jobmodel.utc_now(),
                   instance_id="i-0123456789abcdef0", output_file_path=f"{stack.bucket}/outputs/x/a.out.txt",
                   log_path=f"{stack.bucket}/outputs/x/worker.log")
    return get(job_id)


def at_quota(stack: Stack) -> bool:
    """The caller has as many unfinished jobs as the stack allows."""
    stack.client("dynamodb").put_item(TableName=stack.table, Item={
        "id": {"S": quota.counter_id(USER)}, "active": {"N": str(ApiConfig.from_env().max_active_jobs_per_user)}})
    return True


def out_of_upload_grants(stack: Stack) -> bool:
    """The caller has had as many upload grants this hour as the stack allows."""
    per_hour = ApiConfig.from_env().upload_grants_per_hour
    for _ in range(per_hour):
        grants.take_grant(stack.client("dynamodb"), stack.table, USER, per_hour)
    return True


Case = tuple[str, int, Callable[[Stack], dict[str, Any]]]


def refusals(name: str, route: str, job: Callable[[Stack], str]) -> dict[str, Case]:
    """What cancel, retry and delete refuse alike, for a job `job` makes: options in the body (400), signed out
    (401), an unknown id (404), a body over the limit (413), a body that is not JSON (415)."""
    return {
        f"{name} a field": (route, 400, lambda s: on(route, job(s), body={"now": True})),
        f"{name} signed out": (route, 401, lambda s: on(route, job(s), user=None)),
        f"{name} unknown": (route, 404, lambda s: on(route, new_id())),
        f"{name} body too large": (route, 413, lambda s: on(route, job(s), raw_body=TOO_LARGE)),
        f"{name} not json": (route, 415, lambda s: on(route, new_id(), raw_body="x", headers={"content-type": "t/x"})),
    }
CASES: dict[str, Case] = {
    "upload granted": (UPLOADS, 201, lambda s: api_event(UPLOADS, {"filename": "a.txt", "size": 5})),
    "upload bad json": (UPLOADS, 400, lambda s: api_event(UPLOADS, raw_body="{")),
    "upload bad filename": (UPLOADS, 400, lambda s: api_event(UPLOADS, {"filename": "../a", "size": 5})),
    "upload too large": (UPLOADS, 413, lambda s: api_event(UPLOADS, {"filename": "a", "size": 10**12})),
    "upload over the hourly grants": (UPLOADS, 429, lambda s: out_of_upload_grants(s) and api_event(
        UPLOADS, {"filename": "a.txt", "size": 5})),
    "upload not json": (UPLOADS, 415, lambda s: api_event(UPLOADS, raw_body="x", headers={})),
    "job created": (JOBS, 201, lambda s: api_event(JOBS, {"input_text": "hi", "key": s.put_input(upload_key())})),
    "job bad key": (JOBS, 400, lambda s: api_event(JOBS, {"input_text": "hi", "key": "x"})),
    "job no upload": (JOBS, 404, lambda s: api_event(JOBS, {"input_text": "hi", "key": upload_key()})),
    "job key in use": (JOBS, 409, lambda s: api_event(JOBS, {"input_text": "hi", "key": used_key(s)})),
    "job body too large": (JOBS, 413, lambda s: api_event(JOBS, {"input_text": "x" * 100_000, "key": "k"})),
    "job not json": (JOBS, 415, lambda s: api_event(JOBS, {"input_text": "hi"}, headers={"content-type": "text/x"})),
    "list": (LIST, 200, lambda s: [saved(s, st) for st in Status] and api_event(LIST)),
    "list bad limit": (LIST, 400, lambda s: listing({"limit": "0"})),
    "one pending": (ONE, 200, lambda s: get(saved(s, Status.PENDING))),
    "one failed": (ONE, 200, lambda s: get(saved(s, Status.FAILED, error="The input file was deleted."))),
    "one succeeded": (ONE, 200, succeeded),
    "one unknown parameter": (ONE, 400, lambda s: {**get(new_id()), "queryStringParameters": {"x": "1"}}),
    "one unknown": (ONE, 404, lambda s: get(new_id())),
    "job over the user's quota": (JOBS, 429, lambda s: at_quota(s) and api_event(
        JOBS, {"input_text": "hi", "key": s.put_input(upload_key())})),
    "upload signed out": (UPLOADS, 401, lambda s: api_event(UPLOADS, {"filename": "a.txt", "size": 5}, user=None)),
    "job signed out": (JOBS, 401, lambda s: api_event(JOBS, {"input_text": "hi", "key": "k"}, user=None)),
    "list signed out": (LIST, 401, lambda s: api_event(LIST, user=None)),
    "one signed out": (ONE, 401, lambda s: api_event(ONE, path_parameters={"id": new_id()}, user=None)),
    "list another user's cursor": (LIST, 404, lambda s: listing({"next": cursors.encode(
        {"id": {"S": new_id()}, "owner": {"S": OTHER_USER}, "created_at": {"S": jobmodel.utc_now()}})})),
    "cancel": (CANCEL, 200, lambda s: on(CANCEL, saved(s, Status.RUNNING))),
    "cancel finished": (CANCEL, 409, lambda s: on(CANCEL, saved(s, Status.SUCCEEDED))),
    **refusals("cancel", CANCEL, lambda s: saved(s, Status.RUNNING)),
    "retry": (RETRY, 201, lambda s: on(RETRY, with_input(s, Status.CANCELLED))),
    "retry again": (RETRY, 200, lambda s: on(RETRY, retried(s))),
    "retry running": (RETRY, 409, lambda s: on(RETRY, with_input(s, Status.RUNNING))),
    "retry over the user's quota": (RETRY, 429, lambda s: at_quota(s) and on(RETRY, with_input(s, Status.FAILED))),
    **refusals("retry", RETRY, lambda s: with_input(s, Status.FAILED)),
    "delete": (DELETE, 204, lambda s: on(DELETE, with_input(s, Status.SUCCEEDED))),
    "delete running": (DELETE, 409, lambda s: on(DELETE, saved(s, Status.RUNNING))),
    **refusals("delete", DELETE, lambda s: saved(s, Status.FAILED)),
    "health": (HEALTH, 200, lambda s: api_event(HEALTH)),
    "health unknown parameter": (HEALTH, 400, lambda s: {**api_event(HEALTH), "queryStringParameters": {"x": "1"}}),
}


@pytest.mark.parametrize(("route", "status", "event_for"), CASES.values(), ids=CASES.keys())
def test_handler_responses_match_the_document(
    stack: Stack, route: str, status: int, event_for: Callable[[Stack], dict[str, Any]]
) -> None:
    reply = call(entry_point(route), event_for(stack))
    assert reply.status == status, reply.body
    check_response(route, reply.status, reply.body)
    if status == 429:
        assert reply.headers["retry-after"].isdigit(), "the document promises Retry-After"
    if route == ONE and reply.body.get("status") == "SUCCEEDED":
        assert "output_url" in reply.body, "the succeeded case must exercise output_url"


def test_every_documented_status_is_exercised_above() -> None:
    documented = {
        (f"{method.upper()} {path}", int(status))
        for path, item in document()["paths"].items()
        for method, operation in item.items()
        for status in operation["responses"]
    }
    exercised = {(route, status) for route, status, _ in CASES.values()}
    assert documented - LOCAL_ONLY == exercised


def test_a_refusal_that_breaks_the_error_schema_is_caught() -> None:
    """The check itself can fail: an error body with an extra field or an undocumented code is refused."""
    with pytest.raises(AssertionError):
        check_response(UPLOADS, 400, {"error": {"code": "invalid_json", "message": "x", "detail": 1}})
    with pytest.raises(AssertionError):
        check_response(UPLOADS, 400, {"error": {"code": "made_up", "message": "x"}})
    with pytest.raises(AssertionError, match="does not list"):
        check_response(UPLOADS, 404, {"error": {"code": "not_found", "message": "x"}})

