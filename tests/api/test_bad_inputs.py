"""Bad inputs over HTTP through the local stack (werkzeug web layer -> payload 2.0 event -> handler -> moto).

Each case asserts the 4xx status, the error code, the contract's error shape (validated against docs/openapi.json),
and that nothing was written: every job item and every object in the data bucket is exactly as before the request.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import requests

from handlers import capacity
from handlers.jobmodel import new_id
from handlers.routes import ROUTES
from local.app import LocalPipeline
from local.client import ApiClient
from tests import tokens
from tests.api.conftest import SETTINGS, Snapshot
from tests.api.openapi import check_response, component, document, schema_validator
from tests.local.harness import CREDENTIALS, new_user, owner_of, signed_in

MAX_BYTES = SETTINGS.max_file_bytes
MAX_TEXT = SETTINGS.max_text_length
BODY_LIMIT = 12 * MAX_TEXT + 4096


@dataclass(frozen=True)
class Given:
    """What exists before the bad requests: an uploaded, unused key; another job and the key it used; an upload
    larger than the cap; an empty upload."""

    fresh_key: str
    used_key: str
    job_id: str
    oversize_key: str
    empty_key: str
    token: str
    """The signed-in user's access token, sent with every case unless the case says otherwise."""
    claims: dict[str, Any]
    """That token's claims (a forged token changes one of them)."""
    other_client_token: str
    """A genuine token of the same user through another app client of the same pool."""
    other_job_id: str
    other_key: str
    other_cursor: str
    """Another user's job, unused upload, and listing cursor."""
    succeeded_id: str
    """The user's SUCCEEDED job."""
    input_gone_id: str
    """The user's FAILED job whose input object was deleted."""
    oversize_failed_id: str
    """The user's FAILED job whose input is over today's size limit (lowered since its upload)."""
    vm_alive_id: str
    """The user's CANCELLED job whose VM still holds a slot (shutting down)."""
    full_token: str
    full_failed_id: str
    """A user with `max_active_jobs_per_user` unfinished jobs counted, one of them FAILED (not released yet)."""


@dataclass(frozen=True)
class Bad:
    method: str
    path: str
    status: int
    code: str
    body: Callable[[Given], Any] | None = None
    """A JSON value, sent with `content-type: application/json` (unless `headers` says otherwise)."""
    raw: bytes | None = None
    """Sent as is, instead of `body`, also with `content-type: application/json` unless `headers` says otherwise."""
    headers: dict[str, str | None] = field(default_factory=dict)
    """A header set to None is not sent at all."""
    authorization: Callable[[Given], str | None] | None = None
    """The `Authorization` header (None from the callable: not sent); by default the user's valid token."""


def token_with(**changes: Any) -> Callable[[Given], str]:
    """A bearer token signed by the pool's own key whose claims differ from the user's by `changes`."""
    return lambda g: "Bearer " + tokens.signed({**g.claims, **changes})


def refused(authorization: Callable[[Given], str | None], route: str = "/api/jobs", method: str = "GET") -> Bad:
    """A well-formed request that only its `Authorization` header spoils: 401 from the authorizer."""
    body = (lambda g: {"input_text": "hi", "key": g.fresh_key}) if method == "POST" else None
    return Bad(method, route, 401, "", body=body, authorization=authorization)


def job(text: object = "hi", key: Callable[[Given], object] = lambda g: g.fresh_key) -> Callable[[Given], Any]:
    return lambda g: {"input_text": text, "key": key(g)}


def up(filename: object = "notes.txt", size: object = 5, **more: object) -> Callable[[Given], Any]:
    return lambda g: {"filename": filename, "size": size, **more}


def sibling(name: str) -> Callable[[Given], str]:
    return lambda g: g.used_key.rsplit("/", 1)[0] + "/" + name


UPLOADS, JOBS = "/api/uploads", "/api/jobs"
CASES: dict[str, Bad] = {
    # the body as a whole
    "malformed JSON": Bad("POST", UPLOADS, 400, "invalid_json", raw=b'{"filename": "a.txt", "size": '),
    "trailing comma": Bad("POST", JOBS, 400, "invalid_json", raw=b'{"input_text": "hi", "key": "k",}'),
    "JSON array": Bad("POST", UPLOADS, 400, "invalid_json", body=lambda g: ["notes.txt", 5]),
    "JSON string": Bad("POST", JOBS, 400, "invalid_json", body=lambda g: "hi"),
    "empty body": Bad("POST", JOBS, 400, "invalid_json", raw=b""),
    "not UTF-8": Bad("POST", UPLOADS, 400, "invalid_json", raw=b'{"filename": "\xff.txt", "size": 5}'),
    "UTF-16 body": Bad("POST", UPLOADS, 400, "invalid_json",
                       raw=json.dumps({"filename": "a.txt", "size": 5}).encode("utf-16")),
    "duplicate field": Bad("POST", UPLOADS, 400, "invalid_json",
                           raw=b'{"filename": "a.txt", "size": 5, "size": 6}'),
    "NaN size": Bad("POST", UPLOADS, 400, "invalid_json", raw=b'{"filename": "a.txt", "size": NaN}'),
    "deep nesting": Bad("POST", JOBS, 400, "invalid_json", raw=b"[" * 5000 + b"]" * 5000),
    "body over the limit": Bad("POST", JOBS, 413, "body_too_large", body=job("x" * BODY_LIMIT)),
    "missing content type": Bad("POST", UPLOADS, 415, "unsupported_media_type",
                                raw=b'{"filename": "a.txt", "size": 5}', headers={"content-type": None}),
    "text/plain content type": Bad("POST", JOBS, 415, "unsupported_media_type", body=job(),
                                   headers={"content-type": "text/plain"}),
    "form content type": Bad("POST", UPLOADS, 415, "unsupported_media_type", raw=b"filename=a.txt&size=5",
                             headers={"content-type": "application/x-www-form-urlencoded"}),
    "latin-1 charset": Bad("POST", UPLOADS, 415, "unsupported_media_type", body=up(),
                           headers={"content-type": "application/json; charset=latin-1"}),
    # fields
    "missing filename": Bad("POST", UPLOADS, 400, "missing_field", body=lambda g: {"size": 5}),
    "missing size": Bad("POST", UPLOADS, 400, "missing_field", body=lambda g: {"filename": "a.txt"}),
    "missing key": Bad("POST", JOBS, 400, "missing_field", body=lambda g: {"input_text": "hi"}),
    "missing text": Bad("POST", JOBS, 400, "missing_field", body=lambda g: {"key": g.fresh_key}),
    "unknown upload field": Bad("POST", UPLOADS, 400, "unknown_field", body=up(bucket="other")),
    "client-chosen job id": Bad("POST", JOBS, 400, "unknown_field",
                                body=lambda g: {"input_text": "hi", "key": g.fresh_key, "id": new_id()}),
    "client-chosen status": Bad("POST", JOBS, 400, "unknown_field",
                                body=lambda g: {"input_text": "hi", "key": g.fresh_key, "status": "SUCCEEDED"}),
    "unknown query parameter": Bad("POST", UPLOADS + "?debug=1", 400, "unknown_parameter", body=up()),
    # sizes
    "size as a string": Bad("POST", UPLOADS, 400, "invalid_size", body=up(size="5")),
    "size as a float": Bad("POST", UPLOADS, 400, "invalid_size", body=up(size=5.5)),
    "size as a boolean": Bad("POST", UPLOADS, 400, "invalid_size", body=up(size=True)),
    "zero size": Bad("POST", UPLOADS, 400, "invalid_size", body=up(size=0)),
    "negative size": Bad("POST", UPLOADS, 400, "invalid_size", body=up(size=-1)),
    "size over the cap": Bad("POST", UPLOADS, 413, "file_too_large", body=up(size=MAX_BYTES + 1)),
    "astronomical size": Bad("POST", UPLOADS, 413, "file_too_large", body=up(size=10**100)),
    # file names
    "traversal filename": Bad("POST", UPLOADS, 400, "invalid_filename", body=up("../../worker/worker.py")),
    "directory in filename": Bad("POST", UPLOADS, 400, "invalid_filename", body=up("dir/notes.txt")),
    "absolute filename": Bad("POST", UPLOADS, 400, "invalid_filename", body=up("/etc/passwd")),
    "windows path filename": Bad("POST", UPLOADS, 400, "invalid_filename", body=up("C:\\Users\\a\\x.txt")),
    "dot-dot filename": Bad("POST", UPLOADS, 400, "invalid_filename", body=up("..")),
    "blank filename": Bad("POST", UPLOADS, 400, "invalid_filename", body=up("   ")),
    "filename too long": Bad("POST", UPLOADS, 400, "invalid_filename", body=up("a" * 252 + ".txt")),
    "NUL in filename": Bad("POST", UPLOADS, 400, "invalid_filename", body=up("a\x00.txt")),
    "newline in filename": Bad("POST", UPLOADS, 400, "invalid_filename", body=up("a\r\nb.txt")),
    "filename not a string": Bad("POST", UPLOADS, 400, "invalid_filename", body=up(["a.txt"])),
    "header injection in content type": Bad("POST", UPLOADS, 400, "invalid_content_type",
                                            body=up(content_type="text/plain\r\nX-Amz-Acl: public-read")),
    "content type with parameters": Bad("POST", UPLOADS, 400, "invalid_content_type",
                                        body=up(content_type="text/html; charset=utf-8")),
    # texts
    "empty text": Bad("POST", JOBS, 400, "invalid_text", body=job("")),
    "blank text": Bad("POST", JOBS, 400, "invalid_text", body=job(" \r\n\t ")),
    "text not a string": Bad("POST", JOBS, 400, "invalid_text", body=job(42)),
    "text over the cap": Bad("POST", JOBS, 400, "text_too_long", body=job("x" * (MAX_TEXT + 1))),
    "NUL in text": Bad("POST", JOBS, 400, "invalid_text", body=job("a\x00b")),
    "escape sequence in text": Bad("POST", JOBS, 400, "invalid_text", body=job("\x1b[2Jcleared")),
    "C1 control in text": Bad("POST", JOBS, 400, "invalid_text", body=job("next\x85line")),
    # keys
    "key traversal": Bad("POST", JOBS, 400, "invalid_key", body=job(key=lambda g: "inputs/../worker/worker.py")),
    "key of the worker script": Bad("POST", JOBS, 400, "invalid_key", body=job(key=lambda g: "worker/worker.py")),
    "key under outputs": Bad("POST", JOBS, 400, "invalid_key",
                             body=job(key=lambda g: g.fresh_key.replace("inputs/", "outputs/"))),
    "key not a string": Bad("POST", JOBS, 400, "invalid_key", body=job(key=lambda g: [g.fresh_key])),
    "unknown upload key": Bad("POST", JOBS, 404, "upload_not_found",
                              body=job(key=lambda g: f"inputs/{new_id()}/notes.txt")),
    "reused key": Bad("POST", JOBS, 409, "key_in_use", body=job(key=lambda g: g.used_key)),
    "another job's upload id, other name": Bad("POST", JOBS, 404, "upload_not_found",
                                               body=job(key=sibling("other.txt"))),
    "uploaded object over the cap": Bad("POST", JOBS, 413, "file_too_large", body=job(key=lambda g: g.oversize_key)),
    "empty uploaded object": Bad("POST", JOBS, 400, "empty_file", body=job(key=lambda g: g.empty_key)),
    # ids and paging
    "short id": Bad("GET", "/api/jobs/abc", 404, "job_not_found"),
    "id with a bad character": Bad("GET", "/api/jobs/" + "a" * 20 + "!", 404, "job_not_found"),
    "encoded traversal id": Bad("GET", "/api/jobs/..%2F..%2Fworker", 404, "not_found"),
    "unknown id": Bad("GET", "/api/jobs/" + "Z" * 21, 404, "job_not_found"),
    "limit zero": Bad("GET", "/api/jobs?limit=0", 400, "invalid_limit"),
    "limit over the page": Bad("GET", "/api/jobs?limit=51", 400, "invalid_limit"),
    "limit not a number": Bad("GET", "/api/jobs?limit=all", 400, "invalid_limit"),
    "repeated limit": Bad("GET", "/api/jobs?limit=1&limit=2", 400, "invalid_limit"),
    "paging by offset": Bad("GET", "/api/jobs?offset=50", 400, "unknown_parameter"),
    # cancel, retry, delete
    "cancel a finished job": Bad("POST", "/api/jobs/{succeeded_id}/cancel", 409, "job_finished"),
    "cancel an unknown job": Bad("POST", "/api/jobs/" + "Z" * 21 + "/cancel", 404, "job_not_found"),
    "cancel a short id": Bad("POST", "/api/jobs/abc/cancel", 404, "job_not_found"),
    "cancel another user's job": Bad("POST", "/api/jobs/{other_job_id}/cancel", 404, "job_not_found"),
    "cancel with options": Bad("POST", "/api/jobs/{job_id}/cancel", 400, "unknown_field", body=lambda g: {"force": 1}),
    "cancel with a text body": Bad("POST", "/api/jobs/{job_id}/cancel", 415, "unsupported_media_type", raw=b"now",
                                   headers={"content-type": "text/plain"}),
    "cancel with bad JSON": Bad("POST", "/api/jobs/{job_id}/cancel", 400, "invalid_json", raw=b"{"),
    "retry a pending job": Bad("POST", "/api/jobs/{job_id}/retry", 409, "job_not_retryable"),
    "retry a succeeded job": Bad("POST", "/api/jobs/{succeeded_id}/retry", 409, "job_not_retryable"),
    "retry a job whose input is gone": Bad("POST", "/api/jobs/{input_gone_id}/retry", 409, "input_gone"),
    "retry a job whose file is over today's limit": Bad("POST", "/api/jobs/{oversize_failed_id}/retry", 413,
                                                        "file_too_large"),
    "retry over the quota": Bad("POST", "/api/jobs/{full_failed_id}/retry", 429, "too_many_jobs",
                                authorization=lambda g: f"Bearer {g.full_token}"),
    "retry an unknown job": Bad("POST", "/api/jobs/" + "Z" * 21 + "/retry", 404, "job_not_found"),
    "retry another user's job": Bad("POST", "/api/jobs/{other_job_id}/retry", 404, "job_not_found"),
    "retry with a new text": Bad("POST", "/api/jobs/{input_gone_id}/retry", 400, "unknown_field",
                                 body=lambda g: {"input_text": "other"}),
    "delete a pending job": Bad("DELETE", "/api/jobs/{job_id}", 409, "job_not_final"),
    "delete while the VM shuts down": Bad("DELETE", "/api/jobs/{vm_alive_id}", 409, "job_vm_running"),
    "delete an unknown job": Bad("DELETE", "/api/jobs/" + "Z" * 21, 404, "job_not_found"),
    "delete another user's job": Bad("DELETE", "/api/jobs/{other_job_id}", 404, "job_not_found"),
    "delete another user's finished job": Bad("DELETE", "/api/jobs/{full_failed_id}", 404, "job_not_found"),
    "delete with options": Bad("DELETE", "/api/jobs/{succeeded_id}", 400, "unknown_field",
                               body=lambda g: {"keep_files": True}),
    "delete with a query": Bad("DELETE", "/api/jobs/{succeeded_id}?force=1", 400, "unknown_parameter"),
    # routes and methods
    "GET a cancel": Bad("GET", "/api/jobs/{job_id}/cancel", 405, "method_not_allowed"),
    "PUT a job": Bad("PUT", "/api/jobs/{job_id}", 405, "method_not_allowed", body=lambda g: {"status": "CANCELLED"}),
    "PUT jobs": Bad("PUT", JOBS, 405, "method_not_allowed", body=job()),
    "GET uploads": Bad("GET", UPLOADS, 405, "method_not_allowed"),
    "PATCH a job": Bad("PATCH", "/api/jobs/{job_id}", 405, "method_not_allowed", body=lambda g: {"status": "FAILED"}),
    "POST health": Bad("POST", "/api/health", 405, "method_not_allowed", body=lambda g: {}),
    "POST the OpenAPI document": Bad("POST", "/api/openapi.json", 405, "method_not_allowed", body=lambda g: {}),
    "unknown route": Bad("GET", "/api/admin", 404, "not_found"),
    "nested unknown route": Bad("POST", "/api/jobs/{job_id}/pause", 404, "not_found", body=lambda g: {}),
    # other users' things: as unknown as missing ones
    "another user's job": Bad("GET", "/api/jobs/{other_job_id}", 404, "job_not_found"),
    "another user's upload key": Bad("POST", JOBS, 404, "upload_not_found", body=job(key=lambda g: g.other_key)),
    "another user's cursor": Bad("GET", "/api/jobs?limit=1&next={other_cursor}", 404, "cursor_not_found"),
    "garbage cursor": Bad("GET", "/api/jobs?next=not-a-cursor", 404, "cursor_not_found"),
    "cursor with padding": Bad("GET", "/api/jobs?next=abcd%3D", 400, "invalid_cursor"),
    "cursor over the length": Bad("GET", "/api/jobs?next=" + "A" * 600, 400, "invalid_cursor"),
}
AUTH_CASES: dict[str, Bad] = {
    "no token": refused(lambda g: None),
    "no token on upload": refused(lambda g: None, UPLOADS, "POST"),
    "no token on job creation": refused(lambda g: None, JOBS, "POST"),
    "no token on a job": refused(lambda g: None, "/api/jobs/{job_id}"),
    "empty Authorization": refused(lambda g: ""),
    "Bearer and nothing": refused(lambda g: "Bearer "),
    "Basic credentials": refused(lambda g: "Basic dXNlcjpwYXNz"),
    "garbage": refused(lambda g: "Bearer not.a.token"),
    "alg none": refused(lambda g: "Bearer " + tokens.unsigned(g.claims)),
    "changed payload": refused(lambda g: "Bearer " + tokens.with_payload(g.token, sub="someone-else")),
    "signed with another RSA key": refused(lambda g: "Bearer " + tokens.signed(g.claims, OTHER_KEY)),
    "HS256 with the public key": refused(lambda g: "Bearer " + tokens.hs256_with_public_key(g.claims)),
    "expired": refused(token_with(exp=int(time.time()) - 60, iat=int(time.time()) - 3660)),
    "not yet valid (nbf)": refused(token_with(nbf=int(time.time()) + 600)),
    "issued in the future (iat)": refused(token_with(iat=int(time.time()) + 600)),
    "another user pool's issuer": refused(lambda g: "Bearer " + tokens.signed(
        {**g.claims, "iss": g.claims["iss"].rsplit("/", 1)[0] + "/us-east-1_another"})),
    "another app client's token": refused(lambda g: "Bearer " + g.other_client_token),
    "no sub": refused(token_with(sub=None)),
    "no expiry": refused(token_with(exp=None)),
}
OTHER_KEY = tokens.other_rsa_key()


@pytest.fixture(scope="module")
def given(pipeline: LocalPipeline) -> Iterator[Given]:
    s3 = pipeline.client("s3")
    used = signed_in(pipeline).upload("used.txt", b"already a job's input")
    job_id = signed_in(pipeline).create_job(used, "first")["id"]
    owner = {"owner": owner_of(signed_in(pipeline))}
    oversize = signed_in(pipeline).upload("big.bin", b"x")
    # moto does not enforce the presigned POST's size range: replace the object as a tampered client could
    s3.put_object(Bucket=pipeline.stack.bucket, Key=oversize, Body=b"x" * (MAX_BYTES + 1), Metadata=owner)
    empty = signed_in(pipeline).upload("empty.txt", b"x")
    s3.put_object(Bucket=pipeline.stack.bucket, Key=empty, Body=b"", Metadata=owner)
    user = signed_in(pipeline)
    assert user.token is not None
    other = new_user(pipeline, "other")
    other_job = other.create_job(other.upload("theirs.txt", b"theirs"), "not yours")["id"]
    other.create_job(other.upload("theirs2.txt", b"theirs"), "not yours either")
    succeeded = ended(pipeline, user, "SUCCEEDED")
    input_gone = ended(pipeline, user, "FAILED")
    s3.delete_object(Bucket=pipeline.stack.bucket, Key=f"inputs/{input_gone}/job.txt")
    oversize_failed = ended(pipeline, user, "FAILED")  # its file as a higher maxFileMb let it be uploaded
    s3.put_object(Bucket=pipeline.stack.bucket, Key=f"inputs/{oversize_failed}/job.txt", Body=b"x" * (MAX_BYTES + 1),
                  Metadata=owner)
    vm_alive = ended(pipeline, user, "CANCELLED")
    assert capacity.acquire(pipeline.client("dynamodb"), pipeline.stack.table, vm_alive,
                            SETTINGS.max_concurrent_vms) is not None
    full = new_user(pipeline, "full")
    assert full.token is not None
    full_failed = ended(pipeline, full, "FAILED")
    for i in range(SETTINGS.max_active_jobs_per_user - 1):
        full.submit(f"f{i}.txt", b"x", "fills the quota")
    yield Given(fresh_key=user.upload("fresh.txt", b"fresh"), used_key=used, job_id=job_id,
                oversize_key=oversize, empty_key=empty, token=user.token,
                claims=jwt.decode(user.token, options={"verify_signature": False}),
                other_client_token=token_of_another_client(pipeline, user),
                other_job_id=other_job, other_key=other.upload("unused.txt", b"theirs"),
                other_cursor=other.get("/api/jobs?limit=1").json()["next"],
                succeeded_id=succeeded, input_gone_id=input_gone, oversize_failed_id=oversize_failed,
                vm_alive_id=vm_alive, full_token=full.token, full_failed_id=full_failed)


def ended(pipeline: LocalPipeline, user: ApiClient, status: str) -> str:
    """A job of `user` that ended `status` (set in the table, as no VM runs here); still counted, as until the
    launcher reads its final record."""
    job_id = str(user.submit("job.txt", b"a job", "ends")["id"])
    pipeline.client("dynamodb").update_item(
        TableName=pipeline.stack.table, Key={"id": {"S": job_id}}, UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": status}})
    return job_id


def token_of_another_client(pipeline: LocalPipeline, user: ApiClient) -> str:
    """The same user signed in through a second app client of the same pool: genuine, but not our audience."""
    cognito = pipeline.client("cognito-idp")
    client_id = cognito.create_user_pool_client(
        UserPoolId=pipeline.stack.user_pool_id, ClientName="another-app", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    email, password = CREDENTIALS[id(user)]
    result = cognito.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                                   AuthParameters={"USERNAME": email, "PASSWORD": password})
    return str(result["AuthenticationResult"]["AccessToken"])


def send(pipeline: LocalPipeline, given: Given, bad: Bad) -> requests.Response:
    path = bad.path
    for name in ("job_id", "other_job_id", "other_cursor", "succeeded_id", "input_gone_id", "oversize_failed_id",
                 "vm_alive_id", "full_failed_id"):
        path = path.replace("{" + name + "}", getattr(given, name))
    authorization = bad.authorization(given) if bad.authorization else f"Bearer {given.token}"
    headers = {**({"authorization": authorization} if authorization is not None else {}), **bad.headers}
    data = bad.raw
    if data is None and bad.body is not None:
        data = json.dumps(bad.body(given)).encode("utf-8")
    if data is not None:
        headers.setdefault("content-type", "application/json")
    return requests.request(bad.method, pipeline.url + path, data=data, headers=headers, timeout=30)


@pytest.mark.parametrize("bad", AUTH_CASES.values(), ids=AUTH_CASES.keys())
def test_a_request_without_a_valid_token_is_refused_before_any_handler(
    pipeline: LocalPipeline, given: Given, bad: Bad
) -> None:
    """What API Gateway's JWT authorizer answers; the handler never runs, so nothing is written."""
    before = Snapshot.of(pipeline)
    response = send(pipeline, given, bad)
    assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})
    assert schema_validator(component("Unauthorized")).is_valid(response.json())
    assert Snapshot.of(pipeline) == before, "a refused request changed the table or the bucket"


def test_the_valid_token_the_forgeries_start_from_is_accepted(pipeline: LocalPipeline, given: Given) -> None:
    """Each forged token above differs from an accepted one in the one way its case names; so does the header."""
    for authorization in (f"Bearer {given.token}", given.token, "Bearer " + tokens.signed(given.claims)):
        listed = requests.get(f"{pipeline.url}/api/jobs", headers={"authorization": authorization}, timeout=10)
        assert listed.status_code == 200, (authorization[:20], listed.text)


@pytest.mark.parametrize("bad", CASES.values(), ids=CASES.keys())
def test_bad_input_is_refused_and_nothing_is_written(pipeline: LocalPipeline, given: Given, bad: Bad) -> None:
    before = Snapshot.of(pipeline)
    response = send(pipeline, given, bad)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert (response.status_code, body.get("error", {}).get("code")) == (bad.status, bad.code), body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    route = route_key(bad.method, bad.path)
    if route is not None and bad.status != 405:
        check_response(route, response.status_code, body)
    else:
        assert schema_validator(component("Error")).is_valid(body), body
    assert Snapshot.of(pipeline) == before, "a refused request changed the table or the bucket"


def route_key(method: str, path: str) -> str | None:
    """The route of the route table a request falls on, if any."""
    path = path.split("?", 1)[0]
    for route in ROUTES:
        if route.method == method and re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", route.path), path):
            return route.key
    return None


def test_local_mode_serves_the_openapi_document(pipeline: LocalPipeline) -> None:
    served = requests.get(f"{pipeline.url}/api/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/json")
    assert served.json() == document()
