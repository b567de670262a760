"""What a handler works with: its config and its boto3 clients, built once per warm container on first use.

Importing a handler module builds nothing (the idea of Flask's `create_app`): the Lambda entry points call the cached
factories below on their first invocation, while tests and local mode build `ApiServices` / `LauncherServices`
themselves with explicit config and clients, so two stacks can run in one process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from handlers.config import ApiConfig, LauncherConfig

ClientFactory = Callable[..., Any]
"""`boto3.client`-like: `(service_name, config=...) -> client`."""

PRESIGNING = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
"""SigV4 presigning (boto3 still presigns with SigV2 in older regions, which buckets made after June 2020 refuse) on
the bucket's regional host (the global one answers 307 for up to a day after the bucket is created). An IP endpoint,
as in local mode, stays path-style."""


@dataclass(frozen=True)
class ApiServices:
    """Config and clients of the upload and jobs handlers."""

    config: ApiConfig
    ddb: Any
    s3: Any

    @classmethod
    def create(cls, config: ApiConfig, client: ClientFactory = boto3.client) -> ApiServices:
        return cls(config=config, ddb=client("dynamodb"), s3=client("s3", config=PRESIGNING))


@dataclass(frozen=True)
class LauncherServices:
    """Config and clients of the launcher and the sweeper."""

    config: LauncherConfig
    ec2: Any
    ddb: Any

    @classmethod
    def create(cls, config: LauncherConfig, client: ClientFactory = boto3.client) -> LauncherServices:
        return cls(config=config, ec2=client("ec2"), ddb=client("dynamodb"))


@functools.cache
def api_services() -> ApiServices:
    """The Lambda's services, from its environment; a missing variable fails the first invocation, naming it."""
    return ApiServices.create(ApiConfig.from_env())


@functools.cache
def launcher_services() -> LauncherServices:
    return LauncherServices.create(LauncherConfig.from_env())
