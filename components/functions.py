"""A Python Lambda function packaged from `handlers/`, with its own role, inline policy and log group."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.roles import service_role
from stackspec.settings import StackSettings

HANDLERS_DIR = Path(__file__).resolve().parent.parent / "handlers"
PACKAGE = HANDLERS_DIR.name
RUNTIME = aws.lambda_.Runtime.PYTHON3D14
"""Newest Python runtime pulumi-aws knows; the handlers use only the standard library and the runtime's boto3."""
ARCHITECTURE = "arm64"


def handler_path(module: str) -> str:
    """`upload` -> `handlers.upload.handler`."""
    return f"{PACKAGE}.{module}.handler"


def handlers_archive() -> pulumi.AssetArchive:
    """The `handlers` package as a zip: its `.py` files only.

    A whole-folder `FileArchive` would also pack `__pycache__`, whose bytes differ per machine and Python version,
    so every `pulumi up` after running the tests would redeploy every function.
    """
    return pulumi.AssetArchive({
        f"{PACKAGE}/{path.name}": pulumi.FileAsset(str(path)) for path in sorted(HANDLERS_DIR.glob("*.py"))
    })


@dataclass
class PythonFunction:
    function: aws.lambda_.Function
    role: aws.iam.Role
    role_policy: aws.iam.RolePolicy
    log_group: aws.cloudwatch.LogGroup


def python_function(
    name: str,
    parent: pulumi.Resource,
    *,
    module: str,
    environment: pulumi.Input[Mapping[str, str]],
    policy: Callable[[pulumi.Output[str]], pulumi.Output[str]],
    log_retention_days: int,
    reserved_concurrency: int,
    timeout_seconds: int,
    settings: StackSettings,
    memory_mb: int = 256,
) -> PythonFunction:
    """Function `name` running `handlers.<module>.handler`; `policy(log_group_arn)` builds its role's only policy.

    `timeout_seconds` is derived from the function's AWS call limits (`handlers.services.function_timeout_seconds`).

    `log_retention_days` must be a value CloudWatch accepts (`StackSettings` checks it); `reserved_concurrency` is
    both a guarantee and a ceiling, `settings.NO_RESERVATION` for neither. The role is bounded as `settings` says
    (`components.roles`).
    """
    opts = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(f"{name}-logs", retention_in_days=log_retention_days, opts=opts)
    role = service_role(f"{name}-role", "lambda.amazonaws.com", settings, opts)
    role_policy = aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=policy(log_group.arn), opts=opts)
    function = aws.lambda_.Function(
        name,
        runtime=RUNTIME,
        architectures=[ARCHITECTURE],
        handler=handler_path(module),
        code=handlers_archive(),
        role=role.arn,
        timeout=timeout_seconds,
        memory_size=memory_mb,
        reserved_concurrent_executions=reserved_concurrency,
        environment=aws.lambda_.FunctionEnvironmentArgs(variables=environment),
        logging_config=aws.lambda_.FunctionLoggingConfigArgs(
            log_format="JSON",
            log_group=log_group.name,
            application_log_level="INFO",
            system_log_level="WARN",
        ),
        # Without the policy in place first, the first invocations could fail on missing permissions.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[role_policy]),
    )
    return PythonFunction(function=function, role=role, role_policy=role_policy, log_group=log_group)
