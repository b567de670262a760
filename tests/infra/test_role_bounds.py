"""Every role the program creates, under the stack's role path and with its permissions boundary when the stack
config names them (`rolePath`, `permissionsBoundary`: what deploy/ci-identity's deploy roles require), and the
policy pack's rule that requires them, with its config written from the stack's (`policy/stack_config.py`)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import ResourceValidationArgs
from pulumi_policy.proxy import unknown_checking_proxy

from policy import rules
from policy.stack_config import pack_config
from stackspec.settings import settings_from_mapping
from tests.infra.conftest import ROOT, TUNED, Deployment, Recorded
from tests.infra.test_policy_pack import options, urn, violations

ROLE = "aws:iam/role:Role"
PROFILE = "aws:iam/instanceProfile:InstanceProfile"
PATH, BOUNDARY = TUNED["rolePath"], TUNED["permissionsBoundary"]
RULE = next(p for p in rules.POLICIES if p.name == rules.BOUNDED_ROLES)


def test_every_role_is_under_the_path_with_the_boundary_when_configured(tuned: Deployment) -> None:
    """Regression: a role (or the worker's instance profile) created without the path or the boundary, which
    deploy/ci-identity's deploy roles refuse to create: `pulumi up` fails with AccessDenied on AWS."""
    roles, profiles = tuned.of_type(ROLE), tuned.of_type(PROFILE)
    assert len(roles) >= 7 and profiles
    for role in roles:
        assert (role.inputs.get("path"), role.inputs.get("permissionsBoundary")) == (PATH, BOUNDARY), role.name
        assert role.outputs["arn"].endswith(f":role{PATH}{role.name}-1a2b3c4"), role.name
    assert all(profile.inputs.get("path") == PATH for profile in profiles)


def test_the_worker_role_passed_at_launch_is_the_one_under_the_path(tuned: Deployment) -> None:
    """Regression: the launcher's PassRole naming the role's ARN without its path, which IAM would not match."""
    worker = tuned.one(ROLE, "compute-worker-role").outputs["arn"]
    policy = tuned.one("aws:iam/rolePolicy:RolePolicy", "compute-launcher-policy").policy()
    [passed] = [s["Resource"] for s in policy["Statement"] if s["Sid"] == "PassWorkerRole"]
    assert passed == [worker] and f"role{PATH}" in worker


def test_without_the_config_roles_keep_the_defaults(dev: Deployment) -> None:
    """Regression: a path or boundary forced on a stack an administrator deploys without deploy/ci-identity."""
    for resource in [*dev.of_type(ROLE), *dev.of_type(PROFILE)]:
        assert "path" not in resource.inputs and "permissionsBoundary" not in resource.inputs, resource.name


@pytest.mark.parametrize(("values", "message"), [
    ({"rolePath": "/filepipe/"}, "rolePath and permissionsBoundary go together"),
    ({"permissionsBoundary": BOUNDARY}, "rolePath and permissionsBoundary go together"),
    ({"rolePath": "filepipe", "permissionsBoundary": BOUNDARY}, "rolePath must look like /<name>/"),
    ({"rolePath": "/", "permissionsBoundary": BOUNDARY}, "rolePath must look like /<name>/"),
    ({"rolePath": "/filepipe/", "permissionsBoundary": "filepipe-boundary"}, "permissionsBoundary must be a managed"),
    ({"rolePath": "/filepipe/", "permissionsBoundary": "arn:aws:iam::123:policy/x"}, "permissionsBoundary must be"),
])
def test_a_half_or_malformed_role_bound_is_refused(values: dict[str, str], message: str) -> None:
    """Regression: a path without its boundary (or the reverse), which the deploy roles refuse mid-deploy, or a
    value IAM rejects, found only at `pulumi up`."""
    with pytest.raises(ValueError, match=message):
        settings_from_mapping(values)


def rule_args(
    resource: Recorded, config: dict[str, Any], props: dict[str, Any] | None = None
) -> ResourceValidationArgs:
    inputs = copy.deepcopy(resource.inputs if props is None else props)
    return ResourceValidationArgs(resource.type, unknown_checking_proxy(inputs), urn(resource), resource.name,
                                  options(resource), None, config)


CONFIG = {"rolePath": PATH, "permissionsBoundary": BOUNDARY}


def test_the_pack_passes_the_bounded_program(tuned: Deployment) -> None:
    """Regression: a rule that rejects what the program deploys with the config set."""
    for resource in tuned.resources:
        assert violations(RULE, rule_args(resource, CONFIG)) == [], resource.name


@pytest.mark.parametrize(("token", "name", "key", "value", "expected"), [
    (ROLE, "api-jobs-role", "permissionsBoundary", None, "permissions boundary must be"),
    (ROLE, "api-jobs-role", "permissionsBoundary", "arn:aws:iam::aws:policy/AdministratorAccess",
     "permissions boundary must be"),
    (ROLE, "compute-worker-role", "path", None, "path must be /filepipe/"),
    (ROLE, "compute-worker-role", "path", "/other/", "path must be /filepipe/"),
    (PROFILE, "compute-worker", "path", None, "path must be /filepipe/"),
])
def test_the_pack_reports_a_role_without_path_or_boundary(
    tuned: Deployment, token: str, name: str, key: str, value: str | None, expected: str
) -> None:
    """Regression: a role created another way (not through `components.roles`) with the config set: the preview
    must fail in review rather than `pulumi up` with AccessDenied."""
    resource = tuned.one(token, name)
    props = {k: v for k, v in resource.inputs.items() if k != key}
    if value is not None:
        props[key] = value
    found = violations(RULE, rule_args(resource, CONFIG, props))
    assert any(expected in message and name in message for message in found), found


def test_the_pack_requires_nothing_without_the_config(dev: Deployment) -> None:
    """Regression: the rule failing every preview of a stack deployed without deploy/ci-identity."""
    role = dev.one(ROLE, "api-jobs-role")
    for config in ({}, {"rolePath": "", "permissionsBoundary": ""}):
        assert violations(RULE, rule_args(role, config)) == []


def test_the_pack_config_is_written_from_the_stack_config(tmp_path: Path) -> None:
    """Regression: the rule's config not reaching the pack (the CLI gives the pack no stack config), so a stack with
    a boundary is previewed without the check; or a stack file the program would refuse passing here."""
    assert pack_config(ROOT / "Pulumi.dev.yaml") == {rules.BOUNDED_ROLES: {"rolePath": "", "permissionsBoundary": ""}}
    stack = tmp_path / "Pulumi.bounded.yaml"
    stack.write_text(f"config:\n  aws:region: eu-west-1\n  filepipe:protectData: true\n"
                     f"  filepipe:alarmEmail: ops@example.com\n  filepipe:rolePath: {PATH}\n"
                     f"  filepipe:permissionsBoundary: {BOUNDARY}\n  filepipe:extraOrigins: [https://a.example]\n",
                     encoding="utf-8")
    assert pack_config(stack) == {rules.BOUNDED_ROLES: CONFIG}
    stack.write_text(f"config:\n  filepipe:rolePath: {PATH}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="go together"):
        pack_config(stack)


def test_the_pack_config_command_prints_json_for_a_stack() -> None:
    """Regression: the workflow step (`python -m policy.stack_config <stack>`) failing or printing something the
    Pulumi action cannot read."""
    result = subprocess.run([sys.executable, "-m", "policy.stack_config", "dev"], capture_output=True, text=True,
                            cwd=ROOT, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == {rules.BOUNDED_ROLES}
    # The committed prod stack names no alarm address (its operator sets one): refused in one sentence, as a
    # preview of it would be.
    prod = subprocess.run([sys.executable, "-m", "policy.stack_config", "prod"], capture_output=True, text=True,
                          cwd=ROOT, check=False, timeout=60)
    assert prod.returncode == 2 and "alarmEmail" in prod.stderr and "Traceback" not in prod.stderr, prod.stderr
    missing = subprocess.run([sys.executable, "-m", "policy.stack_config", "staging"], capture_output=True, text=True,
                             cwd=ROOT, check=False, timeout=60)
    assert missing.returncode == 2 and "Pulumi.staging.yaml" in missing.stderr
