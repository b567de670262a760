"""The local VM host: runs the user-data of every job instance the launcher starts in the emulator.

A "VM" is `bash <user-data>` in its own scratch directory and its own process group, with an environment that
stands in for the machine: PATH starts with OS-level shims only (`shutdown`, `dnf`, `python3`, `aws`; `python3` is
AL2023's Python 3.9 with its boto3 when `make` could build that, `local/workerpython.py`), the instance
metadata service is served locally for that instance, and AWS calls go to the emulator with fake credentials. The
user-data and the worker are the very ones the launch template carries on AWS: nothing in them is changed.

Power-off works as on EC2 with shutdown behaviour `terminate`: when the VM runs `shutdown -h now` (its exit trap),
or its watchdog (`shutdown -h +N`) fires, the host kills the VM's process group and terminates the instance in the
emulator. An instance terminated from outside (a sweeper, a user) has its VM killed too, and one terminated by any
client of the local stack's session before it booted still has its termination announced (`watch_terminations`).
The console output of each VM is kept (like EC2's GetConsoleOutput) and printed when its job did not succeed.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers.instances import describe_instances
from handlers.jobmodel import JOB_ID_TAG, Status, read_job
from local.serving import BackgroundLoop
from local.workerpython import MISSING, worker_python

log = logging.getLogger("filepipe.local")

SHIMS_DIR = Path(__file__).with_name("shims")
SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
"""After the shims: the OS's own tools the user-data uses as on AL2023 (bash, curl, date, mktemp)."""
CONSOLE_LIMIT = 64 * 1024
"""GetConsoleOutput returns the last 64 KB of the console."""
POWER_OFF_GRACE_SECONDS = 3.0
"""How long a VM that asked to power off may take to finish its exit trap before its processes are killed."""
LIVE_STATES = ("pending", "running")


class Ending(enum.StrEnum):
    SHUTDOWN = "shutdown -h now"
    WATCHDOG = "watchdog (shutdown -h +N)"
    TERMINATED = "terminated in the emulator"
    HOST_STOPPING = "host stopping"


@dataclass
class VmRun:
    """One instance's life on this host."""

    instance: Mapping[str, Any]
    user_data: str
    scratch: Path
    process: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None
    ending: Ending | None = None
    console: str = ""
    finished: threading.Event = field(default_factory=threading.Event)
    power_off: threading.Event = field(default_factory=threading.Event)
    watchdog: threading.Timer | None = None
    started: float = field(default_factory=time.monotonic)
    stopped: float = 0.0

    @property
    def instance_id(self) -> str:
        return str(self.instance["InstanceId"])

    @property
    def job_id(self) -> str | None:
        return next((t["Value"] for t in self.instance.get("Tags", []) if t["Key"] == JOB_ID_TAG), None)

    def request_power_off(self, ending: Ending) -> None:
        if self.ending is None:
            self.ending = ending
        self.power_off.set()


def vm_python() -> str:
    """The VM's `python3`: the worker environment (AL2023's Python 3.9 with the boto3 its repositories ship, built by
    `make`), else this virtualenv's interpreter, which is newer than AWS's."""
    found = worker_python()
    if found is None:
        log.warning("local VMs run the worker on %s, not on AL2023's Python 3.9: %s", sys.executable, MISSING)
        return sys.executable
    return found


def python_shim(directory: Path, python: str = sys.executable) -> Path:
    """`python3` = `python` (the VM host passes `vm_python()`: AL2023's python3 with python3-boto3 installed).

    A wrapper, not a symlink: a venv is recognised from the path of the executable that is started.
    """
    path = directory / "python3"
    path.write_text(f'#!/bin/sh\nexec "{python}" "$@"\n', encoding="utf-8")
    path.chmod(0o755)
    return path


def aws_cli_shim(directory: Path, python: str = sys.executable) -> Path:
    """`aws` = `shims/aws.py` on this virtualenv's interpreter (AL2023 ships AWS CLI v2; the user-data uses it)."""
    path = directory / "aws"
    path.write_text(f'#!/bin/sh\nexec "{python}" "{SHIMS_DIR / "aws.py"}" "$@"\n', encoding="utf-8")
    path.chmod(0o755)
    return path


def prepare_shims(directory: Path) -> Path:
    """A directory holding exactly the shims, to put first on each VM's PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    for shim in ("shutdown", "dnf"):
        target = directory / shim
        shutil.copyfile(SHIMS_DIR / shim, target)
        target.chmod(0o755)
    python_shim(directory, vm_python())
    aws_cli_shim(directory)  # AWS CLI v2 brings its own Python: this virtualenv's stands in for it
    return directory


def kill_group(process: subprocess.Popen[bytes], grace: float = 1.0) -> None:
    """SIGTERM the VM's whole process group, then SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class VmHost:
    """Watches the emulator for job instances and runs each one's user-data as a local VM."""

    def __init__(
        self,
        *,
        ec2: Any,
        dynamodb: Any,
        table: str,
        aws_env: Mapping[str, str],
        region: str,
        metadata_url: Callable[[], str],
        minute_seconds: float = 60.0,
        poll_seconds: float = 0.25,
        workdir: Path | None = None,
        on_terminated: Callable[[str], None] | None = None,
    ) -> None:
        """`on_terminated(instance_id)` is called once a VM's instance is terminated in the emulator, as EC2's
        state-change event reaches its EventBridge targets on AWS."""
        self.ec2 = ec2
        self.dynamodb = dynamodb
        self.table = table
        self.aws_env = dict(aws_env)
        self.region = region
        self.metadata_url = metadata_url
        self.minute_seconds = minute_seconds
        self.poll_seconds = poll_seconds
        self.on_terminated = on_terminated
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="filepipe-vms-"))
        self.shims = prepare_shims(self.workdir / "shims")
        self.runs: dict[str, VmRun] = {}
        self._lock = threading.Lock()
        self._loop = BackgroundLoop(self._watch, "vm-host")
        self._stop = self._loop.stopping

    # InstanceDirectory, for the metadata server
    def instance(self, instance_id: str) -> Mapping[str, Any] | None:
        run = self.runs.get(instance_id)
        return run.instance if run is not None and not run.finished.is_set() else None

    def shutdown(self, instance_id: str, when: str) -> bool:
        run = self.runs.get(instance_id)
        if run is None:
            return False
        if when == "now":
            run.request_power_off(Ending.SHUTDOWN)
        elif when == "cancel":
            self._cancel_watchdog(run)
        else:
            self._schedule_watchdog(run, int(when.lstrip("+")))
        return True

    def start(self) -> None:
        self._loop.start()

    def watch_terminations(self, events: Any) -> None:
        """Announce the termination of instances this host never booted when a client with `events` (a boto3
        session's or a client's event emitter) terminates them.

        On AWS every instance's termination raises EC2's state-change event, whoever terminated it. Here the host
        announces the VMs it runs; an instance terminated before the host saw it running (the launcher, a sweep or
        a user's cancel terminating the VM of a job cancelled while it started) would otherwise never free its
        slot. Registered on the session every stack client comes from, it sees each of their terminations. A VM
        the host runs is announced by the host as before (should both announce one, the slot release is
        conditional: at-least-once, as on AWS).
        """
        def announce(parsed: Mapping[str, Any], **_: Any) -> None:
            for change in parsed.get("TerminatingInstances", []):
                instance_id = change.get("InstanceId")
                if instance_id and instance_id not in self.runs and self.on_terminated is not None:
                    log.info("VM %s terminated before it booted (local VM host)", instance_id)
                    try:
                        self.on_terminated(instance_id)
                    except Exception:
                        log.exception("VM %s: delivering its termination event failed", instance_id)

        events.register("after-call.ec2.TerminateInstances", announce)

    def stop(self) -> None:
        """Kill every VM (process groups included) and stop watching; the instances are left as they are."""
        self._loop.stop()
        with self._lock:
            runs = list(self.runs.values())
        for run in runs:
            run.request_power_off(Ending.HOST_STOPPING)
        for run in runs:
            run.finished.wait(timeout=15)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the emulator may be busy or going away; keep watching
                log.exception("VM host: polling the emulator failed")
            self._stop.wait(self.poll_seconds)

    def live_instances(self) -> list[Mapping[str, Any]]:
        """Instances the launcher started (they carry the job tag) that are pending or running."""
        filters = [{"Name": "tag-key", "Values": [JOB_ID_TAG]}, {"Name": "instance-state-name", "Values": LIVE_STATES}]
        return list(describe_instances(self.ec2, filters))

    def poll_once(self) -> None:
        live = {instance["InstanceId"]: instance for instance in self.live_instances()}
        for instance_id, instance in live.items():
            if instance_id not in self.runs and not self._stop.is_set():
                self.boot(instance)
        with self._lock:
            running = [run for run in self.runs.values() if not run.finished.is_set()]
        for run in running:
            if run.instance_id not in live and run.power_off.is_set() is False:
                run.request_power_off(Ending.TERMINATED)

    def user_data(self, instance_id: str) -> str:
        """The instance's user-data, read back from the emulator as the VM would receive it."""
        attribute = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        value = attribute.get("UserData", {}).get("Value", "")
        return base64.b64decode(value).decode("utf-8") if value else ""

    def boot(self, instance: Mapping[str, Any]) -> VmRun:
        instance_id = instance["InstanceId"]
        scratch = self.workdir / instance_id
        (scratch / "tmp").mkdir(parents=True, exist_ok=True)
        run = VmRun(instance=instance, user_data=self.user_data(instance_id), scratch=scratch)
        with self._lock:
            self.runs[instance_id] = run
        log.info("job %s: VM %s booting (local VM host)", run.job_id, instance_id)
        threading.Thread(target=self._run_vm, args=(run,), name=f"vm-{instance_id}", daemon=True).start()
        return run

    def vm_environment(self, run: VmRun) -> dict[str, str]:
        base = f"{self.metadata_url()}/{run.instance_id}"
        return {
            "PATH": os.pathsep.join([str(self.shims), *SYSTEM_PATH]),
            "HOME": str(run.scratch),
            "TMPDIR": str(run.scratch / "tmp"),
            "LANG": "C.UTF-8",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": base,
            "FILEPIPE_VM_CONTROL": f"{base}/_host",
            **{k: v for k, v in self.aws_env.items() if k not in {"AWS_DEFAULT_REGION", "AWS_REGION"}},
        }

    def _run_vm(self, run: VmRun) -> None:
        console_path = run.scratch / "console.log"
        try:
            if not run.user_data:
                log.warning("VM %s has no user-data: nothing runs on it", run.instance_id)
                run.power_off.wait()
            else:
                script = run.scratch / "user-data"
                script.write_text(run.user_data, encoding="utf-8")
                with console_path.open("wb") as console:
                    run.process = subprocess.Popen(
                        ["bash", str(script)], cwd=run.scratch, env=self.vm_environment(run),
                        stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
                    )
                self._supervise(run)
        except Exception:
            log.exception("VM %s: the local VM host failed", run.instance_id)
            run.request_power_off(Ending.HOST_STOPPING)
        finally:
            self._cancel_watchdog(run)
            if run.process is not None and run.process.returncode is None:
                kill_group(run.process)
            elif run.process is not None:
                kill_group(run.process, grace=0)  # stray children (the VM is powered off)
            run.stopped = time.monotonic()  # its processes are gone: before the instance is, and its slot with it
            if console_path.exists():
                run.console = console_path.read_bytes()[-CONSOLE_LIMIT:].decode("utf-8", errors="replace")
            if run.ending in (Ending.SHUTDOWN, Ending.WATCHDOG):
                self._terminate(run)
            if run.ending in (Ending.SHUTDOWN, Ending.WATCHDOG, Ending.TERMINATED):
                self._announce_termination(run)
            try:
                self._report(run)  # before `finished`: whoever waits for the VM's end finds its report written
            finally:
                run.finished.set()
            shutil.rmtree(run.scratch, ignore_errors=True)

    def _supervise(self, run: VmRun) -> None:
        """Wait for a power-off; note when the user-data ends without one (the instance then stays up, as on EC2)."""
        process = run.process
        assert process is not None
        while not run.power_off.wait(0.1):
            if run.exit_code is None and process.poll() is not None:
                run.exit_code = process.returncode
                log.warning("VM %s: user-data exited (%s) without powering off; the instance keeps running",
                            run.instance_id, run.exit_code)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=POWER_OFF_GRACE_SECONDS if run.ending == Ending.SHUTDOWN else 0.5)
        if process.returncode is not None and run.exit_code is None:
            run.exit_code = process.returncode

    def _schedule_watchdog(self, run: VmRun, minutes: int) -> None:
        self._cancel_watchdog(run)
        run.watchdog = threading.Timer(minutes * self.minute_seconds, run.request_power_off, args=(Ending.WATCHDOG,))
        run.watchdog.daemon = True
        run.watchdog.start()

    @staticmethod
    def _cancel_watchdog(run: VmRun) -> None:
        if run.watchdog is not None:
            run.watchdog.cancel()
            run.watchdog = None

    def _terminate(self, run: VmRun) -> None:
        try:
            self.ec2.terminate_instances(InstanceIds=[run.instance_id])
        except Exception:
            log.exception("VM %s: terminating the instance in the emulator failed", run.instance_id)

    def _announce_termination(self, run: VmRun) -> None:
        if self.on_terminated is None:
            return
        try:
            self.on_terminated(run.instance_id)
        except Exception:
            log.exception("VM %s: delivering its termination event failed", run.instance_id)

    def _report(self, run: VmRun) -> None:
        """One line per VM end; the console output too when its job did not succeed."""
        seconds = time.monotonic() - run.started
        status, error = self._job_outcome(run.job_id)
        log.info("job %s: VM %s gone after %.1fs (%s, exit %s)", run.job_id, run.instance_id, seconds,
                 run.ending or "user-data ended", run.exit_code)
        if status != Status.SUCCEEDED and run.ending != Ending.HOST_STOPPING:
            log.warning("job %s ended %s%s; console output of %s:\n%s", run.job_id, status or "without a status",
                        f" ({error})" if error else "", run.instance_id, indent(run.console))

    def _job_outcome(self, job_id: str | None) -> tuple[str | None, str | None]:
        if job_id is None:
            return None, None
        try:
            job = read_job(self.dynamodb, self.table, job_id) or {}
        except Exception:  # only for a log line: the emulator may be going away
            return None, None
        return job.get("status"), job.get("error")


def indent(text: str, prefix: str = "    | ") -> str:
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines()) or prefix + "(empty)"
