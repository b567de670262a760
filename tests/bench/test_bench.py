"""`make bench`'s code runs and writes well-formed results; no timing is asserted (benchmarks are not tests)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench import __main__ as runner
from bench.children import REPO_ROOT
from bench.figures import FIELDS, figure, percentile
from bench.pipeline import job_phases
from bench.plan import MAX_WORKER_RUNS, PASSWORD_VARIABLE, QUICK, REMOTE_GROUPS, BenchError, plan_for

TINY = replace(QUICK, worker_sizes_mib=(1, 9, 10), worker_runs=1, coldstart_runs=1, api_requests=20, api_rounds=1,
               api_clients=3, single_job_runs=1, burst_jobs=2)
"""bench-quick's code paths with little work: three sizes (one under S3's 5 MiB part minimum, which the worker
reads and writes whole; two it copies inside S3), and enough requests a route that its CPU per request is above the
meter's resolution (clock ticks of 10 ms, less an idle rate): with three, a cheap route's one-client figure read 0."""


def test_figure_summarises_samples_against_the_median_of_the_baseline() -> None:
    made = figure("x", "ms", [3.0, 1.0, 2.0], [10.0, 4.0, 1.0], group="g", size=1)
    assert (made.min, made.median, made.max, made.baseline, made.ratio) == (1.0, 2.0, 3.0, 4.0, 0.5)
    assert figure("y", "ms", [2.0], None, group="g").ratio is None
    assert list(made.to_json())[:len(FIELDS)] == list(FIELDS)


def test_percentile_is_the_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert (percentile(samples, 0.5), percentile(samples, 0.99), percentile(samples, 1.0)) == (50.0, 99.0, 100.0)
    assert percentile([7.0], 0.99) == 7.0


def test_phases_follow_the_marks_a_job_has_and_skip_those_it_lacks() -> None:
    """Today's jobs have no queued_at; a job with every mark gets one phase per state."""
    job = {"created_at": "2024-01-01T00:00:01.000Z", "launching_at": "2024-01-01T00:00:03.000Z",
           "started_at": "2024-01-01T00:00:10.000Z", "finished_at": "2024-01-01T00:00:10.500Z"}
    submitted = 1704067200.0  # 2024-01-01T00:00:00Z
    assert job_phases(job, submitted) == {"submit → created_at": 1.0, "created_at → launching_at": 2.0,
                                          "launching_at → started_at": 7.0, "started_at → finished_at": 0.5}


def test_a_deployed_stack_gets_the_http_figures_signed_in_as_the_given_user() -> None:
    plan = plan_for(False, "https://d111.cloudfront.net/", "me@example.com", {PASSWORD_VARIABLE: "pw"})
    assert plan.groups == REMOTE_GROUPS and plan.name == "full"
    assert plan.remote is not None and (plan.remote.url, plan.remote.email) == ("https://d111.cloudfront.net",
                                                                              "me@example.com")
    assert plan_for(True, None, None, {}).remote is None


@pytest.mark.parametrize(("url", "email", "says"), [
    ("https://d111.cloudfront.net", "me@example.com", PASSWORD_VARIABLE),
    ("https://d111.cloudfront.net", None, "BENCH_EMAIL"),
    ("http://d111.cloudfront.net", "me@example.com", "https://"),
])
def test_a_deployed_stack_without_what_it_needs_is_refused_naming_it(url: str, email: str | None, says: str) -> None:
    with pytest.raises(BenchError, match=says):
        plan_for(False, url, email, {})


def test_make_bench_against_a_stack_without_a_password_exits_2_before_measuring(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = runner.main(["--url", "https://d111.cloudfront.net", "--email", "me@example.com", "--results",
                        str(tmp_path)], env={})
    assert code == 2
    assert f"{PASSWORD_VARIABLE} is not set" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [], "nothing measured, nothing written"


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.solo  # its CPU figures are what the stack uses beyond its idle rate: a busy neighbour can zero them
def test_every_figure_group_runs_and_writes_well_formed_json(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "plan_for", lambda *args: TINY)
    assert runner.main(["--quick", "--results", str(tmp_path)]) == 0

    [written] = tmp_path.glob("*.json")
    report = json.loads(written.read_text(encoding="utf-8"))
    assert written.with_suffix(".png").stat().st_size > 10_000, "the picture is missing or empty"
    figures = report["figures"]
    assert {f["group"] for f in figures} == {"worker", "coldstart", "api", "pipeline"}
    for f in figures:
        assert set(FIELDS) <= set(f), f
        assert f["min"] <= f["median"] <= f["max"] and math.isfinite(f["median"]) and f["median"] > 0, f
        if f["baseline"] is not None:
            assert f["ratio"] == pytest.approx(f["median"] / f["baseline"]), f
    names = {f["name"] for f in figures}
    assert {"worker time, 9 MiB", "worker bytes through the VM, 9 MiB", "upload handler import",
            "POST /api/jobs p99, 3 clients", "POST /api/jobs CPU per request, 3 clients",
            "GET /api/jobs queueing floor, 3 clients "
            f"({report['machine']['nproc']} cores)", "2 jobs at once, cap 7: submit → SUCCEEDED",
            "VM CPU per job (user-data + worker)"} <= names
    assert report["targets"] and all(isinstance(t["met"], bool) for t in report["targets"])
    targets = {t["name"]: t for t in report["targets"]}
    assert "POST /api/jobs: CPU per request at 3 clients / at 1 client" in targets
    network = targets["worker bytes through the VM, 10 MiB, most of its runs (MiB)"]
    assert network["met"] and 0 < network["value"] < 1, "a 10 MiB input copied inside S3 moves kilobytes"
    assert any(note.startswith("GET /api/health: p99 at 3 clients") for note in report["notes"])
    assert report["machine"]["nproc"] >= 1 and isinstance(report["notes"], list)


def test_a_small_input_gets_more_copies_up_to_a_bound() -> None:
    plan = replace(QUICK, worker_runs=3, worker_mib_per_size=256)
    assert [plan.worker_runs_for(size) for size in (1, 16, 64, 256, 1024)] == [MAX_WORKER_RUNS, 15, 4, 3, 3]
    assert replace(plan, worker_mib_per_size=0).worker_runs_for(1) == 3


def test_worker_targets_bound_the_bytes_through_the_vm_and_the_speedup_from_1_gib() -> None:
    """The issue's targets: at most 6 MiB plus the text through the VM at every size (the worst run counts), and
    from 1 GiB on the worker at least 10 times faster than the plain streaming copy."""
    figures = [
        figure("worker bytes through the VM, 16 MiB", "MiB", [0.01, 6.5], [32.0], group="worker", kind="network",
               who="worker", size_mib=16),
        figure("worker time, 16 MiB", "s", [0.2], [0.4], group="worker", kind="time", who="worker", size_mib=16),
        figure("worker time, 1024 MiB", "s", [1.5], [14.0], group="worker", kind="time", who="worker", size_mib=1024),
    ]
    targets = {t.name: t for t in runner.worker_targets(figures)}
    network = targets["worker bytes through the VM, 16 MiB, most of its runs (MiB)"]
    assert (network.value, network.met) == (6.5, False)
    speedup = targets["plain copy time / worker time, 1024 MiB"]
    assert speedup.value == pytest.approx(14.0 / 1.5) and not speedup.met
    assert set(targets) == {network.name, speedup.name}, "no speed target below 1 GiB"


SOCKET_COUNT = """
import socket
from bench.probe import SocketBytes
SocketBytes.install()
left, right = socket.socketpair()
left.sendall(b"x" * 100000)
got = 0
while got < 100000:
    got += len(right.recv(65536))
right.send(b"y" * 10)
buffer = bytearray(10)
left.recv_into(buffer)
print(SocketBytes.sent, SocketBytes.received)
"""


def test_bytes_through_the_vm_are_every_send_and_receive_of_the_process() -> None:
    """The counter behind "bytes through the VM": sendall, send, recv and recv_into of any socket, both ways
    (run in a child: it patches `socket.socket` for the whole process)."""
    found = subprocess.run([sys.executable, "-c", SOCKET_COUNT], capture_output=True, text=True, check=True,
                           cwd=REPO_ROOT)
    assert found.stdout.split() == ["100010", "100010"]
