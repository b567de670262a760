"""The configuration each Lambda receives as environment variables, written and read by one generic pair.

The Pulumi program and local mode build an `ApiConfig` or `LauncherConfig` from the stack's settings and call
`to_env()`; the function calls `from_env()` on its first invocation. A variable's name is its field's name in upper
case (`max_active_jobs_per_user` -> `MAX_ACTIVE_JOBS_PER_USER`; the idea of Flask's `Config.from_prefixed_env`), so
a field is declared once and no name is written twice; a field that comes from `pulumi config` has the name of its
settings field (`stackspec.settings.StackSettings`), which `stackspec.settings.handler_config` copies by name. The
handlers are packaged alone: this module imports nothing outside this folder.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self

LIST_SEPARATOR = ","
"""How a tuple field is written in one variable (subnet ids contain no comma)."""


def env_name(field_name: str) -> str:
    """`max_file_bytes` -> `MAX_FILE_BYTES`."""
    return field_name.upper()


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return LIST_SEPARATOR.join(value) if isinstance(value, tuple) else str(value)


def _parse(name: str, raw: str, kind: Any) -> object:
    if kind is bool:
        if raw not in {"true", "false"}:
            raise ValueError(f"{name} must be true or false, got {raw!r}")
        return raw == "true"
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if typing.get_origin(kind) is tuple:
        return tuple(item for item in raw.split(LIST_SEPARATOR) if item)
    return raw


class EnvConfig:
    """A frozen dataclass of str, int, bool and tuple[str, ...] fields that travels as environment variables."""

    def to_env(self) -> dict[str, str]:
        return {env_name(f.name): _format(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Self:
        """Read the config; a missing variable raises KeyError naming it, a malformed one ValueError."""
        kinds = typing.get_type_hints(cls)
        return cls(**{f.name: _parse(env_name(f.name), env[env_name(f.name)], kinds[f.name])
                      for f in fields(cls)})


DEFAULT_UPLOAD_GRANTS_PER_HOUR = 30
"""`uploadGrantsPerHour`'s default, here because a config made in a test may leave it out."""


@dataclass(frozen=True)
class ApiConfig(EnvConfig):
    """What the API handlers (upload, jobs, manage) need to know about their stack."""

    bucket: str
    table: str
    max_file_bytes: int
    max_text_length: int
    upload_expiry_seconds: int
    download_expiry_seconds: int
    max_active_jobs_per_user: int
    max_concurrent_vms: int
    """How many VM slots there are: deleting a job reads them, to refuse while the job's VM still holds one."""
    upload_grants_per_hour: int = DEFAULT_UPLOAD_GRANTS_PER_HOUR
    """Upload grants (presigned POSTs) one user may have per clock hour (`handlers.grants`)."""


@dataclass(frozen=True)
class LauncherConfig(EnvConfig):
    """What the launcher and the sweeper need: the table, where VMs start, how many at once and for how long."""

    table: str
    launch_template_id: str
    subnet_ids: tuple[str, ...]
    max_concurrent_vms: int
    job_timeout_minutes: int
    stack_tag: str
    """The `STACK_TAG` value on this deployment's VMs, which the sweeper looks for."""
    retention_days: int = 0
    """Days a finished job's record is kept (then DynamoDB's TTL deletes it); 0 keeps it for ever."""

    def __post_init__(self) -> None:
        if not self.subnet_ids:
            raise ValueError(f"{env_name('subnet_ids')} names no subnet")
