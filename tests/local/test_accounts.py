"""Accounts end to end on the local stack, over HTTP with real tokens from the emulator's Cognito: each user sees
and downloads only their own jobs, the per-user limit holds under a burst, and every download is an attachment."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from handlers import jobmodel
from handlers.jobmodel import UNCLAIMED_UPLOAD_TAG
from local.app import LocalPipeline
from local.client import ApiClient, SubmitError
from stackspec.settings import StackSettings
from tests.local.harness import new_user
from tests.records import wait_for_final
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

SETTINGS = StackSettings(max_file_mb=1, max_text_length=200, max_concurrent_vms=2, max_active_jobs_per_user=5,
                         upload_grants_per_hour=12, allowed_email_domains=("example.com",))
BURST = 10
GRANT_BURST = 20


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(port=0, settings=SETTINGS, sweep_seconds=None) as running:
        yield running


def test_two_users_each_see_and_download_only_their_own_jobs(pipeline: LocalPipeline) -> None:
    alice, bob = new_user(pipeline, "alice"), new_user(pipeline, "bob")
    alices = wait_for_final(alice, alice.submit("a.txt", b"alice's", "mine")["id"])
    bobs = wait_for_final(bob, bob.submit("b.txt", b"bob's", "mine")["id"])
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
        assert wait_for_final(carol, job_id, timeout=120)["status"] == "SUCCEEDED"
    again = retry_until_accepted(carol, carol.upload("later.txt", b"x"))
    assert again["status"] == "PENDING", "finished jobs give their places back"


def test_twenty_simultaneous_upload_requests_by_one_user_get_exactly_the_hourly_allowance(
        pipeline: LocalPipeline) -> None:
    """Regression: one user got 60 upload grants in 0.2 s. The grant count is a conditional write, so a burst cannot
    pass the allowance; the rest are 429 with Retry-After, as the job quota answers."""
    erin = new_user(pipeline, "erin")
    clients = [ApiClient(pipeline.url, erin.token) for _ in range(GRANT_BURST)]

    def ask(client: ApiClient) -> requests.Response:
        return client.post("/api/uploads", json={"filename": "burst.txt", "size": 5})

    with ThreadPoolExecutor(max_workers=GRANT_BURST) as pool:
        answers = list(pool.map(ask, clients))
    allowance = SETTINGS.upload_grants_per_hour
    assert sorted(a.status_code for a in answers) == [201] * allowance + [429] * (GRANT_BURST - allowance)
    refused = [a for a in answers if a.status_code == 429]
    assert all(a.json()["error"]["code"] == "too_many_uploads" and 0 < int(a.headers["Retry-After"]) <= 3600
               for a in refused)


def test_a_user_cannot_mark_an_email_verified_or_write_what_the_client_may_not(pipeline: LocalPipeline) -> None:
    """Regression (email squatting): a signed-in user called UpdateUserAttributes with someone else's address and
    `email_verified=true`. The app client may write only `email`; Cognito (and the emulator) refuse the rest."""
    frank = new_user(pipeline, "frank")
    cognito = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=pipeline.endpoint_url,
                           config=Config(signature_version=UNSIGNED))
    with pytest.raises(ClientError) as refused:
        cognito.update_user_attributes(AccessToken=frank.token, UserAttributes=[
            {"Name": "email", "Value": "victim@example.com"}, {"Name": "email_verified", "Value": "true"}])
    assert refused.value.response["Error"]["Code"] == "NotAuthorizedException"
    assert "unauthorized attribute" in refused.value.response["Error"]["Message"]
    attributes = {a["Name"]: a["Value"] for a in cognito.get_user(AccessToken=frank.token)["UserAttributes"]}
    assert attributes["email"].startswith("frank-"), "nothing was written"


def test_an_upload_is_tagged_unclaimed_until_its_job_is_queued(pipeline: LocalPipeline) -> None:
    """The bucket's lifecycle removes uploads still tagged after a day (files that never became a job); the tag
    comes from the presigned POST and goes when the launcher queues the job."""
    gina = new_user(pipeline, "gina")
    key = gina.upload("keep.txt", b"keep me")
    s3, bucket = pipeline.client("s3"), pipeline.stack.bucket
    tag_key, tag_value = UNCLAIMED_UPLOAD_TAG
    assert s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] == [{"Key": tag_key, "Value": tag_value}]
    job = gina.create_job(key, "claimed")
    wait_for(lambda: s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] == [], 30,
             "the launcher to claim the upload (its tag removed)")
    assert wait_for_final(gina, job["id"])["status"] == "SUCCEEDED"


def test_self_sign_up_is_open_only_to_the_allowed_domains(pipeline: LocalPipeline) -> None:
    """`allowedEmailDomains`: the emulator runs the pre sign-up trigger's function on the page's SignUp, and refuses
    as Cognito does; an allowed address signs up; an operator's invitation is not checked."""
    cognito = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=pipeline.endpoint_url,
                           config=Config(signature_version=UNSIGNED))
    client_id, password = pipeline.stack.client_id, "Correct-horse-1"
    with pytest.raises(ClientError) as refused:
        cognito.sign_up(ClientId=client_id, Username="eve@evil.example", Password=password,
                        UserAttributes=[{"Name": "email", "Value": "eve@evil.example"}])
    error = refused.value.response["Error"]
    assert error["Code"] == "UserLambdaValidationException"
    assert error["Message"] == "PreSignUp failed with error Sign-up is open to addresses at example.com only."
    allowed = f"ivy-{jobmodel.new_id().lower()}@example.com"
    assert cognito.sign_up(ClientId=client_id, Username=allowed, Password=password,
                           UserAttributes=[{"Name": "email", "Value": allowed}])["UserSub"]
    assert pipeline.create_user(f"guest-{jobmodel.new_id().lower()}@elsewhere.example").email


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
    job = wait_for_final(dave, dave.submit("e.html", b"<script>alert(document.domain)</script>", "x",
                                          content_type="text/html")["id"])
    assert job["status"] == "SUCCEEDED", job
    served = requests.get(job["output_url"], timeout=10)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "application/octet-stream"
    assert served.headers["Content-Disposition"].startswith('attachment; filename="e.out.html"')
