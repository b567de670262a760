"""The configuration each Lambda receives as environment variables, written and read by one class.

The Pulumi program and local mode build an `ApiConfig` or `LauncherConfig` from the stack's settings and call
`to_env()`; the function calls `from_env()` on its first invocation. Both directions sit side by side, so a variable
cannot be written under one name and read under another. The handlers are packaged alone: this module imports
nothing outside this folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

ENV_BUCKET = "BUCKET_NAME"
ENV_TABLE = "TABLE_NAME"
ENV_MAX_FILE_BYTES = "MAX_FILE_BYTES"
ENV_MAX_TEXT_LENGTH = "MAX_TEXT_LENGTH"
ENV_UPLOAD_EXPIRY = "UPLOAD_EXPIRY_SECONDS"
ENV_DOWNLOAD_EXPIRY = "DOWNLOAD_EXPIRY_SECONDS"
ENV_LAUNCH_TEMPLATE_ID = "LAUNCH_TEMPLATE_ID"
ENV_SUBNET_IDS = "SUBNET_IDS"
ENV_MAX_CONCURRENT_VMS = "MAX_CONCURRENT_VMS"
ENV_JOB_TIMEOUT = "JOB_TIMEOUT_MINUTES"
ENV_STACK = "STACK_NAME"
ENV_MAX_ACTIVE_JOBS = "MAX_ACTIVE_JOBS_PER_USER"
ENV_RETENTION_DAYS = "RETENTION_DAYS"
ENV_UPLOAD_GRANTS_PER_HOUR = "UPLOAD_GRANTS_PER_HOUR"
DEFAULT_UPLOAD_GRANTS_PER_HOUR = 30


@dataclass(frozen=True)
class ApiConfig:
    """What the API handlers (upload, jobs, manage) need to know about their stack."""

    bucket: str
    table: str
    max_file_bytes: int
    max_text_length: int
    upload_expiry_seconds: int
    download_expiry_seconds: int
    max_active_jobs: int
    max_concurrent_vms: int
    """How many VM slots there are: deleting a job reads them, to refuse while the job's VM still holds one."""
    upload_grants_per_hour: int = DEFAULT_UPLOAD_GRANTS_PER_HOUR
    """Upload grants (presigned POSTs) one user may have per clock hour (`handlers.grants`)."""

    def to_env(self) -> dict[str, str]:
        return {
            ENV_BUCKET: self.bucket,
            ENV_TABLE: self.table,
            ENV_MAX_FILE_BYTES: str(self.max_file_bytes),
            ENV_MAX_TEXT_LENGTH: str(self.max_text_length),
            ENV_UPLOAD_EXPIRY: str(self.upload_expiry_seconds),
            ENV_DOWNLOAD_EXPIRY: str(self.download_expiry_seconds),
            ENV_MAX_ACTIVE_JOBS: str(self.max_active_jobs),
            ENV_MAX_CONCURRENT_VMS: str(self.max_concurrent_vms),
            ENV_UPLOAD_GRANTS_PER_HOUR: str(self.upload_grants_per_hour),
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ApiConfig:
        """Read the config; a missing variable raises KeyError naming it."""
        return cls(
            bucket=env[ENV_BUCKET],
            table=env[ENV_TABLE],
            max_file_bytes=int(env[ENV_MAX_FILE_BYTES]),
            max_text_length=int(env[ENV_MAX_TEXT_LENGTH]),
            upload_expiry_seconds=int(env[ENV_UPLOAD_EXPIRY]),
            download_expiry_seconds=int(env[ENV_DOWNLOAD_EXPIRY]),
            max_active_jobs=int(env[ENV_MAX_ACTIVE_JOBS]),
            max_concurrent_vms=int(env[ENV_MAX_CONCURRENT_VMS]),
            upload_grants_per_hour=int(env[ENV_UPLOAD_GRANTS_PER_HOUR]),
        )


@dataclass(frozen=True)
class LauncherConfig:
    """What the launcher and the sweeper need: the table, where VMs start, how many at once and for how long."""

    table: str
    launch_template_id: str
    subnet_ids: tuple[str, ...]
    max_concurrent_vms: int
    job_timeout_minutes: int
    stack: str
    retention_days: int = 0
    """Days a finished job's record is kept (then DynamoDB's TTL deletes it); 0 keeps it for ever."""

    def to_env(self) -> dict[str, str]:
        return {
            ENV_TABLE: self.table,
            ENV_LAUNCH_TEMPLATE_ID: self.launch_template_id,
            ENV_SUBNET_IDS: ",".join(self.subnet_ids),
            ENV_MAX_CONCURRENT_VMS: str(self.max_concurrent_vms),
            ENV_JOB_TIMEOUT: str(self.job_timeout_minutes),
            ENV_STACK: self.stack,
            ENV_RETENTION_DAYS: str(self.retention_days),
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> LauncherConfig:
        subnets = tuple(s for s in env[ENV_SUBNET_IDS].split(",") if s)
        if not subnets:
            raise ValueError(f"{ENV_SUBNET_IDS} names no subnet")
        return cls(
            table=env[ENV_TABLE],
            launch_template_id=env[ENV_LAUNCH_TEMPLATE_ID],
            subnet_ids=subnets,
            max_concurrent_vms=int(env[ENV_MAX_CONCURRENT_VMS]),
            job_timeout_minutes=int(env[ENV_JOB_TIMEOUT]),
            stack=env[ENV_STACK],
            retention_days=int(env[ENV_RETENTION_DAYS]),
        )
