"""VM start without boto3: the user-data installs it with dnf and runs the worker; a package repository that does
not answer ends the job FAILED with a reason at once (not at the sweeper's give-up minutes later).

The VMs run the real rendered user-data; only the OS-level shims change: `python3` without site-packages (an AMI
without boto3), and a `dnf` that either "installs" boto3 (puts the usual `python3` shim back) or fails as dnf does
when it cannot download repository metadata. Each `dnf` call is logged to the console with its arguments.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.app import LocalPipeline
from local.vmhost import Ending
from tests.faults.harness import assert_readable_sentence, wait_for_status
from tests.local.harness import finished_run, signed_in

pytestmark = pytest.mark.e2e

FAILING_DNF = """#!/bin/sh
echo "dnf $*" >&2
echo "Error: Failed to download metadata for repo 'amazonlinux': Cannot download repomd.xml" >&2
exit 1
"""
INSTALLING_DNF = """#!/bin/sh
echo "dnf $*" >&2
cp "$(dirname "$0")/python3.with-boto3" "$(dirname "$0")/python3"
"""


def install_shims(shims: Path, dnf: str) -> None:
    """`python3` without boto3 (no site-packages), the given `dnf`, and the usual `python3` kept aside."""
    (shims / "python3.with-boto3").write_bytes((shims / "python3").read_bytes())
    (shims / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n', encoding="utf-8")
    (shims / "dnf").write_text(dnf, encoding="utf-8")
    for name in ("python3", "python3.with-boto3", "dnf"):
        (shims / name).chmod(0o755)


@pytest.fixture
def shims(pipeline: LocalPipeline) -> Iterator[Path]:
    assert pipeline.vmhost is not None
    directory = pipeline.vmhost.shims
    saved = {name: (directory / name).read_bytes() for name in ("python3", "dnf")}
    yield directory
    for name, content in saved.items():
        (directory / name).write_bytes(content)
    (directory / "python3.with-boto3").unlink(missing_ok=True)


def test_without_boto3_the_vm_installs_it_with_bounded_dnf_and_runs_the_job(
    pipeline: LocalPipeline, shims: Path
) -> None:
    """Regression: an AMI without boto3 (the default AL2023) no longer starting jobs once the install is skipped
    when boto3 is there; dnf pulling weak dependencies, or waiting on a repository for its default 30 s x 10."""
    install_shims(shims, INSTALLING_DNF)
    job = signed_in(pipeline).submit("plain.txt", b"abc", "xyz")
    done = wait_for_status(pipeline, job["id"], "SUCCEEDED", timeout=30)
    run = finished_run(pipeline, done["instance_id"])
    assert "boto3 is not installed: installing python3-boto3" in run.console
    [dnf] = [line for line in run.console.splitlines() if line.startswith("dnf ")]
    for option in ("-y", "--setopt=install_weak_deps=False", "--setopt=timeout=10", "--setopt=retries=2"):
        assert option in dnf.split(), (option, dnf)
    assert dnf.endswith(" python3-boto3")
    assert run.console.count("worker script fetched") == 1


def test_an_unreachable_package_repository_fails_the_job_at_once_with_a_reason(
    pipeline: LocalPipeline, shims: Path
) -> None:
    """Regression: dnf failing left the job LAUNCHING until the sweeper gave up on it (10 minutes) with "the VM
    never started", and no word on the repository."""
    install_shims(shims, FAILING_DNF)
    began = time.monotonic()
    job = signed_in(pipeline).submit("plain.txt", b"abc", "xyz")
    failed = wait_for_status(pipeline, job["id"], "FAILED", timeout=30)
    assert time.monotonic() - began < 60
    assert_readable_sentence(failed["error"])
    assert "could not install boto3" in failed["error"] and "repositories" in failed["error"]
    assert failed.get("finished_at")
    run = finished_run(pipeline, failed["instance_id"])
    assert run.ending == Ending.SHUTDOWN, "the VM powers itself off"
    assert "worker script fetched" not in run.console
