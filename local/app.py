"""`LocalPipeline`: the whole filepipe stack on 127.0.0.1, for `make dev` and for tests.

    with LocalPipeline(port=0, settings=StackSettings(...)) as pipeline:
        pipeline.url            # the site and /api/*
        pipeline.endpoint_url   # the moto server (AWS endpoint)
        pipeline.stack          # local.provision.LocalStack

The handlers read their configuration and create their boto3 clients when imported, as in a Lambda container, so
the pipeline sets this process's environment (stack names, limits, emulator endpoint, fake credentials) and then
imports (or re-imports) `handlers.upload`, `handlers.jobs`, `handlers.launcher` and `handlers.sweeper`. Those
modules are process-wide singletons, hence: **one LocalPipeline per process at a time**. On exit the environment
is restored and the handler modules are re-imported for it (or forgotten if they were not imported before), so other
code in the process sees them as it did before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from components.settings import (
    LAUNCHER_EVENT_FILTERS,
    STREAM_BATCH_SIZE,
    STREAM_MAX_RETRIES,
    StackSettings,
    site_config,
)
from handlers.jobmodel import Status
from handlers.routes import HTTP_FUNCTIONS, ROUTES
from local.emulator import HOST, REGION, UNSET_VARIABLES, EndpointSession, MotoServer, aws_environment
from local.events import instance_state_change
from local.metadata import MetadataApp
from local.provision import LocalStack, provision
from local.schedule import Schedule
from local.serving import BackgroundServer
from local.streams import LambdaHandler, StreamPoller
from local.vmhost import VmHost
from local.web import LocalWebApp

log = logging.getLogger("filepipe.local")

FRONTEND_DIR = Path(__file__).resolve().parent.parent / "frontend"
LAUNCHER_MODULE = "handlers.launcher"
SWEEPER_MODULE = "handlers.sweeper"
SWEEP_SECONDS = 60.0
"""How often local mode runs the sweeper (on AWS a schedule runs it every few minutes)."""
_active_lock = threading.Lock()
_active: list[LocalPipeline] = []
"""The pipeline running in this process, if any (at most one: the handler modules are singletons)."""


class TransitionLog:
    """Turns stream records into one readable line per job transition."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def __call__(self, record: Mapping[str, Any]) -> None:
        image = record.get("dynamodb", {}).get("NewImage") or {}
        job_id = image.get("id", {}).get("S")
        status = image.get("status", {}).get("S")
        if not job_id or not status or self._last.get(job_id) == status:
            return
        previous = self._last.get(job_id)
        self._last[job_id] = status
        line = f"job {job_id}: {previous + ' -> ' if previous else ''}{status}"
        details = {name: image.get(name, {}).get("S") for name in ("instance_id", "output_file_path", "error")}
        if status == Status.LAUNCHING and details["instance_id"]:
            line += f"  instance {details['instance_id']}"
        if status == Status.SUCCEEDED and details["output_file_path"]:
            line += f"  output s3://{details['output_file_path']}"
        if status == Status.FAILED and details["error"]:
            line += f"  error: {details['error']}"
        log.info("%s", line)


class LocalPipeline:
    """Emulator + provisioned stack + web server + stream poller + sweeper schedule + VM host, started and stopped
    together."""

    def __init__(
        self,
        port: int = 8000,
        settings: StackSettings | None = None,
        *,
        stack: str = "local",
        frontend_dir: Path = FRONTEND_DIR,
        wrap_launcher: Callable[[LambdaHandler], LambdaHandler] | None = None,
        minute_seconds: float = 60.0,
        sweep_seconds: float | None = SWEEP_SECONDS,
        host: str = HOST,
    ) -> None:
        """`port=0` picks a free port. `wrap_launcher(handler)` returns what the stream poller calls instead of
        `handlers.launcher.handler` (fault injection in tests); `minute_seconds` is how long a minute of
        `shutdown -h +N` lasts (60; tests shorten it to see the watchdog fire); `sweep_seconds` is the sweeper's
        period (None: no sweeper)."""
        self.port = port
        self.settings = settings or StackSettings()
        self.stack_name = stack
        self.frontend_dir = Path(frontend_dir)
        self.wrap_launcher = wrap_launcher
        self.minute_seconds = minute_seconds
        self.sweep_seconds = sweep_seconds
        self.host = host
        self.sweeper: Schedule | None = None
        self.web: BackgroundServer | None = None
        self.moto = MotoServer(host)
        self.metadata: BackgroundServer | None = None
        self.poller: StreamPoller | None = None
        self.vmhost: VmHost | None = None
        self.session: EndpointSession | None = None
        self._stack: LocalStack | None = None
        self._saved_env: dict[str, str | None] = {}
        self._modules_before: dict[str, ModuleType | None] = {}
        self._started = False
        self._health_s3: Any = None

    # -- public surface -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.web is None:
            raise RuntimeError("the pipeline is not started")
        return self.web.url

    @property
    def endpoint_url(self) -> str:
        return self.moto.endpoint_url

    @property
    def stack(self) -> LocalStack:
        if self._stack is None:
            raise RuntimeError("the pipeline is not started")
        return self._stack

    def client(self, service: str) -> Any:
        """A boto3 client for the emulator (a new one per call: boto3 clients are made in one thread each)."""
        if self.session is None:
            raise RuntimeError("the pipeline is not started")
        return self.session.client(service)

    def __enter__(self) -> LocalPipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        with _active_lock:
            if _active:
                raise RuntimeError("a LocalPipeline is already running in this process (handlers are singletons)")
            _active.append(self)
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.web = BackgroundServer(self._not_ready, self.host, self.port, name="web")  # binds now: port known
        self.moto.start()
        self.session = EndpointSession(self.endpoint_url, REGION)
        origins = (f"http://localhost:{self.web.port}", *self.settings.extra_origins)
        provisioned = provision(self.session, dataclasses.replace(self.settings, extra_origins=origins),
                                stack=self.stack_name, site_origin=self.url)
        self._stack = dataclasses.replace(provisioned, settings=self.settings)

        self._health_s3 = self.session.client("s3")
        self._set_environment({**aws_environment(self.endpoint_url, REGION), **self._stack.api_environment(),
                               **self._stack.launcher_environment()})
        handlers = {name: self._import_handler(f"handlers.{name}").handler for name in HTTP_FUNCTIONS}
        unwrapped: LambdaHandler = self._import_handler(LAUNCHER_MODULE).handler
        launcher = self.wrap_launcher(unwrapped) if self.wrap_launcher is not None else unwrapped

        def vm_terminated(instance_id: str) -> None:
            """The EventBridge rule's delivery: EC2 state-change event -> launcher (frees the VM's slot)."""
            unwrapped(instance_state_change(instance_id, "terminated", REGION), None)

        self.vmhost = VmHost(
            ec2=self.client("ec2"), dynamodb=self.client("dynamodb"), table=self._stack.table,
            aws_env=aws_environment(self.endpoint_url, REGION), region=REGION,
            metadata_url=lambda: self.metadata.url if self.metadata else "", minute_seconds=self.minute_seconds,
            on_terminated=vm_terminated,
        )
        self.metadata = BackgroundServer(MetadataApp(self.vmhost, REGION), self.host, 0, name="imds")
        self.metadata.start()
        self.vmhost.start()
        self.poller = StreamPoller(streams=self.client("dynamodbstreams"), stream_arn=self._stack.stream_arn,
                                   handler=launcher, region=REGION, observer=TransitionLog(),
                                   filters=LAUNCHER_EVENT_FILTERS, batch_size=STREAM_BATCH_SIZE,
                                   max_retries=STREAM_MAX_RETRIES)
        self.poller.start()
        if self.sweep_seconds is not None:
            sweeper = self._import_handler(SWEEPER_MODULE).handler
            self.sweeper = Schedule("sweeper", sweeper, self.sweep_seconds, REGION)
            self.sweeper.start()
        self.web.server.app = LocalWebApp(
            routes=ROUTES, handlers=handlers, frontend_dir=self.frontend_dir,
            site_config=site_config(self.settings), emulator_health=self._emulator_health,
            connect_sources=(self.endpoint_url,),
        )
        self.web.start()
        log.info("filepipe local stack %r up: site %s, AWS emulator %s", self.stack_name, self.url, self.endpoint_url)

    def stop(self) -> None:
        """Stop everything this pipeline started, newest first; safe to call twice or after a failed start."""
        if not self._started:
            return
        self._started = False
        for part in (self.web, self.sweeper, self.poller, self.vmhost, self.metadata):
            if part is not None:
                try:
                    part.stop()
                except Exception:
                    log.exception("stopping %s failed", type(part).__name__)
        self.web = self.sweeper = self.poller = self.vmhost = self.metadata = None
        self.moto.stop()
        self._restore_environment()
        with _active_lock:
            if self in _active:
                _active.remove(self)

    # -- helpers --------------------------------------------------------------------------------------------------
    @staticmethod
    def _not_ready(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"starting"]

    def _emulator_health(self) -> dict[str, Any]:
        """Up when the emulator answers for this stack's bucket (a cheap call that also proves it is provisioned)."""
        try:
            self._health_s3.head_bucket(Bucket=self.stack.bucket)
            up = True
        except Exception:
            up = False
        return {"up": up, "endpoint": self.endpoint_url, "kind": "moto"}

    def _set_environment(self, values: Mapping[str, str]) -> None:
        for name in (*values, *UNSET_VARIABLES):
            self._saved_env.setdefault(name, os.environ.get(name))
        for name in UNSET_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(values)

    def _import_handler(self, name: str) -> ModuleType:
        """Import a handler module under this pipeline's environment (re-import if it was loaded before)."""
        if name in sys.modules:
            self._modules_before.setdefault(name, sys.modules[name])
            return importlib.reload(sys.modules[name])
        self._modules_before.setdefault(name, None)
        return importlib.import_module(name)

    def _restore_environment(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        for name, before in self._modules_before.items():
            if before is None:
                sys.modules.pop(name, None)
                package, _, attribute = name.rpartition(".")
                with contextlib.suppress(AttributeError, KeyError):
                    delattr(sys.modules[package], attribute)
                continue
            try:
                importlib.reload(before)
            except Exception:  # the old environment cannot configure it: forget it rather than keep ours
                sys.modules.pop(name, None)
        self._modules_before.clear()
