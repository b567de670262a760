"""`POST /api/uploads` through `handler(event, None)`: the 201 shape, the key layout and every refusal."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handlers import jobs, upload
from handlers.apigw import MAX_BODY_BYTES
from handlers.config import ApiConfig
from handlers.jobmodel import ID_ALPHABET, ID_LENGTH, INPUT_PREFIX
from tests.handlers.conftest import JSON, USER, Reply, Stack, api_event, call, factory_s3_in

ROUTE = "POST /api/uploads"
API_CONFIG = ApiConfig.from_env()
"""The config the Lambda entry points read from the test environment (tests/conftest.py)."""
MAX = API_CONFIG.max_file_bytes


def post(body: Any = None, **kwargs: Any) -> Reply:
    return call(upload.handler, api_event(ROUTE, body, **kwargs))


def created(stack: Stack, **request: Any) -> dict[str, Any]:
    reply = post({"filename": "notes.txt", "size": 5, **request})
    assert reply.status == 201, reply.body
    return reply.body


def stored_name(key: str) -> str:
    prefix, upload_id, name = key.split("/")
    assert prefix + "/" == INPUT_PREFIX
    assert len(upload_id) == ID_LENGTH and set(upload_id) <= set(ID_ALPHABET), key
    return name


def policy(reply_body: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(reply_body["fields"]["policy"]))


def test_created_upload_has_the_contract_shape(stack: Stack) -> None:
    body = created(stack, filename="notes.txt", size=5, content_type="text/plain")
    assert set(body) == {"key", "url", "fields", "expires_in", "max_bytes"}
    assert stored_name(body["key"]) == "notes.txt"
    assert body["fields"]["key"] == body["key"]
    assert body["fields"]["Content-Type"] == "text/plain"
    assert stack.bucket in body["url"]
    assert body["expires_in"] == API_CONFIG.upload_expiry_seconds
    assert body["max_bytes"] == MAX
    assert {"policy", "x-amz-security-token"} <= set(body["fields"])


def test_upload_writes_nothing(stack: Stack) -> None:
    """Asking for an upload only signs: no object and no job exist until the browser posts the file."""
    created(stack)
    stack.assert_nothing_written()


def test_every_upload_gets_its_own_id(stack: Stack) -> None:
    keys = {created(stack)["key"] for _ in range(20)}
    assert len(keys) == 20


def test_issued_key_is_accepted_by_the_jobs_handler(stack: Stack) -> None:
    """The two handlers agree on the key layout: a key the upload handler signs is one jobs will take."""
    key = created(stack)["key"]
    assert jobs.KEY_PATTERN.match(key)


@pytest.mark.parametrize(
    ("filename", "stored"),
    [
        ("notes.txt", "notes.txt"),
        ("my report (final).pdf", "my_report_final_.pdf"),
        ("résumé.pdf", "resume.pdf"),
        ("Ünïcödé naïve.txt", "Unicode_naive.txt"),
        ("数据.csv", "csv"),
        ("数据", "file"),
        (".bashrc", "bashrc"),
        ("  padded.txt  ", "padded.txt"),
        ("archive.tar.gz", "archive.tar.gz"),
        ("a;rm -rf *.sh", "a_rm_-rf_.sh"),
        ("...", "file"),
        ("%2e%2e%2fetc", "_2e_2e_2fetc"),
    ],
)
def test_filenames_are_sanitised(stack: Stack, filename: str, stored: str) -> None:
    """Whatever the user calls the file, the stored name is plain `[A-Za-z0-9._-]` and never a path."""
    key = created(stack, filename=filename)["key"]
    assert stored_name(key) == stored
    assert jobs.KEY_PATTERN.match(key), key


@pytest.mark.parametrize(
    "filename",
    ["-rf", "--help.txt", "-", "_-.txt", "a" * 120 + ".txt", "x" * 100 + "." + "y" * 99, "x" * 100 + "-" + "y" * 99],
)
def test_odd_names_still_give_a_key_jobs_accepts(stack: Stack, filename: str) -> None:
    """Regression: names starting with `-` (or a cut at `.`/`-`) were signed, then refused by POST /api/jobs."""
    key = created(stack, filename=filename)["key"]
    assert jobs.KEY_PATTERN.match(key), key
    assert len(stored_name(key)) <= upload.MAX_STORED_NAME_CHARS


def test_long_names_keep_their_extension(stack: Stack) -> None:
    key = created(stack, filename="a" * 200 + ".csv")["key"]
    assert stored_name(key) == "a" * 96 + ".csv"


@pytest.mark.parametrize(
    "filename",
    [
        "../etc/passwd",
        "..",
        ".",
        "dir/notes.txt",
        "/abs.txt",
        "..\\..\\win.ini",
        "C:\\temp\\x.txt",
        "bad\x00name.txt",
        "line\nbreak.txt",
        "tab\tname.txt",
        "bell\x07.txt",
        "del\x7f.txt",
        "c1\x85.txt",
        "a" * (upload.MAX_FILENAME_CHARS + 1),
        "",
        "   ",
        5,
        None,
        ["notes.txt"],
        {"name": "notes.txt"},
    ],
)
def test_bad_filenames_are_refused(stack: Stack, filename: object) -> None:
    reply = post({"filename": filename, "size": 5})
    assert (reply.status, reply.error_code) == (400, "invalid_filename")
    stack.assert_nothing_written()


def test_longest_allowed_filename_is_accepted(stack: Stack) -> None:
    assert post({"filename": "a" * upload.MAX_FILENAME_CHARS, "size": 5}).status == 201


@pytest.mark.parametrize(
    ("size", "status", "code"),
    [
        (0, 400, "invalid_size"),
        (-1, 400, "invalid_size"),
        (0.001, 400, "invalid_size"),
        (float(MAX + 1), 413, "file_too_large"),
        (1.5, 400, "invalid_size"),
        (True, 400, "invalid_size"),
        (False, 400, "invalid_size"),
        ("5", 400, "invalid_size"),
        (None, 400, "invalid_size"),
        ([5], 400, "invalid_size"),
        (MAX + 1, 413, "file_too_large"),
        (10**30, 413, "file_too_large"),
    ],
)
def test_bad_sizes_are_refused(stack: Stack, size: object, status: int, code: str) -> None:
    reply = post({"filename": "notes.txt", "size": size})
    assert (reply.status, reply.error_code) == (status, code)
    stack.assert_nothing_written()


@pytest.mark.parametrize("size", [1, MAX, 5.0, float(MAX)])
def test_size_bounds_are_inclusive(stack: Stack, size: int) -> None:
    assert post({"filename": "notes.txt", "size": size}).status == 201


@pytest.mark.parametrize(
    ("given", "signed"),
    [
        (None, "application/octet-stream"),
        ("", "application/octet-stream"),
        ("text/plain", "text/plain"),
        ("Text/CSV", "text/csv"),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("image/svg+xml", "image/svg+xml"),
    ],
)
def test_content_type_is_signed_into_fields_and_policy(stack: Stack, given: str | None, signed: str) -> None:
    request: dict[str, Any] = {"filename": "notes.txt", "size": 5}
    if given is not None:
        request["content_type"] = given
    body = created(stack, **request)
    assert body["fields"]["Content-Type"] == signed
    assert {"Content-Type": signed} in policy(body)["conditions"]


@pytest.mark.parametrize(
    "content_type",
    [
        "text",
        "text/",
        "/plain",
        "text/plain; charset=utf-8",
        "text/plain\r\nX-Evil: 1",
        "text/plain\n",
        "text/pl ain",
        "a/" + "b" * 130,
        5,
        True,
        ["text/plain"],
    ],
)
def test_bad_content_types_are_refused(stack: Stack, content_type: object) -> None:
    reply = post({"filename": "notes.txt", "size": 5, "content_type": content_type})
    assert (reply.status, reply.error_code) == (400, "invalid_content_type")
    stack.assert_nothing_written()


def test_presigned_policy_bounds_size_type_key_and_time(stack: Stack) -> None:
    """moto does not enforce POST policies, so the policy document itself is what proves the bounds."""
    before = datetime.now(UTC).replace(microsecond=0)
    body = created(stack, filename="data.bin", size=100, content_type="application/octet-stream")
    after = datetime.now(UTC)
    document = policy(body)
    conditions = document["conditions"]
    assert ["content-length-range", 1, MAX] in conditions
    assert {"Content-Type": "application/octet-stream"} in conditions
    assert {"key": body["key"]} in conditions
    assert {"bucket": stack.bucket} in conditions
    assert not any(isinstance(c, list) and c[0] == "starts-with" for c in conditions), "a prefix would widen the key"
    expiry = timedelta(seconds=API_CONFIG.upload_expiry_seconds)
    expires = datetime.strptime(document["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before + expiry - timedelta(seconds=1) <= expires <= after + expiry
    assert expiry <= timedelta(minutes=15), "an upload grant should last minutes"


def test_post_is_signed_with_sigv4(stack: Stack) -> None:
    """Regression: boto3 presigned with SigV2 in us-east-1/eu-west-1, which S3 refuses for buckets made after 2020."""
    body = created(stack)
    assert body["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert {"x-amz-credential", "x-amz-date", "x-amz-signature"} <= set(body["fields"])
    assert not {"AWSAccessKeyId", "signature"} & set(body["fields"])
    assert {"x-amz-algorithm": "AWS4-HMAC-SHA256"} in policy(body)["conditions"]


def test_post_goes_to_the_buckets_regional_host(stack: Stack) -> None:
    """Regression: the global host `<bucket>.s3.amazonaws.com` answers 307 for a day after a non-us-east-1 bucket is
    made, which a browser's cross-origin POST does not survive. Checked with the handler's own client config."""
    s3 = factory_s3_in("eu-west-1")
    grant = upload.create_upload(s3, API_CONFIG, {"filename": "a.txt", "size": 5}, USER)
    assert grant["url"] == f"https://{stack.bucket}.s3.eu-west-1.amazonaws.com/"


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        ({"size": 5}, "missing_field"),
        ({"filename": "notes.txt"}, "missing_field"),
        ({}, "missing_field"),
        ({"filename": "notes.txt", "size": 5, "bucket": "other"}, "unknown_field"),
        ({"filename": "notes.txt", "size": 5, "key": "inputs/x/y"}, "unknown_field"),
        ({"fileName": "notes.txt", "size": 5}, "unknown_field"),
    ],
)
def test_missing_and_unknown_fields_are_refused(stack: Stack, request_body: dict[str, Any], code: str) -> None:
    reply = post(request_body)
    assert (reply.status, reply.error_code) == (400, code)
    stack.assert_nothing_written()


@pytest.mark.parametrize(
    "raw",
    ["", "{", "not json", '{"filename": "a.txt", "size": 5,}', "[]", '"notes.txt"', "null", "5", "\xff"],
)
def test_malformed_json_is_refused(stack: Stack, raw: str) -> None:
    reply = post(raw_body=raw)
    assert (reply.status, reply.error_code) == (400, "invalid_json")
    stack.assert_nothing_written()


def test_missing_body_is_refused(stack: Stack) -> None:
    reply = call(upload.handler, api_event(ROUTE, headers=JSON))
    assert (reply.status, reply.error_code) == (400, "invalid_json")
    stack.assert_nothing_written()


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 5000 + "]" * 5000,
        '{"filename": "a.txt", "size": ' + "9" * 5000 + "}",
    ],
)
def test_pathological_json_is_a_client_error(stack: Stack, raw: str) -> None:
    """Regression: deep nesting (RecursionError) and giant integers (ValueError) escaped as a 500."""
    assert len(raw.encode()) <= MAX_BODY_BYTES
    reply = post(raw_body=raw)
    assert (reply.status, reply.error_code) == (400, "invalid_json")
    stack.assert_nothing_written()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "multipart/form-data; boundary=x"},
        {"content-type": "application/jsonp"},
    ],
)
def test_wrong_content_type_header_is_415(stack: Stack, headers: dict[str, str]) -> None:
    reply = post({"filename": "notes.txt", "size": 5}, headers=headers)
    assert (reply.status, reply.error_code) == (415, "unsupported_media_type")
    stack.assert_nothing_written()


@pytest.mark.parametrize(
    "headers",
    [{"content-type": "application/json; charset=utf-8"}, {"Content-Type": "Application/JSON"}],
)
def test_json_content_type_variants_are_accepted(stack: Stack, headers: dict[str, str]) -> None:
    assert post({"filename": "notes.txt", "size": 5}, headers=headers).status == 201


def test_base64_body_is_decoded(stack: Stack) -> None:
    """API Gateway may deliver the body base64-encoded; it must be read the same as a plain one."""
    reply = post({"filename": "résumé.pdf", "size": 5}, base64_body=True)
    assert reply.status == 201
    assert stored_name(reply.body["key"]) == "resume.pdf"


@pytest.mark.parametrize("body", ["not base64!!", "eyJmaWxlbmFtZSI6", "éé"])
def test_bad_base64_body_is_refused(stack: Stack, body: str) -> None:
    event = api_event(ROUTE, {"filename": "a.txt", "size": 5})
    event.update(body=body, isBase64Encoded=True)
    reply = call(upload.handler, event)
    assert (reply.status, reply.error_code) == (400, "invalid_json")
    stack.assert_nothing_written()


def test_base64_body_that_is_not_utf8_is_refused(stack: Stack) -> None:
    reply = post(raw_body=b'{"filename": "\xff.txt", "size": 5}', base64_body=True)
    assert (reply.status, reply.error_code) == (400, "invalid_json")
    stack.assert_nothing_written()


@pytest.mark.parametrize("base64_body", [False, True])
def test_oversized_body_is_413(stack: Stack, base64_body: bool) -> None:
    raw = json.dumps({"filename": "a" * MAX_BODY_BYTES, "size": 5})
    reply = post(raw_body=raw, base64_body=base64_body)
    assert (reply.status, reply.error_code) == (413, "body_too_large")
    stack.assert_nothing_written()


def test_body_size_counts_bytes_not_characters(stack: Stack) -> None:
    """A body under the cap in characters but over it in UTF-8 bytes is still too large."""
    raw = json.dumps({"filename": "é" * (MAX_BODY_BYTES // 2 + 10), "size": 5}, ensure_ascii=False)
    assert len(raw) <= MAX_BODY_BYTES < len(raw.encode())
    reply = post(raw_body=raw)
    assert (reply.status, reply.error_code) == (413, "body_too_large")
    stack.assert_nothing_written()


def test_other_routes_are_404(stack: Stack) -> None:
    reply = call(upload.handler, api_event("GET /api/uploads"))
    assert (reply.status, reply.error_code) == (404, "not_found")
    stack.assert_nothing_written()
