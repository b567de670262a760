"""`make smoke SMOKE_URL=https://<site> SMOKE_EMAIL=<user>` (password in `SMOKE_PASSWORD`): one real job through a
running stack, as a user does it, timed phase by phase.

Signs in as the page does (`local.client`: Cognito's `InitiateAuth` with `USER_PASSWORD_AUTH`, against the pool,
client and endpoint in the site's `/config.json`); uploads a small file through the presigned POST; creates a job
and follows it to SUCCEEDED; downloads the output and compares it byte for byte with what the worker must write,
and checks the download is an attachment; creates a second job and cancels it; deletes both. Any failure ends the
run with one sentence on stderr and exit status 1 (2 for a wrong command line), never a traceback. The deploy
workflow runs it after each `pulumi up` of dev; `tests/local/test_smoke.py` runs it against a local stack.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

import requests
from botocore.exceptions import BotoCoreError, ClientError

from handlers.jobmodel import FINAL_STATES, new_id
from local.client import ApiClient, SubmitError

PASSWORD_VARIABLE = "SMOKE_PASSWORD"
DEFAULT_TIMEOUT_SECONDS = 900.0
"""How long a job may take to succeed: on AWS a VM boots and installs boto3 first (the default `jobTimeoutMinutes`,
15, after which the stack itself fails the job)."""
POLL_SECONDS = 1.0
TEXT = "smoke"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class SmokeError(Exception):
    """A failed smoke test, as the one sentence that says what failed."""


@dataclass
class Run:
    """One smoke run's state: the client, where progress goes, and the jobs made so far (deleted at the end)."""

    client: ApiClient
    out: TextIO
    timeout: float
    jobs: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def phase(self, name: str) -> AbstractContextManager[None]:
        return timed(name, self.out)


@contextmanager
def timed(name: str, out: TextIO) -> Iterator[None]:
    """Time one phase and print `<name> <seconds> s` once it is done."""
    began = time.monotonic()
    yield
    print(f"{name:<10} {time.monotonic() - began:7.1f} s", file=out, flush=True)


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def sign_in(url: str, email: str, password: str, timeout: float, out: TextIO) -> Run:
    """A signed-in run; a refused sign-in (a wrong password: Cognito's NotAuthorizedException) is a sentence."""
    try:
        client = ApiClient.signed_in(url, email, password)
    except ClientError as error:
        details = error.response.get("Error", {})
        raise SmokeError(f"Signing in as {email} failed: {details.get('Message') or details.get('Code')}") from None
    except KeyError:
        raise SmokeError(f"Cognito asked {email} to answer a challenge (such as a new password) instead of signing "
                         f"in: give the user a permanent password (admin-set-user-password --permanent)") from None
    return Run(client, out, timeout)


def upload_and_create(run: Run, name: str, data: bytes) -> dict[str, Any]:
    job = run.client.create_job(run.client.upload(name, data, "text/plain"), TEXT)
    run.jobs.append(str(job["id"]))
    return job


def follow(run: Run, job_id: str) -> dict[str, Any]:
    """Poll the job until it is final (printing each status it reaches), or fail after the run's timeout."""
    began, seen = time.monotonic(), ""
    while True:
        job = run.client.job(job_id)
        if job.get("status") != seen:
            seen = str(job.get("status"))
            run.say(f"  job {job_id}: {seen} after {time.monotonic() - began:.1f} s")
        if seen in FINAL_STATES:
            return job
        if time.monotonic() - began > run.timeout:
            raise SmokeError(f"Job {job_id} was still {seen} after {run.timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def check_download(run: Run, job: dict[str, Any], expected: bytes) -> None:
    """The output, byte for byte, from the presigned GET the API hands out, served as an attachment."""
    url = job.get("output_url")
    if not url:
        raise SmokeError(f"Job {job['id']} SUCCEEDED but the API gave no output_url")
    served = requests.get(str(url), timeout=30)
    if served.status_code != 200:
        raise SmokeError(f"Downloading job {job['id']}'s output failed: HTTP {served.status_code}")
    if served.content != expected:
        raise SmokeError(f"Job {job['id']}'s output is {served.content[:80]!r}, not {expected[:80]!r}")
    disposition = served.headers.get("Content-Disposition", "")
    if not disposition.startswith("attachment"):
        raise SmokeError(f"Job {job['id']}'s output is served with Content-Disposition {disposition!r}, "
                         f"not as an attachment")
    run.say(f"  output: {len(served.content)} bytes as expected, {disposition.split(';')[0]}")


def cancel(run: Run, job_id: str) -> None:
    answer = run.client.cancel(job_id)
    status = answer.json().get("status") if answer.status_code == 200 else None
    if status != "CANCELLED":
        raise SmokeError(f"Cancelling job {job_id} answered HTTP {answer.status_code}: {one_line(answer.text)[:200]}")
    run.say(f"  job {job_id}: CANCELLED")


def delete(run: Run, job_id: str) -> None:
    """DELETE until 204: a cancelled job's VM may still be shutting down (409 job_vm_running, "try again in a
    minute"), which is the only refusal waited out; then the job must be gone (404)."""
    deadline = time.monotonic() + run.timeout
    while True:
        answer = run.client.delete_job(job_id)
        if answer.status_code == 204:
            break
        code = answer.json().get("error", {}).get("code") if answer.status_code == 409 else None
        if code != "job_vm_running" or time.monotonic() > deadline:
            raise SmokeError(f"Deleting job {job_id} answered HTTP {answer.status_code}: "
                             f"{one_line(answer.text)[:200]}")
        time.sleep(POLL_SECONDS * 2)
    gone = run.client.get(f"/api/jobs/{job_id}")
    if gone.status_code != 404:
        raise SmokeError(f"Job {job_id} was deleted (204) but still answers HTTP {gone.status_code}")
    run.say(f"  job {job_id}: deleted")


def smoke(run: Run) -> None:
    """The phases after signing in; each prints its time."""
    data = f"filepipe smoke test {new_id()}\n".encode()
    with run.phase("upload"):
        job = upload_and_create(run, "smoke.txt", data)
    with run.phase("job"):
        done = follow(run, str(job["id"]))
        if done["status"] != "SUCCEEDED":
            raise SmokeError(f"Job {job['id']} ended {done['status']}: {done.get('error') or 'no reason given'}")
    with run.phase("download"):
        check_download(run, done, data + b" : " + TEXT.encode())
    with run.phase("cancel"):
        second = upload_and_create(run, "cancel-me.txt", data)
        cancel(run, str(second["id"]))
    with run.phase("delete"):
        for job_id in list(run.jobs):
            delete(run, job_id)
            run.jobs.remove(job_id)


def run_smoke(url: str, email: str, password: str, *, timeout: float, out: TextIO) -> None:
    """The whole smoke test; raises SmokeError (one sentence) on the first failure."""
    began = time.monotonic()
    print(f"smoke test of {url} as {email}", file=out, flush=True)
    try:
        with timed("sign in", out):
            run = sign_in(url, email, password, timeout, out)
        try:
            smoke(run)
        finally:
            leave_nothing_running(run)
    except SubmitError as error:
        raise SmokeError(one_line(str(error))[:300]) from None
    except requests.ConnectionError:
        raise SmokeError(f"Could not connect to {url}") from None
    except requests.Timeout:
        raise SmokeError(f"{url} did not answer in time") from None
    except BotoCoreError as error:
        raise SmokeError(f"Could not reach Cognito: {one_line(str(error))[:200]}") from None
    except (requests.RequestException, ValueError) as error:
        raise SmokeError(f"Talking to {url} failed ({type(error).__name__}: {one_line(str(error))[:160]})") from None
    print(f"smoke test passed in {time.monotonic() - began:.1f} s", file=out, flush=True)


def leave_nothing_running(run: Run) -> None:
    """After a failure, cancel the jobs still left (best effort: the failure is what gets reported)."""
    for job_id in run.jobs:
        with suppress(requests.RequestException):
            run.client.cancel(job_id)


def sentence(error: SmokeError) -> str:
    """The error as one sentence: one line, one full stop."""
    return one_line(str(error)).rstrip(".") + "."


def checked_url(url: str | None) -> str:
    if not url:
        raise SmokeError("SMOKE_URL is not set: give the site's address (make smoke SMOKE_URL=https://<site> ...)")
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
        raise SmokeError(f"SMOKE_URL must be the site's https:// address (the stack's siteUrl output), not {url!r}")
    return url.rstrip("/")


def parse_args(argv: Sequence[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=env.get("SMOKE_URL"), help="the site's address (default: $SMOKE_URL)")
    parser.add_argument("--email", default=env.get("SMOKE_EMAIL"),
                        help=f"a user of that stack (default: $SMOKE_EMAIL); the password comes from "
                             f"{PASSWORD_VARIABLE}")
    parser.add_argument("--timeout", type=float, default=float(env.get("SMOKE_TIMEOUT") or DEFAULT_TIMEOUT_SECONDS),
                        help="seconds a job may take to succeed, and a VM to shut down (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ,
         out: TextIO = sys.stdout, err: TextIO = sys.stderr,
         run: Callable[..., None] = run_smoke) -> int:
    args = parse_args(argv, env)
    try:
        url = checked_url(args.url)
        if not args.email:
            raise SmokeError("SMOKE_EMAIL is not set: give the email of a user of that stack")
        if not env.get(PASSWORD_VARIABLE):
            raise SmokeError(f"{PASSWORD_VARIABLE} is not set: export the password of {args.email} "
                             f"(it is never taken on the command line)")
    except SmokeError as error:
        print(f"smoke test not started: {sentence(error)}", file=err)
        return 2
    try:
        run(url, args.email, env[PASSWORD_VARIABLE], timeout=args.timeout, out=out)
    except SmokeError as error:
        print(f"smoke test failed: {sentence(error)}", file=err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
