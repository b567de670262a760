"""Render the launch template's user-data for one stack: the single function both Pulumi and local mode call."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from handlers.jobmodel import JOB_ID_TAG

WORKER_SCRIPT_KEY = "worker/worker.py"
"""Object key of the worker script in the data bucket, which the user-data fetches."""
TEMPLATE_PATH = Path(__file__).with_name("user_data.sh")
WORKER_PATH = Path(__file__).with_name("worker.py")
PLACEHOLDER = re.compile(r"__[A-Z_]+__")


def render_user_data(
    *,
    bucket: str,
    table: str,
    timeout_minutes: int,
    script_key: str = WORKER_SCRIPT_KEY,
) -> str:
    """The bash script a worker VM runs at boot, with this stack's names shell-quoted in."""
    if timeout_minutes < 1:
        raise ValueError("timeout_minutes must be at least 1")
    values = {
        "__BUCKET__": shlex.quote(bucket),
        "__TABLE__": shlex.quote(table),
        "__SCRIPT_KEY__": shlex.quote(script_key),
        "__JOB_ID_TAG__": shlex.quote(JOB_ID_TAG),
        "__TIMEOUT_MINUTES__": str(int(timeout_minutes)),
    }
    script = PLACEHOLDER.sub(lambda match: values[match.group(0)], TEMPLATE_PATH.read_text(encoding="utf-8"))
    return script
