"""An EC2 client whose RunInstances fails as planned, for the launcher's unit tests and the fault tests alike."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

TRANSIENT_MESSAGES = {
    "InsufficientInstanceCapacity": "We currently do not have sufficient t4g.micro capacity in the Availability Zone "
                                    "you requested. Our system will be working on provisioning additional capacity.",
    "RequestLimitExceeded": "Request limit exceeded.",
}
PERMANENT_MESSAGES = {
    "UnauthorizedOperation": "You are not authorized to perform this operation.",
    "InvalidLaunchTemplateId.NotFound": "The specified launch template does not exist.",
}


def run_instances_error(code: str) -> ClientError:
    message = {**TRANSIENT_MESSAGES, **PERMANENT_MESSAGES}[code]
    return ClientError({"Error": {"Code": code, "Message": message}}, "RunInstances")


class FlakyEc2:
    """An EC2 client whose next `run_instances` calls raise the planned errors; every other call goes through."""

    def __init__(self, real: Any, errors: Iterable[str]) -> None:
        self.real = real
        self.planned = list(errors)
        self.planned_codes = tuple(self.planned)
        self.calls: list[tuple[str, str | None]] = []
        """(ClientToken = job id, error code or None) per RunInstances call."""
        self._lock = threading.Lock()

    def run_instances(self, **kwargs: Any) -> Any:
        with self._lock:
            code = self.planned.pop(0) if self.planned else None
            self.calls.append((kwargs.get("ClientToken", ""), code))
        if code is not None:
            raise run_instances_error(code)
        return self.real.run_instances(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def attempts(self, job_id: str) -> list[str | None]:
        with self._lock:
            return [code for token, code in self.calls if token == job_id]

    @property
    def codes(self) -> list[str | None]:
        with self._lock:
            return [code for _, code in self.calls]
