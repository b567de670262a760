"""`POST /api/jobs` through `handler(event, None)`: the saved item, and every refusal leaving the table empty."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from handlers import jobs
from handlers.config import ApiConfig
from handlers.jobmodel import new_id
from tests.handlers.conftest import USER, Reply, Stack, api_event, call, upload_key

ROUTE = "POST /api/jobs"
API_CONFIG = ApiConfig.from_env()
"""The config the Lambda entry points read from the test environment (tests/conftest.py)."""
MAX_TEXT = API_CONFIG.max_text_length
MAX_BYTES = API_CONFIG.max_file_bytes
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def post(body: Any = None, **kwargs: Any) -> Reply:
    return call(jobs.handler, api_event(ROUTE, body, **kwargs))


def test_job_is_saved_pending(stack: Stack) -> None:
    key = stack.put_input(upload_key("notes.txt"), b"hello")
    reply = post({"input_text": "  shout  ", "key": key})
    assert reply.status == 201, reply.body
    job = reply.body
    assert set(job) == {"id", "status", "input_text", "input_file_path", "created_at", "updated_at"}
    assert job["id"] == key.split("/")[1], "the job id is the upload id"
    assert job["status"] == "PENDING"
    assert job["input_text"] == "shout"
    assert job["input_file_path"] == f"{stack.bucket}/{key}"
    assert ISO_UTC.match(job["created_at"]) and job["created_at"] == job["updated_at"]
    [item] = stack.items()
    assert item == {**job, "owner": USER, "holds_quota": "true"}, (
        "the item is what the API answered, plus its owner and the mark that it counts against their quota")
    assert stack.input_keys() == {key}


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("x", "x"),
        ("\n\t padded \t\n", "padded"),
        ("line one\nline two\ttabbed", "line one\nline two\ttabbed"),
        ("héllo wörld ✓ 日本語 🙂", "héllo wörld ✓ 日本語 🙂"),
        ("x" * MAX_TEXT, "x" * MAX_TEXT),
        ("  " + "y" * MAX_TEXT + "  ", "y" * MAX_TEXT),
        ("é" * MAX_TEXT, "é" * MAX_TEXT),
        ("windows\r\nlines\r\n", "windows\nlines"),
        ("old mac\rline", "old mac\nline"),
        ("mixed\r\n\r\nblank\n\rend", "mixed\n\nblank\n\nend"),
        ("\r\n \r\n padded \r\n", "padded"),
        ("ab\r\n" * (MAX_TEXT // 3) + "ab", "ab\n" * (MAX_TEXT // 3) + "ab"),
    ],
)
def test_accepted_texts_are_stored_trimmed(stack: Stack, text: str, stored: str) -> None:
    """Newline and tab are allowed inside; `\r\n` and a lone `\r` are stored as `\n` (as a textarea's value
    has them); the cap counts characters after that and trimming, not bytes."""
    key = stack.put_input(upload_key())
    reply = post({"input_text": text, "key": key})
    assert reply.status == 201, reply.body
    assert [item["input_text"] for item in stack.items()] == [stored]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "invalid_text"),
        ("   ", "invalid_text"),
        ("\n\t\n", "invalid_text"),
        ("x" * (MAX_TEXT + 1), "text_too_long"),
        ("y" + "\r\n" * MAX_TEXT + "y", "text_too_long"),
        ("\r" * 3, "invalid_text"),
        ("é" * (MAX_TEXT + 1), "text_too_long"),
        ("nul\x00byte", "invalid_text"),
        ("bell\x07", "invalid_text"),
        ("escape\x1b[31mred", "invalid_text"),
        ("delete\x7f", "invalid_text"),
        ("c1\x85control", "invalid_text"),
        ("lone \ud800 surrogate", "invalid_text"),
        (None, "invalid_text"),
        (5, "invalid_text"),
        (True, "invalid_text"),
        (["text"], "invalid_text"),
        ({"text": "x"}, "invalid_text"),
    ],
)
def test_bad_texts_are_refused(stack: Stack, text: object, code: str) -> None:
    key = stack.put_input(upload_key())
    reply = post({"input_text": text, "key": key})
    assert (reply.status, reply.error_code) == (400, code)
    stack.assert_nothing_written(inputs={key})


def _sibling(key: str, name: str) -> str:
    return key.rsplit("/", 1)[0] + "/" + name


BAD_KEYS = {
    "outputs prefix": lambda k: k.replace("inputs/", "outputs/"),
    "leading slash": lambda k: "/" + k,
    "upper-case prefix": lambda k: k.replace("inputs/", "INPUTS/"),
    "trailing newline": lambda k: k + "\n",
    "nested path": lambda k: k + "/more",
    "no name": lambda k: _sibling(k, ""),
    "dot-dot name": lambda k: _sibling(k, ".."),
    "hidden name": lambda k: _sibling(k, ".hidden"),
    "option-like name": lambda k: _sibling(k, "-rf"),
    "traversal to worker": lambda k: _sibling(k, "../../worker/worker.py"),
    "encoded traversal": lambda k: _sibling(k, "%2e%2e"),
    "name too long": lambda k: _sibling(k, "a" * 101),
    "space in name": lambda k: _sibling(k, "my notes.txt"),
    "short id": lambda k: "inputs/short/notes.txt",
    "long id": lambda k: "inputs/" + "a" * 22 + "/notes.txt",
    "bad id character": lambda k: "inputs/" + "a" * 20 + "!/notes.txt",
    "prefix traversal": lambda k: "inputs/../worker/worker.py",
    "worker script": lambda k: "worker/worker.py",
    "bare name": lambda k: "notes.txt",
    "empty": lambda k: "",
    "number": lambda k: 5,
    "null": lambda k: None,
    "list": lambda k: [k],
}


@pytest.mark.parametrize("key_for", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_keys_that_are_not_ours_are_refused(stack: Stack, key_for: Callable[[str], object]) -> None:
    """Only `inputs/<21-char id>/<safe name>` is accepted, even when an object with the given key exists."""
    bad = key_for(stack.put_input(upload_key()))
    if isinstance(bad, str) and bad.startswith("inputs/") and not bad.endswith("/"):
        stack.put_input(bad)
    before = stack.input_keys()
    reply = post({"input_text": "hi", "key": bad})
    assert (reply.status, reply.error_code) == (400, "invalid_key")
    stack.assert_nothing_written(inputs=before)


def test_missing_object_is_404(stack: Stack) -> None:
    reply = post({"input_text": "hi", "key": upload_key()})
    assert (reply.status, reply.error_code) == (404, "upload_not_found")
    stack.assert_nothing_written()


def test_object_over_the_cap_is_413(stack: Stack) -> None:
    """moto (and a tampered client) can store more than the presigned policy allows: the real size is re-checked."""
    key = stack.put_input(upload_key(), b"x" * (MAX_BYTES + 1))
    reply = post({"input_text": "hi", "key": key})
    assert (reply.status, reply.error_code) == (413, "file_too_large")
    stack.assert_nothing_written(inputs={key})


def test_object_at_the_cap_is_accepted(stack: Stack) -> None:
    key = stack.put_input(upload_key(), b"x" * MAX_BYTES)
    assert post({"input_text": "hi", "key": key}).status == 201


def test_empty_object_is_refused(stack: Stack) -> None:
    key = stack.put_input(upload_key(), b"")
    reply = post({"input_text": "hi", "key": key})
    assert (reply.status, reply.error_code) == (400, "empty_file")
    stack.assert_nothing_written(inputs={key})


def test_second_job_for_the_same_upload_is_409_and_the_first_is_unchanged(stack: Stack) -> None:
    key = stack.put_input(upload_key())
    first = post({"input_text": "first", "key": key})
    assert first.status == 201
    saved = stack.raw_item(first.body["id"])
    reply = post({"input_text": "second", "key": key})
    assert (reply.status, reply.error_code) == (409, "key_in_use")
    assert stack.raw_item(first.body["id"]) == saved
    assert len(stack.items()) == 1


def test_upload_id_of_a_finished_job_cannot_be_reused_with_another_name(stack: Stack) -> None:
    """The job id is the upload id, so a second file under the same upload id is still the same job: 409."""
    key = stack.put_input(upload_key("a.txt"))
    assert post({"input_text": "first", "key": key}).status == 201
    other = stack.put_input(key.rsplit("/", 1)[0] + "/b.txt")
    reply = post({"input_text": "second", "key": other})
    assert (reply.status, reply.error_code) == (409, "key_in_use")
    assert [item["input_text"] for item in stack.items()] == ["first"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"key": "inputs/x"}, "missing_field"),
        ({"input_text": "hi"}, "missing_field"),
        ({}, "missing_field"),
        ({"input_text": "hi", "key": "k", "status": "SUCCEEDED"}, "unknown_field"),
        ({"input_text": "hi", "key": "k", "id": new_id()}, "unknown_field"),
        ({"text": "hi", "key": "k"}, "unknown_field"),
    ],
)
def test_missing_and_unknown_fields_are_refused(stack: Stack, body: dict[str, Any], code: str) -> None:
    """A client cannot choose its job's id or status."""
    reply = post(body)
    assert (reply.status, reply.error_code) == (400, code)
    stack.assert_nothing_written()


@pytest.mark.parametrize("raw", ["", "{", '{"input_text": "hi", "key": }', "[]", "null", '"hi"', "[" * 5000])
def test_malformed_json_is_refused(stack: Stack, raw: str) -> None:
    reply = post(raw_body=raw)
    assert (reply.status, reply.error_code) == (400, "invalid_json")
    stack.assert_nothing_written()


@pytest.mark.parametrize("headers", [{}, {"content-type": "text/plain"}, {"content-type": "application/xml"}])
def test_wrong_content_type_header_is_415(stack: Stack, headers: dict[str, str]) -> None:
    key = stack.put_input(upload_key())
    reply = post({"input_text": "hi", "key": key}, headers=headers)
    assert (reply.status, reply.error_code) == (415, "unsupported_media_type")
    stack.assert_nothing_written(inputs={key})


def test_base64_body_is_decoded(stack: Stack) -> None:
    key = stack.put_input(upload_key())
    reply = post({"input_text": "ünïcode", "key": key}, base64_body=True)
    assert reply.status == 201
    assert reply.body["input_text"] == "ünïcode"


def test_oversized_body_is_413(stack: Stack) -> None:
    key = stack.put_input(upload_key())
    reply = post({"input_text": "x" * 20_000, "key": key})
    assert (reply.status, reply.error_code) == (413, "body_too_large")
    stack.assert_nothing_written(inputs={key})
