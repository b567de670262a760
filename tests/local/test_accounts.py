"""Accounts end to end on the local stack, over HTTP with real tokens from the emulator's Cognito: each user sees
and downloads only their own jobs, the per-user limit holds under a burst, and every download is an attachment."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from components.settings import StackSettings
from local.app import LocalPipeline
from local.client import ApiClient, SubmitError
from tests.local.harness import new_user
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

SETTINGS = StackSettings(max_file_mb=1, max_text_length=200, max_concurrent_vms=2, max_active_jobs_per_user=5)
BURST = 10


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(port=0, settings=SETTINGS, sweep_seconds=None) as running:
        yield running


def test_two_users_each_see_and_download_only_their_own_jobs(pipeline: LocalPipeline) -> None:
    alice, bob = new_user(pipeline, "alice"), new_user(pipeline, "bob")
    alices = alice.wait_for_final(alice.submit("a.txt", b"alice's", "mine")["id"])
    bobs = bob.wait_for_final(bob.submit("b.txt", b"bob's", "mine")["id"])
    assert alices["status"] == bobs["status"] == "SUCCEEDED"

    assert [job["id"] for job in alice.get("/api/jobs").json()["jobs"]] == [alices["id"]]
    assert [job["id"] for job in bob.get("/api/jobs").json()["jobs"]] == [bobs["id"]]
    for intruder, job in ((alice, bobs), (bob, alices)):
        seen = intruder.get(f"/api/jobs/{job['id']}")
        assert (seen.status_code, seen.json()["error"]["code"]) == (404, "job_not_found")
    assert requests.get(alices["output_url"], timeout=10).content == b"alice's : mine"


def test_another_users_upload_key_is_not_found_and_writes_nothing(pipeline: LocalPipeline) -> None:
    alice, bob = new_user(pipeline, "alice"), new_user(pipeline, "bob")
    key = bob.upload("bobs.txt", b"bob's")
    taken = alice.post("/api/jobs", json={"input_text": "hi", "key": key})
    assert (taken.status_code, taken.json()["error"]["code"]) == (404, "upload_not_found")
    assert alice.get("/api/jobs").json()["jobs"] == []
    assert bob.create_job(key, "still mine")["status"] == "PENDING", "the owner can still use it"


def test_ten_simultaneous_submissions_by_one_user_create_exactly_the_limit(pipeline: LocalPipeline) -> None:
    """The count is a conditional write: ten requests at once cannot pass a limit of five."""
    carol = new_user(pipeline, "carol")
    keys = [carol.upload(f"burst-{i}.txt", b"burst") for i in range(BURST)]
    clients = [ApiClient(pipeline.url, carol.token) for _ in keys]

    def create(pair: tuple[ApiClient, str]) -> requests.Response:
        client, key = pair
        return client.post("/api/jobs", json={"input_text": "burst", "key": key})

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        answers = list(pool.map(create, zip(clients, keys, strict=True)))

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] * SETTINGS.max_active_jobs_per_user + [429] * (BURST - SETTINGS.max_active_jobs_per_user)
    refused = [answer for answer in answers if answer.status_code == 429]
    assert all(a.json()["error"]["code"] == "too_many_jobs" and int(a.headers["Retry-After"]) > 0 for a in refused)
    assert len(carol.get("/api/jobs").json()["jobs"]) == SETTINGS.max_active_jobs_per_user

    created = [answer.json()["id"] for answer in answers if answer.status_code == 201]
    for job_id in created:
        assert carol.wait_for_final(job_id, timeout=120)["status"] == "SUCCEEDED"
    again = retry_until_accepted(carol, carol.upload("later.txt", b"x"))
    assert again["status"] == "PENDING", "finished jobs give their places back"


def retry_until_accepted(client: ApiClient, key: str, seconds: float = 20) -> dict[str, object]:
    """The places come back as the finished jobs' stream records reach the launcher (within a second or two)."""

    def accepted() -> dict[str, object] | None:
        try:
            return client.create_job(key, "after the burst")
        except SubmitError as refused:
            if refused.status != 429:
                raise
            return None

    return wait_for(accepted, seconds, "a place to come back (429 until then)", interval=0.2)


def test_an_uploaded_page_downloads_as_an_attachment_that_cannot_run(pipeline: LocalPipeline) -> None:
    """Tried as a user would: `e.html` with a script, then its download link."""
    dave = new_user(pipeline, "dave")
    job = dave.wait_for_final(dave.submit("e.html", b"<script>alert(document.domain)</script>", "x",
                                          content_type="text/html")["id"])
    assert job["status"] == "SUCCEEDED", job
    served = requests.get(job["output_url"], timeout=10)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "application/octet-stream"
    assert served.headers["Content-Disposition"].startswith('attachment; filename="e.out.html"')
