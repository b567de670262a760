"""Real handler responses, one for every status each route documents, validated against `docs/openapi.json`.

Also the converse: every status the document lists for a route is produced here, so the document lists no status
the handlers never answer (503 of health is local mode's web layer, checked in tests/api).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from handlers import jobmodel, jobs
from handlers.jobmodel import Status, new_id
from tests.api.openapi import check_response, document
from tests.handlers.conftest import Stack, api_event, call, entry_point, upload_key

UPLOADS, JOBS, LIST, ONE, HEALTH = (
    "POST /api/uploads", "POST /api/jobs", "GET /api/jobs", "GET /api/jobs/{id}", "GET /api/health",
)
LOCAL_ONLY = {(HEALTH, 503)}


def saved(stack: Stack, status: Status, **attrs: str) -> str:
    return stack.save_job(status, **attrs)


def used_key(stack: Stack) -> str:
    key = stack.put_input(upload_key())
    assert call(jobs.handler, api_event(JOBS, {"input_text": "hi", "key": key})).status == 201
    return key


def get(job_id: str) -> dict[str, Any]:
    return api_event(ONE, path_parameters={"id": job_id})


def listing(query: dict[str, str]) -> dict[str, Any]:
    event = api_event(LIST)
    event["queryStringParameters"] = query
    return event


def succeeded(stack: Stack) -> dict[str, Any]:
    job_id = saved(stack, Status.SUCCEEDED, started_at=jobmodel.utc_now(), finished_at=jobmodel.utc_now(),
                   instance_id="i-0123456789abcdef0", output_file_path=f"{stack.bucket}/outputs/x/a.out.txt",
                   log_path=f"{stack.bucket}/outputs/x/worker.log")
    return get(job_id)


Case = tuple[str, int, Callable[[Stack], dict[str, Any]]]
CASES: dict[str, Case] = {
    "upload granted": (UPLOADS, 201, lambda s: api_event(UPLOADS, {"filename": "a.txt", "size": 5})),
    "upload bad json": (UPLOADS, 400, lambda s: api_event(UPLOADS, raw_body="{")),
    "upload bad filename": (UPLOADS, 400, lambda s: api_event(UPLOADS, {"filename": "../a", "size": 5})),
    "upload too large": (UPLOADS, 413, lambda s: api_event(UPLOADS, {"filename": "a", "size": 10**12})),
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

