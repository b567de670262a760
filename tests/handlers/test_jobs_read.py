"""`GET /api/jobs/{id}`, `GET /api/jobs` and `GET /api/health` through `handler(event, None)`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from handlers import jobmodel, jobs
from handlers.config import ApiConfig
from handlers.jobmodel import LIST_KEY_ATTR, Status, new_id
from tests.handlers.conftest import Reply, Stack, api_event, call, factory_s3_in, upload_key

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def get_job(job_id: str) -> Reply:
    return call(jobs.handler, api_event("GET /api/jobs/{id}", path_parameters={"id": job_id}))


def list_jobs() -> Reply:
    return call(jobs.handler, api_event("GET /api/jobs"))


def stamp(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def saved_job(stack: Stack, status: Status, *, created: int = 0, **attrs: str) -> str:
    """Put a job item as the handlers and worker would have left it; return its id."""
    return stack.save_job(status, created_at=stamp(created), updated_at=stamp(created), **attrs)


@pytest.fixture
def ticking_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each job created through the API gets a later `created_at` (real ones may share a millisecond)."""
    ticks = iter(range(10_000))
    monkeypatch.setattr(jobmodel, "utc_now", lambda: stamp(next(ticks)))
    yield


def test_created_job_reads_back_as_created(stack: Stack) -> None:
    key = stack.put_input(upload_key())
    created = call(jobs.handler, api_event("POST /api/jobs", {"input_text": "hi", "key": key}))
    reply = get_job(created.body["id"])
    assert reply.status == 200
    assert reply.body == created.body
    assert reply.headers["cache-control"] == "no-store", "status must not be cached by CloudFront or the browser"


def test_unknown_id_is_404(stack: Stack) -> None:
    saved_job(stack, Status.PENDING)
    reply = get_job(new_id())
    assert (reply.status, reply.error_code) == (404, "job_not_found")


@pytest.mark.parametrize(
    "job_id", ["abc", "a" * 22, "a" * 20, "a" * 20 + "!", "a" * 20 + "/", "../../etc/passwd", "", " " * 21, "é" * 21]
)
def test_malformed_id_is_404(stack: Stack, job_id: str) -> None:
    """A malformed id is answered 404 without reaching DynamoDB (which would 400 on an empty key: a 500 here)."""
    reply = get_job(job_id)
    assert (reply.status, reply.error_code) == (404, "job_not_found")


def test_missing_path_parameter_is_404(stack: Stack) -> None:
    reply = call(jobs.handler, api_event("GET /api/jobs/{id}"))
    assert (reply.status, reply.error_code) == (404, "job_not_found")


def test_internal_attributes_are_not_exposed(stack: Stack) -> None:
    job_id = saved_job(stack, Status.RUNNING, instance_id="i-0123456789abcdef0", started_at=stamp(5))
    reply = get_job(job_id)
    assert LIST_KEY_ATTR not in reply.body
    assert reply.body["instance_id"] == "i-0123456789abcdef0"
    assert reply.body["started_at"] == stamp(5)


def test_failed_job_shows_its_reason(stack: Stack) -> None:
    job_id = saved_job(stack, Status.FAILED, error="The input file was deleted before the VM read it.")
    reply = get_job(job_id)
    assert reply.body["status"] == "FAILED"
    assert reply.body["error"] == "The input file was deleted before the VM read it."
    assert "output_url" not in reply.body


def test_succeeded_job_has_an_output_url_that_downloads_the_output(stack: Stack) -> None:
    job_id = saved_job(stack, Status.SUCCEEDED)
    output_key = jobmodel.output_key(job_id, "inputs/x/a.txt")
    stack.client("s3").put_object(Bucket=stack.bucket, Key=output_key, Body=b"hello : hi")
    stack.client("dynamodb").update_item(
        TableName=stack.table, Key={"id": {"S": job_id}}, UpdateExpression="SET output_file_path = :p",
        ExpressionAttributeValues={":p": {"S": f"{stack.bucket}/{output_key}"}},
    )
    reply = get_job(job_id)
    assert reply.status == 200
    url = reply.body["output_url"]
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path.endswith(output_key)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"], "SigV2 links fail on buckets made after June 2020"
    assert query["X-Amz-Expires"] == [str(ApiConfig.from_env().download_expiry_seconds)]
    download = requests.get(url, timeout=10)
    assert download.status_code == 200
    assert download.content == b"hello : hi"


def test_output_url_uses_the_regional_host(stack: Stack) -> None:
    """The download link must not go through the global host, which redirects for a day after bucket creation."""
    job_id = saved_job(stack, Status.SUCCEEDED, output_file_path=f"{stack.bucket}/outputs/x/a.out.txt")
    s3 = factory_s3_in("eu-west-1")
    url = jobs.get_job(stack.client("dynamodb"), s3, ApiConfig.from_env(), job_id)["output_url"]
    assert url.startswith(f"https://{stack.bucket}.s3.eu-west-1.amazonaws.com/outputs/x/a.out.txt?")


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.SUCCEEDED])
def test_output_url_only_when_succeeded(stack: Stack, status: Status) -> None:
    """A job that is not SUCCEEDED gets no link, even if an output path was recorded (e.g. a late FAILED)."""
    job_id = saved_job(stack, status, output_file_path=f"{stack.bucket}/outputs/x/a.out.txt")
    reply = get_job(job_id)
    assert reply.status == 200
    assert "output_url" not in reply.body


def test_succeeded_without_output_path_has_no_url(stack: Stack) -> None:
    reply = get_job(saved_job(stack, Status.SUCCEEDED))
    assert reply.status == 200
    assert "output_url" not in reply.body


def test_empty_list(stack: Stack) -> None:
    reply = list_jobs()
    assert (reply.status, reply.body) == (200, {"jobs": []})


def test_jobs_created_through_the_api_are_listed_newest_first(stack: Stack, ticking_clock: None) -> None:
    """Guards the list key: a job saved without it would be missing from the index and so from the list."""
    ids = []
    for name in ("a.txt", "b.txt", "c.txt"):
        key = stack.put_input(upload_key(name))
        ids.append(call(jobs.handler, api_event("POST /api/jobs", {"input_text": name, "key": key})).body["id"])
    reply = list_jobs()
    assert reply.status == 200
    assert [job["id"] for job in reply.body["jobs"]] == ids[::-1]
    assert all(LIST_KEY_ATTR not in job for job in reply.body["jobs"])


def test_list_is_bounded_to_the_newest_page(stack: Stack) -> None:
    total = jobs.LIST_LIMIT + 7
    created = {saved_job(stack, Status.PENDING, created=i): i for i in range(total)}
    listed = list_jobs().body["jobs"]
    assert len(listed) == jobs.LIST_LIMIT
    assert [created[job["id"]] for job in listed] == list(range(total - 1, total - 1 - jobs.LIST_LIMIT, -1))


def test_health(stack: Stack) -> None:
    reply = call(jobs.handler, api_event("GET /api/health"))
    assert (reply.status, reply.body) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    "route", ["DELETE /api/jobs/{id}", "PUT /api/jobs", "POST /api/uploads", "GET /api/unknown", "$default"]
)
def test_routes_not_served_are_404(stack: Stack, route: str) -> None:
    event = api_event("GET /api/x")
    event["routeKey"] = route
    reply = call(jobs.handler, event)
    assert (reply.status, reply.error_code) == (404, "not_found")
