"""Accounts in the handlers: a job, an upload, a listing and a download belong to the signed-in caller alone, and a
user's unfinished jobs are capped exactly."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from handlers import apigw, jobs, jobviews, quota, upload
from handlers.config import ApiConfig
from handlers.jobmodel import Status
from tests.handlers.conftest import OTHER_USER, USER, Reply, Stack, api_event, call, upload_key

MAX_ACTIVE = ApiConfig.from_env().max_active_jobs_per_user


def create(stack: Stack, user: str = USER, name: str = "a.txt") -> Reply:
    key = stack.put_input(upload_key(name), owner=user)
    return call(jobs.handler, api_event("POST /api/jobs", {"input_text": "hi", "key": key}, user=user))


def get_job(job_id: str, user: str = USER) -> Reply:
    return call(jobs.handler, api_event("GET /api/jobs/{id}", path_parameters={"id": job_id}, user=user))


def listing(user: str = USER, **query: str) -> Reply:
    event = api_event("GET /api/jobs", user=user)
    if query:
        event["queryStringParameters"] = query
    return call(jobs.handler, event)


def test_a_job_belongs_to_the_user_whose_token_created_it(stack: Stack) -> None:
    created = create(stack)
    assert created.status == 201
    [item] = stack.items()
    assert item["owner"] == USER and item["holds_quota"] == "true"
    assert "owner" not in created.body, "the owner is the caller: nothing to show"


def test_the_owner_comes_from_the_verified_claims_not_from_the_request(stack: Stack) -> None:
    """A client naming an owner in the body is refused; in a header or the query it changes nothing."""
    key = stack.put_input(upload_key(), owner=USER)
    smuggled = call(jobs.handler, api_event("POST /api/jobs", {"input_text": "hi", "key": key, "owner": OTHER_USER}))
    assert (smuggled.status, smuggled.error_code) == (400, "unknown_field")
    event = api_event("POST /api/jobs", {"input_text": "hi", "key": key}, headers={
        "content-type": "application/json", "x-owner": OTHER_USER, "x-amz-meta-owner": OTHER_USER})
    assert call(jobs.handler, event).status == 201
    assert [item["owner"] for item in stack.items()] == [USER]


def test_another_users_job_is_as_unknown_as_a_missing_one(stack: Stack) -> None:
    job_id = create(stack, OTHER_USER).body["id"]
    theirs = get_job(job_id, USER)
    missing = get_job(job_id[::-1], USER)
    assert (theirs.status, theirs.error_code) == (404, "job_not_found")
    assert theirs.body == missing.body, "the answer must not tell an existing job from a missing one"
    assert get_job(job_id, OTHER_USER).status == 200


def test_another_users_upload_cannot_become_a_job(stack: Stack) -> None:
    key = stack.put_input(upload_key(), owner=OTHER_USER)
    reply = call(jobs.handler, api_event("POST /api/jobs", {"input_text": "hi", "key": key}, user=USER))
    assert (reply.status, reply.error_code) == (404, "upload_not_found")
    assert stack.items() == [] and stack.active_jobs(USER) == 0 and stack.active_jobs(OTHER_USER) == 0


def test_an_upload_without_an_owner_cannot_become_a_job(stack: Stack) -> None:
    """An object put into inputs/ some other way (no owner metadata) belongs to nobody."""
    key = upload_key()
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=b"hello")
    reply = call(jobs.handler, api_event("POST /api/jobs", {"input_text": "hi", "key": key}))
    assert (reply.status, reply.error_code) == (404, "upload_not_found")


def test_each_user_lists_only_their_own_jobs_newest_first(stack: Stack) -> None:
    mine = [create(stack, USER, f"m{i}.txt").body["id"] for i in range(3)]
    theirs = [create(stack, OTHER_USER, f"t{i}.txt").body["id"] for i in range(2)]
    assert [job["id"] for job in listing(USER).body["jobs"]] == mine[::-1]
    assert [job["id"] for job in listing(OTHER_USER).body["jobs"]] == theirs[::-1]


def test_a_listing_pages_with_a_cursor_until_the_last_page(stack: Stack) -> None:
    mine = [create(stack, USER, f"m{i}.txt").body["id"] for i in range(5)]
    seen, query = [], {"limit": "2"}
    for _ in range(5):
        page = listing(USER, **query)
        assert page.status == 200
        seen += [job["id"] for job in page.body["jobs"]]
        if "next" not in page.body:
            break
        query = {"limit": "2", "next": page.body["next"]}
    assert seen == mine[::-1], "every job once, newest first, across pages"


def test_another_users_cursor_is_not_found_and_a_forged_one_is_refused(stack: Stack) -> None:
    for i in range(2):
        create(stack, OTHER_USER, f"t{i}.txt")
    their_cursor = listing(OTHER_USER, limit="1").body["next"]
    reply = listing(USER, next=their_cursor)
    assert (reply.status, reply.error_code) == (404, "cursor_not_found")
    flat = json.loads(base64.urlsafe_b64decode(their_cursor + "=" * (-len(their_cursor) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**flat, "extra": "x"}).encode()).decode().rstrip("=")
    for unknown in (forged, base64.urlsafe_b64encode(b"[1, 2]").decode().rstrip("="), "0"):
        reply = listing(USER, next=unknown)
        assert (reply.status, reply.error_code) == (404, "cursor_not_found"), unknown
    for malformed in ("%%%", "a=", "x" * 513):
        reply = listing(USER, next=malformed)
        assert (reply.status, reply.error_code) == (400, "invalid_cursor"), malformed


def test_an_upload_grant_is_bound_to_its_owner(stack: Stack) -> None:
    """S3 refuses a POST whose signed fields were changed, so the grant uploads only as the caller's."""
    reply = call(upload.handler, api_event("POST /api/uploads", {"filename": "a.txt", "size": 5}, user=USER))
    assert reply.status == 201
    assert reply.body["fields"]["x-amz-meta-owner"] == USER
    policy = json.loads(base64.b64decode(reply.body["fields"]["policy"]))
    assert {"x-amz-meta-owner": USER} in policy["conditions"]


def test_a_user_at_the_limit_is_refused_with_retry_after_and_nothing_is_written(stack: Stack) -> None:
    for i in range(MAX_ACTIVE):
        assert create(stack, USER, f"j{i}.txt").status == 201
    key = stack.put_input(upload_key("one-more.txt"))
    refused = call(jobs.handler, api_event("POST /api/jobs", {"input_text": "hi", "key": key}))
    assert (refused.status, refused.error_code) == (429, "too_many_jobs")
    assert int(refused.headers["retry-after"]) > 0
    assert str(MAX_ACTIVE) in refused.body["error"]["message"]
    assert len(stack.items()) == MAX_ACTIVE and stack.active_jobs(USER) == MAX_ACTIVE
    assert create(stack, OTHER_USER).status == 201, "the limit is per user"


def test_a_finished_job_frees_its_place_once(stack: Stack) -> None:
    ids = [create(stack, USER, f"j{i}.txt").body["id"] for i in range(MAX_ACTIVE)]
    ddb = stack.client("dynamodb")
    ddb.update_item(TableName=stack.table, Key={"id": {"S": ids[0]}}, UpdateExpression="SET #s = :s",
                    ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "SUCCEEDED"}})
    assert quota.release(ddb, stack.table, ids[0], USER) is True
    assert quota.release(ddb, stack.table, ids[0], USER) is False, "a redelivered record frees nothing more"
    assert stack.active_jobs(USER) == MAX_ACTIVE - 1
    assert create(stack, USER, "next.txt").status == 201


def test_an_unfinished_job_keeps_its_place(stack: Stack) -> None:
    job_id = create(stack).body["id"]
    assert quota.release(stack.client("dynamodb"), stack.table, job_id, USER) is False
    assert stack.active_jobs(USER) == 1


def download_params(stack: Stack, name: str) -> dict[str, list[str]]:
    job_id = stack.save_job(Status.SUCCEEDED, output_file_path=f"{stack.bucket}/outputs/x/{name}")
    reply = get_job(job_id)
    assert reply.status == 200
    return parse_qs(urlparse(reply.body["output_url"]).query)


@pytest.mark.parametrize("name", ["page.out.html", "drawing.out.svg", "notes.out.txt"])
def test_a_download_is_always_an_attachment_that_no_browser_renders(stack: Stack, name: str) -> None:
    params = download_params(stack, name)
    assert params["response-content-type"] == ["application/octet-stream"]
    disposition = unquote(params["response-content-disposition"][0])
    assert disposition.startswith("attachment;") and f'filename="{name}"' in disposition


@pytest.mark.parametrize(("name", "ascii_name", "encoded"), [
    ("notes.out.txt", "notes.out.txt", "notes.out.txt"),
    ("r\u00e9sum\u00e9.out.pdf", "r_sum_.out.pdf", "r%C3%A9sum%C3%A9.out.pdf"),
    ('a"b\\c.out', "a_b_c.out", "a%22b%5Cc.out"),
])
def test_content_disposition_follows_rfc_6266(name: str, ascii_name: str, encoded: str) -> None:
    assert jobviews.content_disposition(name) == f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{encoded}"


def test_every_route_but_health_needs_a_caller(stack: Stack) -> None:
    """A route wired without the authorizer by mistake still refuses, as API Gateway would."""
    events: list[tuple[Any, dict[str, Any]]] = [
        (upload.handler, api_event("POST /api/uploads", {"filename": "a.txt", "size": 5}, user=None)),
        (jobs.handler, api_event("POST /api/jobs", {"input_text": "hi", "key": upload_key()}, user=None)),
        (jobs.handler, api_event("GET /api/jobs", user=None)),
        (jobs.handler, api_event("GET /api/jobs/{id}", path_parameters={"id": "x" * 21}, user=None)),
    ]
    for handler, event in events:
        reply = call(handler, event)
        assert (reply.status, reply.body) == (401, {"message": "Unauthorized"}), event["routeKey"]
    assert call(jobs.handler, api_event("GET /api/health", user=None)).status == 200


def test_an_action_that_needs_the_caller_refuses_to_run_on_a_public_route() -> None:
    """A route declared public by mistake still cannot act for nobody: `caller` raises (the platform answers 500)
    instead of serving with an empty owner."""
    router: apigw.Router[None] = apigw.Router("probe", aws_calls=0)

    @router.route("GET", "/api/probe", public=True)
    def probe(event: apigw.Event, services: None) -> apigw.Response:
        return apigw.json_response(200, {"owner": apigw.caller(event)})

    with pytest.raises(RuntimeError, match="public route"):
        router.resolve(api_event("GET /api/probe", user=None), None)
    signed_in = router.resolve(api_event("GET /api/probe"), None)
    assert json.loads(signed_in["body"]) == {"owner": USER}
