"""Environment variables the Lambdas receive, read once per container.

The Pulumi program and local mode build these variables with `components.settings`; the names live here
because the handlers are packaged alone and may import nothing outside this folder.
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


@dataclass(frozen=True)
class ApiConfig:
    """What the upload and jobs handlers need to know about their stack."""

    bucket: str
    table: str
    max_file_bytes: int
    max_text_length: int
    upload_expiry_seconds: int
    download_expiry_seconds: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ApiConfig:
        """Read the config; a missing variable raises KeyError naming it, at import time."""
        return cls(
            bucket=env[ENV_BUCKET],
            table=env[ENV_TABLE],
            max_file_bytes=int(env[ENV_MAX_FILE_BYTES]),
            max_text_length=int(env[ENV_MAX_TEXT_LENGTH]),
            upload_expiry_seconds=int(env[ENV_UPLOAD_EXPIRY]),
            download_expiry_seconds=int(env[ENV_DOWNLOAD_EXPIRY]),
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
        )
