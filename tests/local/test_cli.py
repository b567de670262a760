"""`python -m local` (what `make dev` runs): serves until SIGINT/SIGTERM, then leaves no process and no open port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import boto3
import psutil
import pytest
import requests

from handlers.config import ApiConfig, LauncherConfig, env_name
from local.__main__ import bind_address, startup_notice
from local.emulator import MotoServer, free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"open (http://127\.0\.0\.1:\d+)/ +\(AWS emulator: (http://127\.0\.0\.1:\d+)\)")


BANNERS: dict[int, str] = {}
"""What each CLI started here printed up to its URL, by process id."""


def start_cli(port: int) -> tuple[subprocess.Popen[str], str, str]:
    """`python -m local` as the leader of its own process group, as a shell runs a foreground command."""
    env = {**os.environ, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "local"], cwd=REPO, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = READY.search(line)
        if found:
            BANNERS[process.pid] = "".join(seen)
            return process, found[1], found[2]
    process.kill()
    raise AssertionError("python -m local did not print its URL:\n" + "".join(seen))


def start_hung_vm(endpoint: str) -> None:
    """An instance whose user-data never ends, so the signal arrives while a VM (and its children) run."""
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, UserData="#!/bin/bash\nsleep 600\n",
                      TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "JobId", "Value": "x" * 21}]}])


def wait_for_process(parent: psutil.Process, name: str, timeout: float = 20) -> None:
    wait_for(lambda: any(p.name() == name for p in parent.children(recursive=True)), timeout,
             f"a {name} process under {parent.pid}")


def listening_ports(processes: list[psutil.Process]) -> set[int]:
    ports = set()
    for process in processes:
        for conn in process.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                ports.add(conn.laddr.port)
    return ports


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGINT", "SIGTERM", "Ctrl-C in a terminal (SIGINT to the whole process group)"],
)
def test_the_cli_serves_then_stops_cleanly(signum: signal.Signals, to_group: bool) -> None:
    port = free_port()
    process, url, endpoint = start_cli(port)
    try:
        assert url == f"http://127.0.0.1:{port}"
        assert requests.get(f"{url}/api/health", timeout=10).json()["emulator"]["up"] is True
        assert requests.get(f"{url}/config.json", timeout=10).status_code == 200
        start_hung_vm(endpoint)
        root = psutil.Process(process.pid)
        wait_for_process(root, "sleep")
        tree = [root, *root.children(recursive=True)]
        assert {"bash", "sleep"} <= {p.name() for p in tree}
        ports = listening_ports(tree)
        assert {port, int(endpoint.rsplit(":", 1)[1])} <= ports and len(ports) >= 3  # site, emulator, IMDS

        if to_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, output
    assert startup_notice("127.0.0.1") in BANNERS[process.pid]
    assert "stopped" in output
    assert "Traceback" not in output, "parts of local mode failed while stopping (the emulator went first?)"
    _, alive = psutil.wait_procs(tree[1:], timeout=5)
    assert alive == [], f"left running: {[(p.pid, p.name()) for p in alive]}"
    assert [p for p in ports if accepts(p)] == []


def test_the_emulator_is_out_of_reach_of_the_terminals_ctrl_c() -> None:
    """Ctrl-C reaches every process of the terminal's foreground group; the emulator must be outside it, so local
    mode can stop the poller, VM host and web server first and the emulator last (they use it until they stop)."""
    emulator = MotoServer()
    emulator.start()
    try:
        assert emulator.process is not None
        assert os.getpgid(emulator.process.pid) != os.getpgid(0), "the emulator shares our process group"
        assert emulator.is_up()
    finally:
        emulator.stop()
    assert not emulator.is_up()


def bare_environment() -> dict[str, str]:
    """This process's environment without AWS settings or any of the handlers' variables."""
    handlers = {env_name(f.name) for kind in (ApiConfig, LauncherConfig) for f in fields(kind)}
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in handlers}


def test_the_commands_import_in_a_clean_environment() -> None:
    """`make dev`, `make load` and `make bench` run in a shell with none of the handlers' variables set; a module
    that configured a handler at import time would die before doing anything."""
    env = bare_environment()
    imported = subprocess.run([sys.executable, "-c", "import local.__main__, local.load"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    assert imported.returncode == 0, imported.stderr
    usage = subprocess.run([sys.executable, "-m", "local.load", "--help"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert usage.returncode == 0 and "--jobs" in usage.stdout, usage.stderr


HANDLER_IMPORT = """
import handlers.jobs, handlers.launcher, handlers.routes, handlers.sweeper, handlers.upload
from handlers import jobs
try:
    jobs.handler({"routeKey": "GET /api/health"}, None)
except KeyError as missing:
    print("first call needs", missing)
"""


def test_handlers_import_in_a_bare_environment_and_fail_loudly_on_first_use() -> None:
    """Importing a handler builds nothing (no config, no client); the first invocation without its environment
    fails naming the missing variable, as a misconfigured Lambda must."""
    ran = subprocess.run([sys.executable, "-c", HANDLER_IMPORT], cwd=REPO, env=bare_environment(),
                         capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "first call needs 'BUCKET'"


def emulator_of(root: psutil.Process, endpoint: str) -> psutil.Process:
    port = int(endpoint.rsplit(":", 1)[1])
    for child in root.children(recursive=True):
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in child.net_connections(kind="inet")):
            return child
    raise AssertionError(f"no process of {root.pid} listens on {port}")


def test_a_sigkilled_cli_leaves_no_emulator_behind() -> None:
    """Regression: SIGKILL (the OOM killer, `kill -9`, a crashed terminal) gives local mode no chance to stop its
    emulator, which lived on in its own session holding its port. It now notices its parent is gone and exits."""
    process, _, endpoint = start_cli(free_port())
    try:
        emulator = emulator_of(psutil.Process(process.pid), endpoint)
        emulator_port = int(endpoint.rsplit(":", 1)[1])
        process.kill()
        process.wait(timeout=10)
        _, alive = psutil.wait_procs([emulator], timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if alive:
        emulator.kill()
    assert alive == [], "the emulator outlived a SIGKILLed `python -m local`"
    assert not accepts(emulator_port)


def test_the_emulator_exits_when_its_parents_pipe_closes() -> None:
    """The mechanism alone: the emulator's stdin is the parent's pipe; end-of-file there means the parent is gone."""
    emulator = MotoServer()
    emulator.start()
    try:
        assert emulator.process is not None and emulator.process.stdin is not None
        child = emulator.process
        assert emulator.is_up()
        child.stdin.close()  # what the kernel does to the pipe when the parent dies
        child.wait(timeout=5)
        assert not emulator.is_up()
    finally:
        emulator.stop()


def test_local_mode_listens_on_loopback_unless_told_otherwise() -> None:
    assert bind_address({}) == "127.0.0.1"
    assert bind_address({"BIND_ADDRESS": "0.0.0.0"}) == "0.0.0.0"
    with pytest.raises(ValueError, match="BIND_ADDRESS must be an IP address"):
        bind_address({"BIND_ADDRESS": "my laptop"})


def test_the_start_says_whose_data_the_emulator_holds_and_who_can_reach_it() -> None:
    loopback = startup_notice("127.0.0.1")
    assert "single-user development stack" in loopback and "every user's data" in loopback
    assert "loopback: only this machine" in loopback
    assert "not loopback" in startup_notice("0.0.0.0")
