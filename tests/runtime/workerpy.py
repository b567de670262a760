"""The worker's tests run it where it runs on AWS: AL2023's Python 3.9 with the boto3 its repositories ship
(`local/workerpython.py`; `make` builds it). Without one they skip, or fail when CI requires it."""

from __future__ import annotations

import pytest

from local.workerpython import MISSING, required, worker_python


def worker_interpreter() -> str:
    """The worker's Python; skips the test without one (fails it under FILEPIPE_REQUIRE_WORKER_PY39=1)."""
    found = worker_python()
    if found is None:
        if required():
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    return found
