"""One source for filepipe's config keys, defaults, limits and fixed names.

Both the Pulumi program (`__main__.py`, components) and local mode (`local/`) build their resources from here, so a
limit or a name cannot differ between AWS and a laptop. This module must not import Pulumi.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from handlers import jobmodel
from handlers.config import ApiConfig, LauncherConfig

PROJECT = "filepipe"
WORKER_SCRIPT_KEY = "worker/worker.py"
"""Object key of the worker script in the data bucket."""
STACK_TAG = jobmodel.STACK_TAG
API_PREFIX = "/api"

LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)
"""The values CloudWatch Logs accepts for a log group's retention."""
NO_RESERVATION = -1
"""A reserved-concurrency setting meaning "draw from the account's unreserved pool" (pulumi-aws's own default)."""
MAX_SWEEP_INTERVAL_MINUTES = 60

MIB = 1024 * 1024
S3_SINGLE_POST_LIMIT = 5 * 1024 * MIB
"""A presigned POST uploads one object in one request, which S3 caps at 5 GB."""

@dataclass(frozen=True)
class StackSettings:
    """Every tunable of a stack. Field names map to camelCase `pulumi config` keys (`max_file_mb` -> `maxFileMb`)."""

    instance_type: str = "t4g.micro"
    ami_parameter: str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
    max_file_mb: int = 10
    max_text_length: int = 2000
    max_concurrent_vms: int = 4
    job_timeout_minutes: int = 15
    log_retention_days: int = 14
    upload_expiry_seconds: int = 300
    download_expiry_seconds: int = 300
    api_throttle_rate: int = 20
    api_throttle_burst: int = 40
    api_reserved_concurrency: int = 20
    """Reserved (guaranteed and maximum) concurrency of each API function (upload, jobs). At the stage's default
    20 requests/s and well under a second each, a handful run at once; 20 leaves room for slow S3 calls while a
    flood of requests cannot take the account's whole Lambda concurrency. `NO_RESERVATION` (-1) turns it off."""
    launcher_reserved_concurrency: int = 2
    """Reserved concurrency of the launcher, and of the sweeper (the two functions that start VMs).

    The VM cap does not depend on it: VM slots and job claims are conditional writes, so any number of concurrent
    launchers keeps at most `max_concurrent_vms` VMs. It only bounds how much of the account's concurrency they
    can take. The stream mapping runs one batch per stream shard at a time and a small jobs table has one or a few
    shards, so 2 lets two batches (or a split shard's parent and child, or two overlapping sweeps) run together;
    a batch throttled beyond that waits and is retried by the mapping. 1 would serialise every launch behind the
    slowest RunInstances retry; more buys little, as each invocation is a few writes and at most a few launches."""
    sweep_interval_minutes: int = 2
    """How often the sweeper runs (an EventBridge rule on AWS): at most this late, an overdue VM is terminated, a
    stuck job failed, a leaked VM slot freed and the queue moved."""
    extra_origins: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.max_file_bytes <= S3_SINGLE_POST_LIMIT:
            problems.append(f"maxFileMb must be between 1 and {S3_SINGLE_POST_LIMIT // MIB}")
        for name in ("max_text_length", "max_concurrent_vms", "job_timeout_minutes", "log_retention_days",
                     "upload_expiry_seconds", "download_expiry_seconds", "api_throttle_rate", "api_throttle_burst"):
            if getattr(self, name) < 1:
                problems.append(f"{config_key(name)} must be at least 1")
        if self.log_retention_days >= 1 and self.log_retention_days not in LOG_RETENTION_DAYS:
            problems.append(f"logRetentionDays must be one of {', '.join(map(str, LOG_RETENTION_DAYS))} "
                            f"(the values CloudWatch Logs accepts); got {self.log_retention_days}")
        for name in ("api_reserved_concurrency", "launcher_reserved_concurrency"):
            value = getattr(self, name)
            if value != NO_RESERVATION and value < 1:
                problems.append(f"{config_key(name)} must be at least 1, or {NO_RESERVATION} for no reservation "
                                f"(0 would stop the function)")
        if not 1 <= self.sweep_interval_minutes <= MAX_SWEEP_INTERVAL_MINUTES:
            problems.append(f"sweepIntervalMinutes must be between 1 and {MAX_SWEEP_INTERVAL_MINUTES}")
        if problems:
            raise ValueError("invalid filepipe config: " + "; ".join(problems))

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * MIB

    @classmethod
    def from_config(cls, get: Callable[[str], str | None]) -> StackSettings:
        """Build settings from a lookup such as `pulumi.Config("filepipe").get`; absent keys keep their default."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = get(config_key(f.name))
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw, type(getattr(cls(), f.name)))
        return cls(**values)


def config_key(field_name: str) -> str:
    """`max_file_mb` -> `maxFileMb`."""
    head, *rest = field_name.split("_")
    return head + "".join(part.title() for part in rest)


def _parse(name: str, raw: str, kind: type) -> Any:
    if kind is tuple:
        value = json.loads(raw) if raw.lstrip().startswith("[") else [o.strip() for o in raw.split(",")]
        return tuple(str(v) for v in value if v)
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"config {config_key(name)} must be a whole number, got {raw!r}") from None
    return raw


def api_config(bucket: str, table: str, settings: StackSettings) -> ApiConfig:
    """Config of the upload and jobs handlers (their Lambda environment is its `to_env()`)."""
    return ApiConfig(
        bucket=bucket,
        table=table,
        max_file_bytes=settings.max_file_bytes,
        max_text_length=settings.max_text_length,
        upload_expiry_seconds=settings.upload_expiry_seconds,
        download_expiry_seconds=settings.download_expiry_seconds,
    )


def launcher_config(
    table: str, launch_template_id: str, subnet_ids: Sequence[str], *, stack: str, settings: StackSettings
) -> LauncherConfig:
    """Config of the launcher and the sweeper (their Lambda environment is its `to_env()`)."""
    return LauncherConfig(
        table=table,
        launch_template_id=launch_template_id,
        subnet_ids=tuple(subnet_ids),
        max_concurrent_vms=settings.max_concurrent_vms,
        job_timeout_minutes=settings.job_timeout_minutes,
        stack=stack,
    )


def site_config(settings: StackSettings) -> dict[str, Any]:
    """The form's `config.json`: the limits it checks before asking the API."""
    return {
        "apiBase": API_PREFIX,
        "maxFileBytes": settings.max_file_bytes,
        "maxTextLength": settings.max_text_length,
    }


def settings_from_mapping(values: Mapping[str, str]) -> StackSettings:
    """Settings from a plain mapping of camelCase keys (environment-style overrides in local mode and tests)."""
    return StackSettings.from_config(values.get)
