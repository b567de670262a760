"""The Python the worker runs on in local mode and in its tests: AL2023's Python 3.9 with the boto3 its repositories
ship, as `make` builds it in `.venv-worker` (pins and their source: `worker/requirements.txt`).

`FILEPIPE_WORKER_PYTHON` names the interpreter (the Makefile sets it); without it, `.venv-worker/bin/python` of this
repository. A machine without Python 3.9 has neither: local mode then runs the worker on its own interpreter (and
says so) and the worker's tests skip, unless `FILEPIPE_REQUIRE_WORKER_PY39=1` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path

ENV = "FILEPIPE_WORKER_PYTHON"
REQUIRE_ENV = "FILEPIPE_REQUIRE_WORKER_PY39"
DEFAULT = Path(__file__).resolve().parents[1] / ".venv-worker" / "bin" / "python"
VERSION = (3, 9)
"""Amazon Linux 2023's system Python for its whole life."""
MISSING = (f"no Python 3.9 worker environment (${ENV}, else {DEFAULT}): `make .venv-worker/bin/activate` builds "
           "it from pyenv's ~/.pyenv/versions/3.9.* or a python3.9 on PATH")


def worker_python(env: Mapping[str, str] = os.environ) -> str | None:
    """The worker's interpreter, or None when this machine has none that is Python 3.9."""
    candidate = env.get(ENV) or str(DEFAULT)
    return candidate if _is_python39(candidate) else None


@cache
def _is_python39(path: str) -> bool:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return False
    found = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                           text=True, timeout=30, check=False)
    return found.returncode == 0 and found.stdout.strip() == ".".join(map(str, VERSION))


def required(env: Mapping[str, str] = os.environ) -> bool:
    """CI's flag: a missing worker environment fails the worker's tests instead of skipping them."""
    return env.get(REQUIRE_ENV) == "1"
