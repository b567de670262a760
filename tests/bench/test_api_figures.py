"""The API group's CPU accounting and what it derives: CPU per request, the queueing floor, the notes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bench.api import Round, cpu_figures, cpu_targets, floor_notes, queueing_floor
from bench.cpu import StackCpu, process_cpu_seconds

BURN = "import time\nwhile time.process_time() < {seconds}: pass\nprint('burned', flush=True)\ntime.sleep(60)"
"""Uses `seconds` of CPU in all (its start included), says so, then sleeps."""
TICK = 0.01
"""/proc/<pid>/stat counts user and system time each in whole clock ticks (1/100 s), rounded down."""


def burn_here(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process that uses no CPU once started (the emulator's place in StackCpu)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
                               stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"started\n"
    yield process
    process.kill()
    process.wait()


def test_another_process_cpu_time_is_read_from_proc() -> None:
    process = subprocess.Popen([sys.executable, "-c", BURN.format(seconds=0.4 + 2 * TICK)], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"burned\n"
        used = process_cpu_seconds(process.pid)
        time.sleep(0.2)
        assert 0.4 <= used < 1.5
        assert process_cpu_seconds(process.pid) == pytest.approx(used, abs=0.05), "asleep: its CPU time stays put"
    finally:
        process.kill()
        process.wait()


def test_the_stack_meter_counts_work_beyond_the_idle_rate(sleeper: subprocess.Popen[bytes]) -> None:
    meter = StackCpu(sleeper.pid)
    assert meter.calibrate(0.3) < 0.2, "a stack at rest"
    meter.start()
    burn_here(0.3)
    assert 0.25 <= meter.busy() < 0.6

    meter.idle_per_second = 100.0  # an idle rate above anything the stack did: busy is never negative
    meter.start()
    burn_here(0.05)
    assert meter.busy() == 0.0


def rounds_of(cpu_alone: float, cpu_loaded: float, p50_alone: float, p99_loaded: float) -> dict[int, list[Round]]:
    alone = Round({"GET /api/health": [p50_alone] * 10}, {"GET /api/health": cpu_alone})
    loaded = Round({"GET /api/health": [p99_loaded] * 10}, {"GET /api/health": cpu_loaded})
    return {1: [alone, alone], 20: [loaded, loaded]}


def test_the_queueing_floor_is_clients_times_cpu_over_cores() -> None:
    assert queueing_floor(10.0, clients=20, cores=2) == 100.0
    assert queueing_floor(10.0, clients=20, cores=8) == 25.0


def test_cpu_figures_compare_the_many_clients_cpu_with_one_clients_and_give_the_floor() -> None:
    figures = {f.name: f for f in cpu_figures(["GET /api/health"], rounds_of(10.0, 12.0, 11.0, 150.0), 20, 2)}
    loaded = figures["GET /api/health CPU per request, 20 clients"]
    assert (loaded.median, loaded.baseline, loaded.ratio) == (12.0, 10.0, pytest.approx(1.2))
    assert figures["GET /api/health queueing floor, 20 clients (2 cores)"].median == 120.0
    assert figures["GET /api/health CPU per request, 1 client"].baseline is None, "health is the floor itself"


@pytest.mark.parametrize(("cpu_loaded", "met"), [(11.0, True), (13.0, False)])
def test_the_cpu_target_is_many_clients_cpu_over_one_clients(cpu_loaded: float, met: bool) -> None:
    [target] = cpu_targets(["GET /api/health"], rounds_of(10.0, cpu_loaded, 11.0, 150.0), 20)
    assert target.value == pytest.approx(cpu_loaded / 10.0)
    assert target.met is met


def test_a_cpu_target_whose_one_client_figure_is_zero_is_unmeasured_not_a_crash() -> None:
    """Regression: on a busy machine the one-client CPU per request can come out 0 (the idle rate subtracted ate it),
    and the whole bench run died with ZeroDivisionError in `cpu_targets`."""
    [target] = cpu_targets(["GET /api/health"], rounds_of(0.0, 12.0, 11.0, 150.0), 20)
    assert math.isnan(target.value) and not target.met
    assert target.to_json()["value"] is None and json.loads(json.dumps(target.to_json()))["met"] is False


def test_a_note_puts_each_routes_p99_beside_the_limit_and_the_floor() -> None:
    [note] = floor_notes(["GET /api/health"], rounds_of(10.0, 12.0, 11.0, 150.0), 20, 2)
    assert note == ("GET /api/health: p99 at 20 clients 150 ms, the target's limit 110 ms, the queueing floor on "
                    "2 cores 120 ms (mean latency cannot be lower)")
