"""local/smoke.py without a stack: what it refuses before starting, and that each failure it meets is one sentence
with exit status 1 (tests/local/test_smoke.py runs it through a local stack)."""

from __future__ import annotations

import io
import socket
from typing import Any

import pytest
import requests

from local import smoke
from local.client import ApiClient


def run_main(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = smoke.main(list(argv), env=env, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("argv", "env", "expected"), [
    ((), {"SMOKE_PASSWORD": "x"}, "SMOKE_URL is not set"),
    (("--url", "https://site.example"), {"SMOKE_PASSWORD": "x"}, "SMOKE_EMAIL is not set"),
    (("--url", "https://site.example", "--email", "a@example.org"), {}, "SMOKE_PASSWORD is not set"),
    (("--url", "ftp://site.example", "--email", "a@example.org"), {"SMOKE_PASSWORD": "x"}, "https://"),
])
def test_a_run_that_cannot_start_says_why(argv: tuple[str, ...], env: dict[str, str], expected: str) -> None:
    """Regression: a missing setting ending in a traceback (or a password taken from the command line)."""
    code, _, err = run_main(*argv, env=env)
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith("smoke test not started: ") and expected in line and line.endswith("."), line


def test_the_settings_come_from_the_environment_as_make_passes_them() -> None:
    """`make smoke SMOKE_URL=... SMOKE_EMAIL=...` hands both to the script as environment variables."""
    args = smoke.parse_args([], {"SMOKE_URL": "https://site.example", "SMOKE_EMAIL": "a@example.org",
                                 "SMOKE_TIMEOUT": "30"})
    assert (args.url, args.email, args.timeout) == ("https://site.example", "a@example.org", 30.0)


def test_an_unreachable_site_is_one_sentence() -> None:
    """Regression: a connection error printed as a traceback (or as urllib3's paragraph)."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    code, _, err = run_main("--url", f"http://127.0.0.1:{port}", "--email", "a@example.org",
                            env={"SMOKE_PASSWORD": "x"})
    assert code == 1
    assert err == f"smoke test failed: Could not connect to http://127.0.0.1:{port}.\n"


class FailingJobs(ApiClient):
    """A client whose job ends FAILED, and which records what is cancelled."""

    def __init__(self) -> None:
        super().__init__("https://site.example", "token")
        self.cancelled: list[str] = []

    def upload(self, filename: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        return f"inputs/u/{filename}"

    def create_job(self, key: str, text: str) -> dict[str, Any]:
        return {"id": "j" * 21, "status": "PENDING"}

    def job(self, job_id: str) -> dict[str, Any]:
        return {"id": job_id, "status": "FAILED", "error": "The worker could not read its input."}

    def cancel(self, job_id: str) -> requests.Response:
        self.cancelled.append(job_id)
        return requests.Response()


def test_a_job_that_fails_is_one_sentence_naming_the_job_and_its_reason() -> None:
    """Regression: a smoke test that reports a FAILED job as a pass, or without the stack's reason; and one that
    leaves its job behind when it stops."""
    client = FailingJobs()
    run = smoke.Run(client, io.StringIO(), timeout=5)
    with pytest.raises(smoke.SmokeError, match=f"Job {'j' * 21} ended FAILED: The worker could not read its input"):
        smoke.smoke(run)
    smoke.leave_nothing_running(run)
    assert client.cancelled == ["j" * 21]
