"""The strictness policy shared by every route (`handlers.apigw`): one JSON object in UTF-8, no duplicate or unknown
fields, no undeclared query parameters, one body limit that always fits a text at the cap, and bounded paging."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers import apigw, jobs, upload
from handlers.config import ApiConfig
from handlers.jobmodel import new_id
from tests.handlers.conftest import JSON, Reply, Stack, api_event, call, entry_point, upload_key

UPLOAD = "POST /api/uploads"
JOBS = "POST /api/jobs"
API_CONFIG = ApiConfig.from_env()
"""The config the Lambda entry points read from the test environment (tests/conftest.py)."""
MAX_TEXT = API_CONFIG.max_text_length


def post(route: str, body: Any = None, **kwargs: Any) -> Reply:
    return call(entry_point(route), api_event(route, body, **kwargs))


STRICT_JSON_REFUSALS = {
    "duplicate field": '{"filename": "a.txt", "filename": "b.txt", "size": 5}',
    "duplicate nested field": '{"filename": "a.txt", "size": 5, "size": 6}',
    "NaN": '{"filename": "a.txt", "size": NaN}',
    "Infinity": '{"filename": "a.txt", "size": Infinity}',
    "-Infinity": '{"filename": "a.txt", "size": -Infinity}',
    "byte order mark": '\ufeff{"filename": "a.txt", "size": 5}',
    "lone surrogate in the body": '{"filename": "a.txt", "size": 5}\ud800',
}


@pytest.mark.parametrize("raw", STRICT_JSON_REFUSALS.values(), ids=STRICT_JSON_REFUSALS.keys())
def test_json_that_python_would_accept_is_still_refused(stack: Stack, raw: str) -> None:
    """Python's parser takes the last duplicate and accepts NaN; another parser in front of us might not agree."""
    event = api_event(UPLOAD, headers=JSON)
    event["body"] = raw
    reply = call(upload.handler, event)
    assert (reply.status, reply.error_code) == (400, "invalid_json")
    stack.assert_nothing_written()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_bodies_not_in_utf8_are_refused(stack: Stack, encoding: str) -> None:
    """`json.loads(bytes)` guesses UTF-16/32; the API reads UTF-8 only."""
    raw = json.dumps({"filename": "a.txt", "size": 5}).encode(encoding)
    reply = post(UPLOAD, raw_body=raw, base64_body=True)
    assert (reply.status, reply.error_code) == (400, "invalid_json")
    stack.assert_nothing_written()


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=latin-1", "application/json; charset=utf-16", 'application/json;charset="ascii"'],
)
def test_a_charset_other_than_utf8_is_415(stack: Stack, content_type: str) -> None:
    reply = post(UPLOAD, {"filename": "a.txt", "size": 5}, headers={"content-type": content_type})
    assert (reply.status, reply.error_code) == (415, "unsupported_media_type")
    stack.assert_nothing_written()


@pytest.mark.parametrize(
    "content_type", ["application/json;charset=UTF-8", 'application/json; charset="utf-8"', "application/json; x=y"]
)
def test_utf8_charset_spellings_are_accepted(stack: Stack, content_type: str) -> None:
    assert post(UPLOAD, {"filename": "a.txt", "size": 5}, headers={"content-type": content_type}).status == 201


@pytest.mark.parametrize("filename", ["lone\ud800.txt", "\udfff"])
def test_filenames_with_lone_surrogates_are_refused(stack: Stack, filename: str) -> None:
    event = api_event(UPLOAD, headers=JSON)
    event["body"] = json.dumps({"filename": filename, "size": 5})  # escaped, so the body itself is valid UTF-8
    reply = call(upload.handler, event)
    assert (reply.status, reply.error_code) == (400, "invalid_filename")
    stack.assert_nothing_written()


def test_body_limit_always_fits_a_text_at_the_cap() -> None:
    """With a large text cap, a legitimate text escaped as surrogate pairs must not be refused as too large."""
    for cap in (1, 200, 2000, 20_000):
        longest = json.dumps({"input_text": "🙂" * cap, "key": upload_key("n" * 100)})
        assert len(longest.encode()) <= apigw.body_limit(cap), cap
    assert apigw.body_limit(1) == apigw.MAX_BODY_BYTES


def test_a_text_at_the_cap_in_escaped_emoji_is_accepted(stack: Stack) -> None:
    key = stack.put_input(upload_key())
    raw = json.dumps({"input_text": "🙂" * MAX_TEXT, "key": key})  # ensure_ascii: 12 bytes a character
    reply = post(JOBS, raw_body=raw)
    assert reply.status == 201, reply.body


@pytest.mark.parametrize("route", [UPLOAD, JOBS])
def test_both_handlers_share_one_body_limit(stack: Stack, route: str) -> None:
    limit = apigw.body_limit(API_CONFIG.max_text_length)
    raw = json.dumps({"filename": "a.txt", "size": 5}) + " " * limit
    reply = post(route, raw_body=raw)
    assert (reply.status, reply.error_code) == (413, "body_too_large")
    fits = json.dumps({"filename": "a.txt", "size": 5})
    fits += " " * (limit - len(fits))
    assert post(route, raw_body=fits).status != 413


def test_oversized_base64_body_is_refused_before_decoding(stack: Stack) -> None:
    event = api_event(UPLOAD, headers=JSON)
    event.update(body="!" * (apigw.MAX_BODY_BYTES * 2), isBase64Encoded=True)  # not even base64: size comes first
    reply = call(upload.handler, event)
    assert (reply.status, reply.error_code) == (413, "body_too_large")


QUERY_REFUSALS = [
    ("POST /api/uploads", upload.handler, {"filename": "a.txt", "size": 5}, {"debug": "1"}),
    ("POST /api/jobs", jobs.handler, {"input_text": "hi", "key": "k"}, {"status": "SUCCEEDED"}),
    ("GET /api/jobs", jobs.handler, None, {"cursor": "x"}),
    ("GET /api/jobs", jobs.handler, None, {"limit": "5", "offset": "10"}),
    ("GET /api/jobs/{id}", jobs.handler, None, {"id": "x"}),
    ("GET /api/health", jobs.handler, None, {"verbose": "true"}),
]


@pytest.mark.parametrize(("route", "handler", "body", "query"), QUERY_REFUSALS)
def test_undeclared_query_parameters_are_refused(
    stack: Stack, route: str, handler: Any, body: Any, query: dict[str, str]
) -> None:
    event = api_event(route, body, path_parameters={"id": new_id()} if "{id}" in route else None)
    event["queryStringParameters"] = query
    reply = call(handler, event)
    assert (reply.status, reply.error_code) == (400, "unknown_parameter")
    stack.assert_nothing_written()


def list_jobs(limit: str | None) -> Reply:
    event = api_event("GET /api/jobs")
    if limit is not None:
        event["queryStringParameters"] = {"limit": limit}
    return call(jobs.handler, event)


def put_jobs(stack: Stack, count: int) -> list[str]:
    """Jobs with increasing `created_at`; returns their ids oldest first."""
    stamps = [f"2030-01-01T00:00:{i:02d}.000Z" for i in range(count)]
    return [stack.save_job(created_at=stamp, updated_at=stamp) for stamp in stamps]


@pytest.mark.parametrize("limit", ["1", "3", str(jobs.LIST_LIMIT)])
def test_limit_bounds_the_page_newest_first(stack: Stack, limit: str) -> None:
    ids = put_jobs(stack, 5)
    reply = list_jobs(limit)
    assert reply.status == 200
    assert [job["id"] for job in reply.body["jobs"]] == ids[::-1][: int(limit)]


@pytest.mark.parametrize(
    "limit",
    ["0", "-1", str(jobs.LIST_LIMIT + 1), "1000000", "9" * 400, "abc", "", "1.5", " 5", "5,5", "\u0665", "+5", "05"],
)
def test_bad_limits_are_400(stack: Stack, limit: str) -> None:
    """Repeated `limit` arrives joined by commas (API Gateway), Arabic-Indic digits pass `int()`: both refused."""
    reply = list_jobs(limit)
    assert (reply.status, reply.error_code) == (400, "invalid_limit")


@pytest.mark.parametrize("content_type", ["text/\u212a", "\u0130mage/png", "text/pla\u0131n"])
def test_content_types_that_only_lower_case_to_ascii_are_refused(stack: Stack, content_type: str) -> None:
    """`"text/\\u212a".lower()` is `"text/k"`: checked before lower-casing, a non-ASCII type cannot sneak through."""
    reply = post(UPLOAD, {"filename": "a.txt", "size": 5, "content_type": content_type})
    assert (reply.status, reply.error_code) == (400, "invalid_content_type")
    stack.assert_nothing_written()
