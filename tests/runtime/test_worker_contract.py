"""The worker ships alone to a Python 3.9 VM: its copy of the job model must agree, and it must run on 3.9."""

from __future__ import annotations

import ast
import base64
import subprocess
import sys
from pathlib import Path

import pytest

from handlers import jobmodel
from handlers.jobmodel import Status
from local import workerpython
from local.vmhost import prepare_shims
from tests.runtime.workerpy import worker_interpreter
from worker import worker
from worker.userdata import PLACEHOLDER, WORKER_PATH, render_user_data

NAMES = ["notes.txt", "README", "archive.tar.gz", ".hidden", "a.b.c.d", "x.out", "weird_name-1.JSON"]


def test_worker_states_match_the_job_model() -> None:
    for name in ("LAUNCHING", "RUNNING", "SUCCEEDED", "FAILED"):
        assert getattr(worker, name) == Status[name].value
    assert worker.OUTPUT_PREFIX == jobmodel.OUTPUT_PREFIX


@pytest.mark.parametrize("name", NAMES)
def test_worker_output_and_log_keys_match_the_job_model(name: str) -> None:
    job_id = jobmodel.new_id()
    assert worker.output_key(job_id, f"inputs/{job_id}/{name}") == jobmodel.output_key(job_id, f"inputs/x/{name}")
    assert worker.log_key(job_id) == jobmodel.log_key(job_id)


def test_worker_transitions_are_the_job_models_worker_moves() -> None:
    """The worker's copied table must be exactly the moves the job model gives the worker, no more, no fewer."""
    model = {(t.source.value, t.target.value) for t in jobmodel.TRANSITIONS if jobmodel.Actor.WORKER in t.by}
    assert set(worker.WORKER_TRANSITIONS) == model


def test_worker_phase_stamps_match_the_job_model() -> None:
    """The worker's moves stamp the same phase attributes as jobmodel.transition, or wait and run times break."""
    targets = {target for _, target in worker.WORKER_TRANSITIONS}
    assert {t: jobmodel.PHASE_STARTED[Status(t)] for t in targets} == worker.PHASE_STARTED


def test_the_worker_refuses_a_move_it_may_not_make() -> None:
    """A bug that made the worker fail a LAUNCHING job (the sweeper's move) is stopped before any write."""
    with pytest.raises(ValueError, match="LAUNCHING -> FAILED"):
        worker.transition(None, "table", "job", worker.FAILED, expected=[worker.LAUNCHING])


def test_worker_imports_only_the_standard_library_and_boto3() -> None:
    tree = ast.parse(WORKER_PATH.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    third_party = roots - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party <= {"boto3", "botocore"}, f"the VM has no {third_party - {'boto3', 'botocore'}}"


def test_worker_needs_at_most_python_3_9() -> None:
    vermin = Path(sys.executable).with_name("vermin")
    result = subprocess.run([str(vermin), "--target=3.9-", "--violations", "--no-tips", "--eval-annotations",
                             str(WORKER_PATH)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


PIN_FILE = WORKER_PATH.with_name("requirements.txt")


def pins() -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in PIN_FILE.read_text(encoding="utf-8").splitlines()]
    return dict(line.split("==") for line in lines if line)


def test_the_worker_environment_is_al2023s_python_and_boto3() -> None:
    """The worker's tests and local VMs run it on Python 3.9 with the pinned boto3, botocore and s3transfer (the
    versions AL2023's python3-boto3 brings, worker/requirements.txt), not on this repository's newer ones."""
    python = worker_interpreter()
    found = subprocess.run(
        [python, "-c", "import sys, boto3, botocore, s3transfer; print(sys.version_info[0], sys.version_info[1], "
                       "boto3.__version__, botocore.__version__, s3transfer.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    pinned = pins()
    assert found == ["3", "9", pinned["boto3"], pinned["botocore"], pinned["s3transfer"]]


def test_worker_compiles_under_a_real_python_3_9() -> None:
    result = subprocess.run([worker_interpreter(), "-m", "py_compile", str(WORKER_PATH)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_a_local_vm_runs_python3_on_the_worker_environment(tmp_path: Path) -> None:
    """Local mode's VMs run the user-data's `python3` (and so the worker) on AL2023's Python and boto3, as AWS will;
    before, they ran it on this virtualenv's Python 3.11 and boto3 1.44."""
    python = worker_interpreter()
    shims = prepare_shims(tmp_path / "shims")
    found = subprocess.run([str(shims / "python3"), "-c", "import sys; print(sys.executable)"], capture_output=True,
                           text=True, check=True).stdout.strip()
    assert found == python


def test_rendered_user_data_passes_shellcheck(tmp_path: Path) -> None:
    script = tmp_path / "user-data.sh"
    script.write_text(render_user_data(bucket="filepipe-dev-data-1a2b", table="filepipe-dev-jobs", timeout_minutes=15))
    shellcheck = Path(sys.executable).with_name("shellcheck")
    result = subprocess.run([str(shellcheck), "--severity=style", str(script)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout


def test_user_data_quotes_stack_values_and_fills_every_placeholder() -> None:
    script = render_user_data(bucket="b; rm -rf /", table="jobs table", timeout_minutes=7)
    assert "readonly BUCKET='b; rm -rf /'" in script
    assert "readonly TABLE='jobs table'" in script
    assert "readonly TIMEOUT_MINUTES=7" in script
    assert not PLACEHOLDER.search(script), "a placeholder was left unrendered"
    assert script.startswith("#!/bin/bash\n")


def test_user_data_does_the_job_steps_in_order() -> None:
    """Watchdog first, always power off, the job id, then one Python process that fetches the worker with boto3 and
    runs it with this stack's names; dnf only when that process finds no boto3."""
    script = render_user_data(bucket="data-bucket", table="jobs", timeout_minutes=9)
    steps = ["set -euo pipefail", "trap power_off EXIT", 'shutdown -h "+${TIMEOUT_MINUTES}"',
             "tags/instance/${JOB_ID_TAG}", "import boto3", "download_file",
             'runpy.run_path(path, run_name="__main__")',
             "dnf install -y -q --setopt=install_weak_deps=False", "run_worker || status=$?",
             "if ((status == NO_BOTO3)); then", "  install_boto3\n  run_worker\n"]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions)
    assert '--job-id="${job_id}"' in script and "shutdown -h now" in script
    assert script.count("python3 ") == 1, "one Python interpreter runs the fetch and the worker"


def test_a_job_id_starting_with_a_dash_reaches_the_worker_in_the_form_user_data_passes() -> None:
    """Nanoids use `-` and `_`: `--job-id <id>` would make argparse take `-abc` for an option."""
    job_id = "-" + jobmodel.new_id()[1:]
    args = worker.parse_args([f"--job-id={job_id}", "--instance-id=i-1", "--table=t", "--bucket=b"])
    assert args.job_id == job_id
    with pytest.raises(SystemExit):
        worker.parse_args(["--job-id", job_id, "--instance-id=i-1", "--table=t", "--bucket=b"])


def test_user_data_fits_the_launch_template_limit() -> None:
    """EC2 refuses user-data over 16 KB (before base64)."""
    script = render_user_data(bucket="b" * 63, table="t" * 255, timeout_minutes=60)
    assert len(script.encode()) < 16 * 1024
    assert base64.b64decode(base64.b64encode(script.encode())).decode() == script


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout_minutes"):
        render_user_data(bucket="b", table="t", timeout_minutes=0)


def test_without_a_python_3_9_the_worker_tests_skip_unless_ci_requires_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without Python 3.9 skips the worker's tests with the reason; CI's flag turns that into a failure
    (as FILEPIPE_REQUIRE_BROWSER does for the browser tests). An interpreter that is not 3.9 does not count."""
    monkeypatch.setenv(workerpython.ENV, sys.executable)  # this virtualenv's Python is not 3.9
    monkeypatch.delenv(workerpython.REQUIRE_ENV, raising=False)
    assert workerpython.worker_python() is None
    with pytest.raises(pytest.skip.Exception, match=r"no Python 3\.9 worker environment"):
        worker_interpreter()
    monkeypatch.setenv(workerpython.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=r"no Python 3\.9 worker environment"):
        worker_interpreter()
