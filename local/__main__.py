"""`python -m local` (what `make dev` runs): the whole pipeline on 127.0.0.1 until Ctrl-C or SIGTERM.

Environment: `PORT` (default 8000) for the site; `BIND_ADDRESS` (default 127.0.0.1, loopback) for the site, the
emulator and the metadata service; any stack setting as `FILEPIPE_<FIELD>` in upper snake case, e.g.
`FILEPIPE_MAX_FILE_MB=50` or `FILEPIPE_JOB_TIMEOUT_MINUTES=5` (the same keys as `pulumi config`, `maxFileMb`...).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import fields
from types import FrameType

from local.app import LocalPipeline
from local.emulator import HOST
from local.logs import OneLineFormatter
from stackspec.settings import StackSettings, config_key, settings_from_mapping

log = logging.getLogger("filepipe.local")
DEFAULT_PORT = 8000
ENV_PREFIX = "FILEPIPE_"
DEMO_EMAIL = "demo@example.com"
"""The account `make dev` creates, with a new password each start (`example.com` is reserved: mail to it goes
nowhere)."""


BIND_VARIABLE = "BIND_ADDRESS"
SINGLE_USER_NOTICE = (
    "This is a single-user development stack: its AWS emulator holds every user's data (files, jobs, accounts) and "
    "accepts the fake credentials written in this repository, so anyone who can reach it can read or change all of "
    "it. It listens on {host}{where}.")


def bind_address(env: Mapping[str, str]) -> str:
    """Where local mode listens: loopback unless `BIND_ADDRESS` says otherwise (an IP address)."""
    value = env.get(BIND_VARIABLE) or HOST
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{BIND_VARIABLE} must be an IP address such as 127.0.0.1, not {value!r}") from None
    return value


def startup_notice(host: str) -> str:
    """What local mode says at start about who can reach it."""
    loopback = ipaddress.ip_address(host).is_loopback
    where = " (loopback: only this machine)" if loopback else (
        ", not loopback: other machines that can reach this address can use it, and the emulator")
    return SINGLE_USER_NOTICE.format(host=host, where=where)


def settings_from_environment(env: Mapping[str, str]) -> StackSettings:
    """`FILEPIPE_MAX_FILE_MB=50` -> `maxFileMb=50`, through the same parser as `pulumi config`."""
    values = {config_key(f.name): env[ENV_PREFIX + f.name.upper()]
              for f in fields(StackSettings) if ENV_PREFIX + f.name.upper() in env}
    return settings_from_mapping(values)


def configure_logging() -> None:
    """One readable line per record on stdout, control characters escaped (`local.logs.OneLineFormatter`)."""
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(OneLineFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[console])
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> int:
    configure_logging()
    port = int(os.environ.get("PORT") or DEFAULT_PORT)
    try:
        settings = settings_from_environment(os.environ)
        host = bind_address(os.environ)
    except ValueError as error:
        print(f"filepipe: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    pipeline = LocalPipeline(port=port, settings=settings, host=host)
    try:
        pipeline.start()
    except OSError as error:
        print(f"filepipe: cannot start the local stack on port {port}: {error}", file=sys.stderr)
        return 1
    try:
        demo = pipeline.create_user(DEMO_EMAIL)
        print(f"\n{startup_notice(host)}", flush=True)
        print(f"\nfilepipe is running: open {pipeline.url}/  (AWS emulator: {pipeline.endpoint_url})", flush=True)
        print(f"Sign in as {demo.email} with password {demo.password}", flush=True)
        print("(or sign up with any email: locally, any verification code confirms it)", flush=True)
        print("Press Ctrl-C to stop.\n", flush=True)
        while not stop.wait(0.5):
            pass
        log.info("stopping...")
    finally:
        pipeline.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
