"""`make smoke` (local/smoke.py) against the local stack, run as the deploy workflow runs it against dev: a
separate process, the site's address and user on the command line, the password in the environment, no AWS
credentials. A passing run leaves no job and no file behind; a wrong password fails at once, in one sentence."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.app import LocalPipeline
from local.client import ApiClient
from stackspec.settings import StackSettings

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SETTINGS = StackSettings(max_file_mb=1, max_text_length=200, max_concurrent_vms=2)
PHASES = ("sign in", "upload", "job", "download", "cancel", "delete")


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(port=0, settings=SETTINGS, sweep_seconds=None) as running:
        yield running


def smoke(url: str, email: str, password: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "SMOKE_PASSWORD": password, "SMOKE_TIMEOUT": "120",
           "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": ""}
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "local.smoke", "--url", url, "--email", email], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    return result, time.monotonic() - began


def test_the_smoke_test_runs_a_job_through_the_stack_and_leaves_nothing(pipeline: LocalPipeline) -> None:
    """Regression: a smoke test that passes without a job succeeding, or that leaves its jobs and files in the
    stack after each deploy; its output names every phase with its time."""
    user = pipeline.create_user("smoke@example.com")
    result, _ = smoke(pipeline.url, user.email, user.password)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for phase in PHASES:
        assert re.search(rf"^{phase} +\d+\.\d s$", out, re.MULTILINE), (phase, out)
    assert re.search(r"job [\w-]{21}: SUCCEEDED after", out), out
    assert re.search(r"output: \d+ bytes as expected, attachment", out), out
    assert re.search(r"job [\w-]{21}: CANCELLED", out), out
    assert len(re.findall(r"job [\w-]{21}: deleted", out)) == 2, out
    assert out.rstrip().splitlines()[-1].startswith("smoke test passed in ")
    assert result.stderr == ""

    client = ApiClient.signed_in(pipeline.url, user.email, user.password)
    assert client.get("/api/jobs").json()["jobs"] == []
    listed = pipeline.client("s3").list_objects_v2(Bucket=pipeline.stack.bucket)
    assert [o["Key"] for o in listed.get("Contents", []) if o["Key"].startswith(("inputs/", "outputs/"))] == []


def test_a_wrong_password_fails_within_seconds_in_one_sentence(pipeline: LocalPipeline) -> None:
    """Regression: a wrong password (a rotated secret) ending in a traceback, or in a long wait, instead of a
    sentence saying that signing in failed."""
    user = pipeline.create_user("smoke-wrong@example.com")
    result, seconds = smoke(pipeline.url, user.email, user.password + "-wrong")
    assert result.returncode == 1
    assert seconds < 15, seconds
    assert "Traceback" not in result.stderr + result.stdout
    [line] = result.stderr.splitlines()
    assert line.startswith(f"smoke test failed: Signing in as {user.email} failed: ") and line.endswith("."), line
    assert "upload" not in result.stdout


def test_a_site_address_that_is_not_https_is_refused_before_anything_runs() -> None:
    """Regression: a smoke test sending the password towards a plain-HTTP address (anything but loopback)."""
    result, _ = smoke("http://filepipe.example.org", "someone@example.org", "secret")
    assert result.returncode == 2
    assert result.stderr.startswith("smoke test not started: SMOKE_URL must be the site's https:// address")
