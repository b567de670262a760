"""The IAM roles the program creates, each under the stack's role path and with its permissions boundary when the
stack sets them (`rolePath`, `permissionsBoundary`: deploy/ci-identity's deploy roles may create no other kind)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components import iam
from stackspec.settings import StackSettings


def service_role(name: str, service: str, settings: StackSettings, opts: pulumi.ResourceOptions) -> aws.iam.Role:
    """A role `service` (e.g. `lambda.amazonaws.com`) assumes, bounded as the stack's config says."""
    return aws.iam.Role(
        name,
        assume_role_policy=iam.assume_role_policy(service),
        path=settings.role_path or None,
        permissions_boundary=settings.permissions_boundary or None,
        opts=opts,
    )


def instance_profile(
    name: str, role: aws.iam.Role, settings: StackSettings, opts: pulumi.ResourceOptions
) -> aws.iam.InstanceProfile:
    """An instance profile for `role`, under the same path (the deploy roles manage profiles there only)."""
    return aws.iam.InstanceProfile(name, role=role.name, path=settings.role_path or None, opts=opts)
