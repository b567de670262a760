"""One source for filepipe's config keys, defaults, limits and fixed names.

Both the Pulumi program (`__main__.py`, components) and local mode (`local/`) build their resources from here, so a
limit or a name cannot differ between AWS and a laptop. This module must not import Pulumi.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from handlers import config as env_names
from handlers import jobmodel

PROJECT = "filepipe"
WORKER_SCRIPT_KEY = "worker/worker.py"
"""Object key of the worker script in the data bucket."""
STACK_TAG = jobmodel.STACK_TAG
API_PREFIX = "/api"

INSERT_FILTER: dict[str, Any] = {"eventName": ["INSERT"]}
"""Stream records of new jobs."""
LAUNCHER_EVENT_FILTERS: tuple[dict[str, Any], ...] = (INSERT_FILTER,)
"""Stream records the launcher receives: new jobs only (Lambda drops every other record before invoking; local mode
applies the same patterns). A job's end needs no record: its VM slot is freed by the VM's termination event."""
INSTANCE_TERMINATED_PATTERN: dict[str, Any] = {
    "source": ["aws.ec2"],
    "detail-type": ["EC2 Instance State-change Notification"],
    "detail": {"state": ["terminated"]},
}
"""EventBridge pattern of the events that bring a terminated VM's id to the launcher, which frees its slot."""
STREAM_BATCH_SIZE = 10
"""Most stream records per launcher invocation."""
STREAM_MAX_RETRIES = 5
"""Retries of a failed stream record before it goes to the on-failure queue (Lambda's default is unbounded)."""

VPC_CIDR = "10.42.0.0/16"
SUBNET_CIDRS = ("10.42.0.0/20", "10.42.16.0/20")
"""One private subnet in each of two availability zones, 4091 addresses each: a subnet's free addresses cap the VMs
that can run in it (and moto never frees a terminated instance's address, so a long local run needs many)."""

LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)
"""The values CloudWatch Logs accepts for a log group's retention."""
NO_RESERVATION = -1
"""A reserved-concurrency setting meaning "draw from the account's unreserved pool" (pulumi-aws's own default)."""
MAX_SWEEP_INTERVAL_MINUTES = 60
JOB_EXPIRY_ATTR = "expires_at"
"""Number attribute (epoch seconds) that the jobs table's TTL reads when `retention_days` is set. No writer sets it
yet: a job's final write (worker SUCCEEDED/FAILED, launcher and sweeper FAILED) would add `finished + retention`."""

MIB = 1024 * 1024
S3_SINGLE_POST_LIMIT = 5 * 1024 * MIB
"""A presigned POST uploads one object in one request, which S3 caps at 5 GB."""

T = TypeVar("T")


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
    protect_data: bool = False
    """Keep the data bucket and the jobs table through `pulumi destroy` and refuse their replacement: `protect`,
    `retain_on_delete`, DynamoDB deletion protection, and no `force_destroy` (a production stack)."""
    retention_days: int = 0
    """Days after which inputs, outputs and logs expire (S3 lifecycle); it also enables the jobs table's TTL on
    `JOB_EXPIRY_ATTR`, which the final status writes do not set yet. 0 keeps everything."""

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
        if self.retention_days < 0:
            problems.append("retentionDays must be 0 (keep forever) or a number of days")
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
    if kind is bool:
        if raw.strip().lower() not in ("true", "false"):
            raise ValueError(f"config {config_key(name)} must be true or false, got {raw!r}")
        return raw.strip().lower() == "true"
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"config {config_key(name)} must be a whole number, got {raw!r}") from None
    return raw


def api_environment(bucket: T, table: T, settings: StackSettings) -> dict[str, T | str]:
    """Environment of the upload and jobs Lambdas (and of the same handlers in local mode)."""
    return {
        env_names.ENV_BUCKET: bucket,
        env_names.ENV_TABLE: table,
        env_names.ENV_MAX_FILE_BYTES: str(settings.max_file_bytes),
        env_names.ENV_MAX_TEXT_LENGTH: str(settings.max_text_length),
        env_names.ENV_UPLOAD_EXPIRY: str(settings.upload_expiry_seconds),
        env_names.ENV_DOWNLOAD_EXPIRY: str(settings.download_expiry_seconds),
    }


def launcher_environment(
    table: T, launch_template_id: T, subnet_ids: T, *, stack: str, settings: StackSettings
) -> dict[str, T | str]:
    """Environment of the launcher and sweeper Lambdas; `subnet_ids` is a comma-separated list."""
    return {
        env_names.ENV_TABLE: table,
        env_names.ENV_LAUNCH_TEMPLATE_ID: launch_template_id,
        env_names.ENV_SUBNET_IDS: subnet_ids,
        env_names.ENV_MAX_CONCURRENT_VMS: str(settings.max_concurrent_vms),
        env_names.ENV_JOB_TIMEOUT: str(settings.job_timeout_minutes),
        env_names.ENV_STACK: stack,
    }


def site_config(settings: StackSettings) -> dict[str, Any]:
    """The form's `config.json`: the limits it checks before asking the API."""
    return {
        "apiBase": API_PREFIX,
        "maxFileBytes": settings.max_file_bytes,
        "maxTextLength": settings.max_text_length,
        "retentionDays": settings.retention_days,
    }


def settings_from_mapping(values: Mapping[str, str]) -> StackSettings:
    """Settings from a plain mapping of camelCase keys (environment-style overrides in local mode and tests)."""
    return StackSettings.from_config(values.get)


def table_definition(table: str) -> dict[str, Any]:
    """The jobs table as CreateTable arguments: `id` hash key, on-demand, NEW_IMAGE stream, newest-first index."""
    return {
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": jobmodel.LIST_KEY_ATTR, "AttributeType": "S"},
            {"AttributeName": "created_at", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": jobmodel.JOBS_INDEX,
                "KeySchema": [
                    {"AttributeName": jobmodel.LIST_KEY_ATTR, "KeyType": "HASH"},
                    {"AttributeName": "created_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": jobmodel.STATUS_INDEX,
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "created_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    }


def cors_rules(origins: list[str]) -> list[dict[str, Any]]:
    """The data bucket's CORS: the site origin(s) may POST presigned uploads, nothing else."""
    return [
        {
            "AllowedOrigins": origins,
            "AllowedMethods": ["POST"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 3600,
        }
    ]
