"""The emulator's S3 refuses what S3 refuses (local/presigned.py), over HTTP: a presigned POST from the upload handler
with any signed field changed, a POST with no policy or past its expiry, a download link with its key or parameters
changed or past its expiry, and anonymous reads; the stack's own signed clients keep working.

Statuses, codes and messages as S3 answers them (sources in local/presigned.py)."""

from __future__ import annotations

import base64
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botocore.config import Config

from handlers import jobmodel
from handlers.config import ApiConfig
from handlers.jobmodel import UNCLAIMED_UPLOAD_TAG
from handlers.services import PRESIGNING
from handlers.upload import create_upload
from local.emulator import EndpointSession, MotoServer

BUCKET = "presigned-test-data"
WORKER_KEY = "worker/worker.py"
WORKER = b"print('the real worker')\n"
MAX_BYTES = 100
CONFIG = ApiConfig(bucket=BUCKET, table="unused", max_file_bytes=MAX_BYTES, max_text_length=100,
                   upload_expiry_seconds=600, download_expiry_seconds=600, max_active_jobs_per_user=5,
                   max_concurrent_vms=1)


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    emulator = MotoServer()
    emulator.start()
    try:
        client = EndpointSession(emulator.endpoint_url).client("s3", PRESIGNING)
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key=WORKER_KEY, Body=WORKER)
        yield client
    finally:
        emulator.stop()


def grant(s3: Any, owner: str = "alice", content_type: str = "text/plain") -> dict[str, Any]:
    """What POST /api/uploads answers the browser (the upload handler's own presigned POST)."""
    return create_upload(s3, CONFIG, {"filename": "notes.txt", "size": 5, "content_type": content_type}, owner)


def post(ticket: dict[str, Any], data: bytes = b"hello", **changes: str | None) -> requests.Response:
    """The browser's multipart POST of `ticket`, with fields changed (None: left out)."""
    fields = {**ticket["fields"], **changes}
    return requests.post(ticket["url"], data={k: v for k, v in fields.items() if v is not None},
                         files={"file": ("notes.txt", data, fields.get("Content-Type") or "text/plain")}, timeout=10)


def error(response: requests.Response) -> tuple[int, str, str]:
    root = ET.fromstring(response.content)
    return response.status_code, root.findtext("Code") or "", root.findtext("Message") or ""


def exists(s3: Any, key: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
    except s3.exceptions.ClientError:
        return False
    return True


def test_the_handlers_upload_is_stored_with_its_owner_and_type(s3: Any) -> None:
    ticket = grant(s3)
    assert post(ticket).status_code == 204
    stored = s3.get_object(Bucket=BUCKET, Key=ticket["key"])
    assert stored["Body"].read() == b"hello"
    assert (stored["Metadata"]["owner"], stored["ContentType"]) == ("alice", "text/plain")
    tags = s3.get_object_tagging(Bucket=BUCKET, Key=ticket["key"])["TagSet"]
    assert tags == [{"Key": UNCLAIMED_UPLOAD_TAG[0], "Value": UNCLAIMED_UPLOAD_TAG[1]}], "the lifecycle finds it"


def test_an_upload_without_its_unclaimed_tag_is_refused(s3: Any) -> None:
    """Dropping the tag would keep a file no job claims past the lifecycle's day."""
    ticket = grant(s3)
    assert error(post(ticket, tagging="<Tagging><TagSet></TagSet></Tagging>"))[:2] == (403, "AccessDenied")
    assert error(post(ticket, tagging=None))[:2] == (403, "AccessDenied")
    assert not exists(s3, ticket["key"])


@pytest.mark.parametrize("target", ["another user's upload", "outside inputs/", "the worker"])
def test_a_changed_key_is_refused_and_writes_nothing(s3: Any, target: str) -> None:
    bobs = grant(s3, owner="bob")
    assert post(bobs, b"bob's").status_code == 204
    key = {"another user's upload": bobs["key"], "outside inputs/": "elsewhere.txt", "the worker": WORKER_KEY}[target]
    ticket = grant(s3)
    status, code, message = error(post(ticket, b"evil!", key=key))
    assert (status, code) == (403, "AccessDenied")
    assert message == f'Invalid according to Policy: Policy Condition failed: ["eq", "$key", "{ticket["key"]}"]'
    assert s3.get_object(Bucket=BUCKET, Key=WORKER_KEY)["Body"].read() == WORKER
    assert s3.get_object(Bucket=BUCKET, Key=bobs["key"])["Body"].read() == b"bob's"
    assert not exists(s3, "elsewhere.txt") and not exists(s3, ticket["key"])


def test_a_spoofed_owner_is_refused(s3: Any) -> None:
    ticket = grant(s3)
    status, code, message = error(post(ticket, **{"x-amz-meta-owner": "bob"}))
    assert (status, code) == (403, "AccessDenied")
    assert message == 'Invalid according to Policy: Policy Condition failed: ["eq", "$x-amz-meta-owner", "alice"]'
    assert not exists(s3, ticket["key"])


def test_another_content_type_is_refused(s3: Any) -> None:
    ticket = grant(s3)
    status, code, message = error(post(ticket, **{"Content-Type": "text/html"}))
    assert (status, code) == (403, "AccessDenied")
    assert message == 'Invalid according to Policy: Policy Condition failed: ["eq", "$Content-Type", "text/plain"]'


def test_a_field_the_policy_does_not_name_is_refused(s3: Any) -> None:
    ticket = grant(s3)
    status, code, message = error(post(ticket, **{"x-amz-meta-admin": "true"}))
    assert (status, code, message) == (403, "AccessDenied",
                                       "Invalid according to Policy: Extra input fields: x-amz-meta-admin")


def test_files_outside_the_size_range_are_refused(s3: Any) -> None:
    too_large = post(grant(s3), b"x" * (MAX_BYTES + 1))
    assert error(too_large) == (400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    assert ET.fromstring(too_large.content).findtext("MaxSizeAllowed") == str(MAX_BYTES)
    assert error(post(grant(s3), b"")) == (400, "EntityTooSmall",
                                            "Your proposed upload is smaller than the minimum allowed size")


def test_a_post_without_policy_or_signature_is_refused(s3: Any) -> None:
    ticket = grant(s3)
    assert error(post(ticket, policy=None, **{"x-amz-signature": None}))[:2] == (403, "AccessDenied")
    status, code, message = error(post(ticket, **{"x-amz-signature": None}))
    assert (status, code) == (400, "InvalidArgument") and "X-Amz-Signature" in message
    assert not exists(s3, ticket["key"])


def test_a_changed_policy_fails_its_signature(s3: Any) -> None:
    ticket = grant(s3)
    policy = json.loads(base64.b64decode(ticket["fields"]["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if c != {"key": ticket["key"]}]
    forged = base64.b64encode(json.dumps(policy).encode()).decode()
    assert error(post(ticket, key=WORKER_KEY, policy=forged))[:2] == (403, "SignatureDoesNotMatch")
    assert s3.get_object(Bucket=BUCKET, Key=WORKER_KEY)["Body"].read() == WORKER


def test_a_post_past_its_expiry_is_refused(s3: Any) -> None:
    key = f"{jobmodel.INPUT_PREFIX}{jobmodel.new_id()}/late.txt"
    ticket = {**s3.generate_presigned_post(Bucket=BUCKET, Key=key, ExpiresIn=-1), "key": key}
    assert error(post(ticket)) == (403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    assert not exists(s3, key)


def download(s3: Any, key: str, expires: int = 600, **params: str) -> str:
    return str(s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key, **params},
                                         ExpiresIn=expires))


def test_a_download_link_works_as_signed_and_not_otherwise(s3: Any) -> None:
    url = download(s3, WORKER_KEY, ResponseContentDisposition="attachment")
    served = requests.get(url, timeout=10)
    assert (served.status_code, served.content) == (200, WORKER)
    assert served.headers["Content-Disposition"] == "attachment"

    ticket = grant(s3)
    assert post(ticket).status_code == 204
    other = download(s3, ticket["key"])
    changed_key = url.replace(WORKER_KEY, ticket["key"])
    assert error(requests.get(changed_key, timeout=10))[:2] == (403, "SignatureDoesNotMatch")
    added = requests.get(f"{other}&response-content-type=text%2Fhtml", timeout=10)
    assert error(added)[:2] == (403, "SignatureDoesNotMatch")
    unsigned = requests.get(url, headers={"x-amz-meta-x": "1"}, timeout=10)
    assert error(unsigned)[:2] == (403, "AccessDenied")


def test_a_download_link_past_its_expiry_is_refused(s3: Any) -> None:
    url = download(s3, WORKER_KEY, expires=1)
    time.sleep(2.1)
    assert error(requests.get(url, timeout=10)) == (403, "AccessDenied", "Request has expired")


def test_anonymous_reads_and_writes_are_refused(s3: Any) -> None:
    endpoint = s3.meta.endpoint_url
    assert error(requests.get(f"{endpoint}/{BUCKET}/{WORKER_KEY}", timeout=10))[:2] == (403, "AccessDenied")
    assert error(requests.put(f"{endpoint}/{BUCKET}/{WORKER_KEY}", data=b"x", timeout=10))[:2] == (403, "AccessDenied")
    assert error(requests.get(f"{endpoint}/{BUCKET}", timeout=10))[:2] == (403, "AccessDenied")
    assert s3.get_object(Bucket=BUCKET, Key=WORKER_KEY)["Body"].read() == WORKER


def test_a_key_the_emulator_does_not_know_is_refused(s3: Any) -> None:
    url = download(s3, WORKER_KEY).replace("X-Amz-Credential=local%2F", "X-Amz-Credential=someone%2F")
    assert error(requests.get(url, timeout=10))[:2] == (403, "InvalidAccessKeyId")


def test_the_stacks_signed_clients_still_work(s3: Any) -> None:
    """Header-signed calls (handlers, launcher, VMs): put, copy, tag, list, delete, multipart."""
    other = EndpointSession(s3.meta.endpoint_url).client("s3", Config(s3={"addressing_style": "path"}))
    other.put_object(Bucket=BUCKET, Key="outputs/x/a.txt", Body=b"a")
    other.copy_object(Bucket=BUCKET, Key="outputs/x/b.txt", CopySource={"Bucket": BUCKET, "Key": "outputs/x/a.txt"})
    assert {o["Key"] for o in other.list_objects_v2(Bucket=BUCKET, Prefix="outputs/x/")["Contents"]} == {
        "outputs/x/a.txt", "outputs/x/b.txt"}
    other.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "outputs/x/a.txt"}, {"Key": "outputs/x/b.txt"}]})
    assert "Contents" not in other.list_objects_v2(Bucket=BUCKET, Prefix="outputs/x/")


def test_a_refusal_to_a_browser_carries_the_buckets_cors_headers(s3: Any) -> None:
    """The page reads S3's `<Message>` from a refused upload: S3 adds the bucket's CORS headers to its answer to an
    allowed origin (none to another), so the emulator's refusals do too."""
    site = "http://site.example"
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": [site], "AllowedMethods": ["POST"], "AllowedHeaders": ["*"]}]})
    try:
        ticket = grant(s3)
        fields = {**ticket["fields"], "key": WORKER_KEY}
        refused = requests.post(ticket["url"], data=fields, files={"file": ("a.txt", b"evil", "text/plain")},
                                headers={"Origin": site}, timeout=10)
        assert error(refused)[:2] == (403, "AccessDenied")
        assert refused.headers["Access-Control-Allow-Origin"] == site
        elsewhere = requests.post(ticket["url"], data=fields, files={"file": ("a.txt", b"evil", "text/plain")},
                                  headers={"Origin": "http://evil.example"}, timeout=10)
        assert error(elsewhere)[:2] == (403, "AccessDenied")
        assert "Access-Control-Allow-Origin" not in elsewhere.headers
    finally:
        s3.delete_bucket_cors(Bucket=BUCKET)
