"""`LocalPipeline`: the whole filepipe stack on 127.0.0.1, for `make dev` and for tests.

    with LocalPipeline(port=0, settings=StackSettings(...)) as pipeline:
        pipeline.url            # the site and /api/*
        pipeline.endpoint_url   # the moto server (AWS endpoint)
        pipeline.stack          # local.provision.LocalStack

The handlers get their config and clients from the pipeline (`ApiServices`, `LauncherServices` bound to the
emulator), never from this process's environment, so several pipelines can run in one process side by side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from handlers import launcher, release, sweeper
from handlers.apigw import Router
from handlers.jobmodel import Status
from handlers.presignup import ENV_ALLOWED_EMAIL_DOMAINS
from handlers.routes import ROUTERS, ROUTES
from handlers.services import ApiServices, LauncherServices
from local.authorizer import JwtAuthorizer, jwks_url
from local.calls import CallLog
from local.emulator import HOST, REGION, EndpointSession, MotoServer, aws_environment
from local.events import instance_state_change
from local.metadata import MetadataApp
from local.provision import LocalStack, provision
from local.schedule import Schedule
from local.serving import BackgroundServer
from local.streams import LambdaHandler, StreamPoller
from local.vmhost import VmHost
from local.web import LocalWebApp
from stackspec.settings import StackSettings, site_config
from stackspec.userpool import issuer

log = logging.getLogger("filepipe.local")

FRONTEND_DIR = Path(__file__).resolve().parent.parent / "frontend"
SWEEP_SECONDS = 60.0
"""How often local mode runs the sweeper (on AWS a schedule runs it every few minutes)."""


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str


def new_password() -> str:
    """A random password that meets the pool's policy (length, upper and lower case, a digit)."""
    return f"{secrets.token_urlsafe(12)}-Aa1"


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
        wrap_launcher: Callable[[LambdaHandler, LocalPipeline], LambdaHandler] | None = None,
        minute_seconds: float = 60.0,
        sweep_seconds: float | None = SWEEP_SECONDS,
        host: str = HOST,
        call_log: CallLog | None = None,
    ) -> None:
        """`port=0` picks a free port. `wrap_launcher(handler, pipeline)` returns what the stream poller calls
        instead of the launcher (fault injection in tests); `minute_seconds` is how long a minute of
        `shutdown -h +N` lasts (60; tests shorten it to see the watchdog fire); `sweep_seconds` is the sweeper's
        period (None: no sweeper); `call_log` records every AWS call each function and each VM makes."""
        self.port = port
        self.settings = settings or StackSettings()
        self.stack_name = stack
        self.frontend_dir = Path(frontend_dir)
        self.wrap_launcher = wrap_launcher
        self.minute_seconds = minute_seconds
        self.sweep_seconds = sweep_seconds
        self.host = host
        self.call_log = call_log
        self.sweeper: Schedule | None = None
        self.web: BackgroundServer | None = None
        self.moto = MotoServer(host, env={ENV_ALLOWED_EMAIL_DOMAINS: ",".join(self.settings.allowed_email_domains)})
        self.metadata: BackgroundServer | None = None
        self.poller: StreamPoller | None = None
        self.vmhost: VmHost | None = None
        self.session: EndpointSession | None = None
        self._stack: LocalStack | None = None
        self.api_services: ApiServices | None = None
        self.launcher_services: LauncherServices | None = None
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
    def emulator_pid(self) -> int:
        """The emulator's process (the benchmarks read its CPU time)."""
        if self.moto.process is None:
            raise RuntimeError("the pipeline is not started")
        return self.moto.process.pid

    @property
    def stack(self) -> LocalStack:
        if self._stack is None:
            raise RuntimeError("the pipeline is not started")
        return self._stack

    def create_user(self, email: str, password: str | None = None) -> Credentials:
        """A confirmed user of this stack's pool, as an operator creates one (`admin-create-user`, then a permanent
        password); a generated password unless one is given."""
        cognito = self.client("cognito-idp")
        password = password or new_password()
        cognito.admin_create_user(
            UserPoolId=self.stack.user_pool_id, Username=email, MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
        )
        cognito.admin_set_user_password(UserPoolId=self.stack.user_pool_id, Username=email, Password=password,
                                        Permanent=True)
        return Credentials(email, password)

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

        def vm_terminated(instance_id: str) -> None:
            """The EventBridge rule's delivery: EC2 state-change event -> slot release function."""
            self._release_handler(instance_state_change(instance_id, "terminated", REGION), None)

        self.vmhost = VmHost(
            ec2=self.client("ec2"), dynamodb=self.client("dynamodb"), table=self._stack.table,
            aws_env={**aws_environment(self.endpoint_url, REGION),
                     **(self.call_log.vm_environment() if self.call_log else {})},
            region=REGION,
            metadata_url=lambda: self.metadata.url if self.metadata else "", minute_seconds=self.minute_seconds,
            on_terminated=vm_terminated,
        )
        self.vmhost.watch_terminations(self.session.events)  # before any stack client is made: each one copies it

        self._health_s3 = self.session.client("s3")
        self.api_services = ApiServices.create(self._stack.api_config(), client=self.session.client)
        self.launcher_services = LauncherServices.create(self._stack.launcher_config(), client=self.session.client)
        if self.call_log is not None:
            for client in (self.api_services.ddb, self.api_services.s3, self.launcher_services.ec2,
                           self.launcher_services.ddb, self.launcher_services.s3):
                self.call_log.watch(client)
        handlers = {name: self._api_handler(router) for name, router in ROUTERS.items()}
        unwrapped: LambdaHandler = self._launcher_handler
        launcher_handler = self.wrap_launcher(unwrapped, self) if self.wrap_launcher is not None else unwrapped

        self.metadata = BackgroundServer(MetadataApp(self.vmhost, REGION), self.host, 0, name="imds")
        self.metadata.start()
        self.vmhost.start()
        streams = self.client("dynamodbstreams")
        if self.call_log is not None:  # the event source mapping reads the stream with the launcher's role
            self.call_log.watch(streams, function="launcher")
        self.poller = StreamPoller(streams=streams, stream_arn=self._stack.stream_arn,
                                   handler=launcher_handler, region=REGION, observer=TransitionLog())
        self.poller.start()
        if self.sweep_seconds is not None:
            self.sweeper = Schedule("sweeper", self._sweeper_handler, self.sweep_seconds, REGION)
            self.sweeper.start()
        stack = self._stack
        self.web.server.app = LocalWebApp(
            routes=ROUTES, handlers=handlers, frontend_dir=self.frontend_dir,
            site_config=site_config(self.settings, region=REGION, user_pool_id=stack.user_pool_id,
                                    client_id=stack.client_id, auth_endpoint=self.endpoint_url),
            emulator_health=self._emulator_health,
            authorizer=JwtAuthorizer(jwks_url(self.endpoint_url, stack.user_pool_id),
                                     issuer=issuer(REGION, stack.user_pool_id), audience=stack.client_id),
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

    # -- the functions, bound to this pipeline's services -----------------------------------------------------------
    def sweep(self, now: datetime | None = None) -> sweeper.SweepReport:
        """One sweep now, as the schedule runs it; `now` moves the sweeper's clock (to see deadlines pass)."""
        with self._acting("sweeper"):
            return sweeper.sweep(self.launcher_services, now)

    @contextlib.contextmanager
    def _acting(self, function: str) -> Iterator[None]:
        """Attribute the AWS calls made inside to `function` (when this pipeline keeps a call log)."""
        with self.call_log.acting_as(function) if self.call_log else contextlib.nullcontext():
            yield

    def _api_handler(self, router: Router[ApiServices]) -> LambdaHandler:
        def handler(event: Mapping[str, Any], context: Any) -> Any:
            with self._acting(router.function):
                return router.resolve(event, self.api_services)
        return handler

    def _launcher_handler(self, event: Mapping[str, Any], context: Any) -> Any:
        """Reads `launcher_services` at each call, so a test can swap a client (fault injection)."""
        with self._acting("launcher"):
            return launcher.handle(event, self.launcher_services)

    def _release_handler(self, event: Mapping[str, Any], context: Any) -> Any:
        with self._acting("release"):
            return release.handle(event, self.launcher_services)

    def _sweeper_handler(self, event: Mapping[str, Any], context: Any) -> Any:
        return self.sweep()

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

