"""deploy/ci-identity under mocks: GitHub's OIDC provider, and trust policies that let pull requests assume only
the read-only preview role and only the deploy branch and the prod environment assume the deploy role."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.conftest import ACCOUNT, ROOT, Deployment, RecordingMocks, run_program

PROGRAM = ROOT / "deploy" / "ci-identity" / "__main__.py"
REPO = "repo:octo-org/filepipe"
ISSUER = "token.actions.githubusercontent.com"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
INLINE = "aws:iam/rolePolicy:RolePolicy"


@pytest.fixture(scope="module")
def identity(mocks: RecordingMocks) -> Callable[..., Deployment]:
    def run(**config: str) -> Deployment:
        values = {"subjectPrefix": REPO, **config}
        return run_program(mocks, {f"ci-identity:{key}": value for key, value in values.items()}, path=PROGRAM)

    return run


@pytest.fixture(scope="module")
def ci(identity: Callable[..., Deployment]) -> Deployment:
    return identity()


def trust(deployment: Deployment, role: str) -> dict[str, Any]:
    [statement] = deployment.one(ROLE, role).policy("assumeRolePolicy")["Statement"]
    return statement


def may_assume(statement: dict[str, Any], *, sub: str, aud: str = "sts.amazonaws.com") -> bool:
    """IAM's evaluation of this trust statement's conditions for a token with these claims (StringEquals only)."""
    assert set(statement["Condition"]) == {"StringEquals"}, "only exact matches: no StringLike wildcards"
    wanted = statement["Condition"]["StringEquals"]
    return sub in wanted[f"{ISSUER}:sub"] and aud == wanted[f"{ISSUER}:aud"]


def test_the_github_provider_trusts_the_sts_audience(ci: Deployment) -> None:
    """Regression: a provider for another URL or audience, and every AssumeRoleWithWebIdentity fails."""
    provider = ci.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider", "github").inputs
    assert provider["url"] == f"https://{ISSUER}"
    assert provider["clientIdLists"] == ["sts.amazonaws.com"]
    arn = ci.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider").outputs["arn"]
    for role in ("preview", "deploy"):
        statement = trust(ci, role)
        assert statement["Principal"] == {"Federated": arn}, role
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity", role
        assert statement["Condition"]["StringEquals"][f"{ISSUER}:aud"] == "sts.amazonaws.com", role


def test_pull_requests_may_assume_only_the_preview_role(ci: Deployment) -> None:
    """Regression: a pull request (whose workflow file the author controls) assuming the deploy role, or the
    preview role trusting every branch of the repository or another repository."""
    preview, deploy = trust(ci, "preview"), trust(ci, "deploy")
    assert preview["Condition"]["StringEquals"][f"{ISSUER}:sub"] == [f"{REPO}:pull_request"]
    assert may_assume(preview, sub=f"{REPO}:pull_request")
    assert not may_assume(deploy, sub=f"{REPO}:pull_request")
    assert not may_assume(preview, sub="repo:someone-else/filepipe:pull_request")
    assert not may_assume(preview, sub=f"{REPO}:pull_request", aud="https://github.com/octo-org")


def test_only_the_deploy_branch_and_the_prod_environment_may_deploy(ci: Deployment) -> None:
    """Regression: any branch, or a job in another environment, deploying (and so reaching prod's data)."""
    deploy = trust(ci, "deploy")
    assert deploy["Condition"]["StringEquals"][f"{ISSUER}:sub"] == [
        f"{REPO}:ref:refs/heads/main", f"{REPO}:environment:prod",
    ]
    for sub in (f"{REPO}:ref:refs/heads/feature", f"{REPO}:environment:dev", "repo:octo-org/fork:ref:refs/heads/main"):
        assert not may_assume(deploy, sub=sub), sub


def test_branch_and_environment_come_from_config(identity: Callable[..., Deployment]) -> None:
    """Regression: a repository whose default branch or production environment has another name cannot deploy."""
    deployment = identity(deployBranch="trunk", prodEnvironment="production",
                          subjectPrefix="repo:octo-org@123456/filepipe@789012")
    prefix = "repo:octo-org@123456/filepipe@789012"
    assert trust(deployment, "deploy")["Condition"]["StringEquals"][f"{ISSUER}:sub"] == [
        f"{prefix}:ref:refs/heads/trunk", f"{prefix}:environment:production",
    ]


@pytest.mark.parametrize("prefix", ["octo-org/filepipe", "repo:octo-org/*", "repo:*", "repo:octo-org/filepipe:ref"])
def test_a_subject_prefix_that_would_trust_too_much_is_refused(
    identity: Callable[..., Deployment], prefix: str
) -> None:
    """Regression: a wildcard or malformed prefix that matches other repositories' tokens (or none at all)."""
    with pytest.raises(ValueError, match="subjectPrefix"):
        identity(subjectPrefix=prefix)


def managed(deployment: Deployment, role: str) -> list[str]:
    name = deployment.one(ROLE, role).outputs["name"]
    return [a.inputs["policyArn"] for a in deployment.of_type(ATTACHMENT) if a.inputs["role"] == name]


def test_the_preview_role_reads_but_not_the_users_data(ci: Deployment) -> None:
    """Regression: a preview role that can change the stack, or read users' uploads, outputs and job records."""
    assert managed(ci, "preview") == ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    inline = [p for p in ci.of_type(INLINE) if p.inputs["role"] == "preview-id"]
    assert [p.name for p in inline] == ["preview-no-data"]
    statements = {s["Sid"]: s for s in inline[0].policy()["Statement"]}
    assert all(s["Effect"] == "Deny" for s in statements.values())
    assert statements["NoUserFiles"]["Resource"] == ["arn:aws:s3:::*/inputs/*", "arn:aws:s3:::*/outputs/*"]
    assert set(statements["NoJobRecords"]["Action"]) >= {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"}


def test_the_deploy_role_manages_only_roles_and_instance_profiles_in_iam(ci: Deployment) -> None:
    """Regression: a deploy role with all of IAM (users, access keys, the account's policies), or one that may
    pass roles to any service."""
    assert managed(ci, "deploy") == ["arn:aws:iam::aws:policy/PowerUserAccess"]
    policy = ci.one(INLINE, "deploy-stack-iam")
    assert policy.inputs["role"] == "deploy-id"
    statements = {s["Sid"]: s for s in policy.policy()["Statement"]}
    assert statements["StackRoles"]["Resource"] == [
        f"arn:aws:iam::{ACCOUNT}:role/*", f"arn:aws:iam::{ACCOUNT}:instance-profile/*",
    ]
    actions = set(statements["StackRoles"]["Action"])
    assert all(a.startswith("iam:") and "*" not in a for a in actions)
    assert not {"iam:CreateUser", "iam:CreateAccessKey", "iam:AttachRolePolicy"} & actions
    assert statements["PassStackRoles"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "lambda.amazonaws.com"]}
    }


def test_an_existing_provider_is_reused(identity: Callable[..., Deployment]) -> None:
    """Regression: an account that already has GitHub's provider (one per URL) cannot deploy this program."""
    existing = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
    deployment = identity(existingProviderArn=existing)
    assert deployment.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider") == []
    assert trust(deployment, "deploy")["Principal"] == {"Federated": existing}
    assert deployment.exports["providerArn"] == existing


def test_a_self_managed_backend_is_readable_in_preview_and_writable_in_deploy(
    identity: Callable[..., Deployment]
) -> None:
    """Regression: a preview that cannot read the state or take its lock, or that can overwrite the state."""
    key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    deployment = identity(stateBucket="filepipe-state", secretsKeyArn=key)
    preview = {s["Sid"]: s for s in deployment.one(INLINE, "preview-backend").policy()["Statement"]}
    deploy = {s["Sid"]: s for s in deployment.one(INLINE, "deploy-backend").policy()["Statement"]}
    assert preview["ReadState"]["Resource"] == "arn:aws:s3:::filepipe-state/*"
    assert preview["TakeLocks"]["Resource"] == "arn:aws:s3:::filepipe-state/.pulumi/locks/*"
    assert "WriteState" not in preview
    assert preview["Secrets"] == {"Sid": "Secrets", "Effect": "Allow", "Resource": key, "Action": ["kms:Decrypt"]}
    assert deploy["WriteState"]["Resource"] == "arn:aws:s3:::filepipe-state/*"
    assert "kms:Encrypt" in deploy["Secrets"]["Action"]


def test_pulumi_cloud_needs_no_backend_policy(ci: Deployment) -> None:
    """Regression: state-bucket grants on a stack whose state lives in Pulumi Cloud (a bucket named `None`)."""
    assert {p.name for p in ci.of_type(INLINE)} == {"preview-no-data", "deploy-stack-iam"}
    assert json.dumps(ci.exports).count("arn:") == 3
