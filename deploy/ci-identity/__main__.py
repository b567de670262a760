"""CI identity for filepipe: GitHub's OIDC provider and the two roles GitHub Actions may assume, by the token's
`sub` (which repository, and which event, branch or environment) and `aud` claims.

- preview role: read-only (AWS's `ReadOnlyAccess`, minus the users' files and job records), for `pulumi preview
  --refresh` on pull requests, which may assume only this role;
- deploy role: creates and changes the stack, only from the deploy branch (`main`) and the prod environment.

Deployed once per AWS account by an administrator (README, "Set up review and deploy"); filepipe's own program does
not depend on it. Config (`pulumi config set <key>`; namespace `ci-identity`):
`subjectPrefix` (required): the `sub` claim's repository part, `repo:<owner>/<name>` (or, for a repository that
emits immutable claims, `repo:<owner>@<owner id>/<name>@<repository id>`); `deployBranch` (default `main`);
`prodEnvironment` (default `prod`); `existingProviderArn` (an account has at most one provider per URL: reuse it);
`stateBucket` and `secretsKeyArn` (a self-managed S3 backend and its KMS secrets key; leave unset for Pulumi Cloud).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi
import pulumi_aws as aws

PROJECT = "ci-identity"
"""Config namespace; named explicitly so that tests can run this program inside another project's mocks."""
ISSUER_HOST = "token.actions.githubusercontent.com"
ISSUER_URL = f"https://{ISSUER_HOST}"
AUDIENCE = "sts.amazonaws.com"
"""The audience aws-actions/configure-aws-credentials requests by default."""
SUBJECT_PREFIX = re.compile(r"^repo:[^:/*?]+/[^:/*?]+$")
MAX_SESSION_SECONDS = 3600
READ_ONLY = "ReadOnlyAccess"
POWER_USER = "PowerUserAccess"
"""AWS managed policies: read everything; everything but IAM, Organizations and Account."""
DATA_PREFIXES = ("inputs/", "outputs/")
"""Where filepipe keeps users' files and results in its data bucket: the preview role must not read them."""
ITEM_READS = ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"]
STACK_IAM_ACTIONS = [
    "iam:AddRoleToInstanceProfile", "iam:CreateInstanceProfile", "iam:CreateRole", "iam:DeleteInstanceProfile",
    "iam:DeleteRole", "iam:DeleteRolePolicy", "iam:GetInstanceProfile", "iam:GetRole", "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole", "iam:ListRolePolicies", "iam:PutRolePolicy",
    "iam:RemoveRoleFromInstanceProfile", "iam:TagInstanceProfile", "iam:TagRole", "iam:UntagInstanceProfile",
    "iam:UntagRole", "iam:UpdateAssumeRolePolicy", "iam:UpdateRole",
]
"""What filepipe's program does in IAM: per-function roles with inline policies, the worker's instance profile."""
PASSED_TO = ["ec2.amazonaws.com", "lambda.amazonaws.com"]
LOCKS = ".pulumi/locks/*"
"""Where a self-managed backend writes its stack locks; a preview takes one too."""


def subjects(prefix: str, *, branch: str, environment: str) -> dict[str, list[str]]:
    """The `sub` claims each role trusts: pull requests preview; only the branch and the environment deploy."""
    if not SUBJECT_PREFIX.match(prefix):
        raise ValueError(f"subjectPrefix must look like repo:<owner>/<name>, got {prefix!r}")
    return {
        "preview": [f"{prefix}:pull_request"],
        "deploy": [f"{prefix}:ref:refs/heads/{branch}", f"{prefix}:environment:{environment}"],
    }


def trust_policy(provider_arn: str, allowed_subjects: list[str]) -> str:
    """AssumeRoleWithWebIdentity from GitHub's provider, for exactly these `sub` values and our audience."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "GitHubActions",
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {f"{ISSUER_HOST}:aud": AUDIENCE, f"{ISSUER_HOST}:sub": allowed_subjects}},
        }],
    })


def no_data_reads(partition: str) -> dict[str, Any]:
    """Deny statements keeping users' files and job records out of the read-only role's reach."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "NoUserFiles", "Effect": "Deny", "Action": "s3:GetObject",
             "Resource": [f"arn:{partition}:s3:::*/{prefix}*" for prefix in DATA_PREFIXES]},
            {"Sid": "NoJobRecords", "Effect": "Deny", "Action": ITEM_READS, "Resource": "*"},
        ],
    }


def backend_statements(
    partition: str, bucket: str | None, key_arn: str | None, *, write: bool
) -> list[dict[str, Any]]:
    """Access to a self-managed backend: read state and take locks (preview), or write state too (deploy)."""
    found: list[dict[str, Any]] = []
    if bucket:
        bucket_arn = f"arn:{partition}:s3:::{bucket}"
        objects = f"{bucket_arn}/*"
        found += [
            {"Sid": "ListState", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
            {"Sid": "ReadState", "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects},
            {"Sid": "WriteState" if write else "TakeLocks", "Effect": "Allow",
             "Action": ["s3:PutObject", "s3:DeleteObject"],
             "Resource": objects if write else f"{bucket_arn}/{LOCKS}"},
        ]
    if key_arn:
        found.append({"Sid": "Secrets", "Effect": "Allow", "Resource": key_arn,
                      "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"] if write else ["kms:Decrypt"]})
    return found


def stack_iam(partition: str, account: str) -> dict[str, Any]:
    """The IAM part of a deploy that PowerUserAccess leaves out, on this account's roles and instance profiles."""
    roles = f"arn:{partition}:iam::{account}:role/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "StackRoles", "Effect": "Allow", "Action": STACK_IAM_ACTIONS,
             "Resource": [roles, f"arn:{partition}:iam::{account}:instance-profile/*"]},
            {"Sid": "PassStackRoles", "Effect": "Allow", "Action": "iam:PassRole", "Resource": roles,
             "Condition": {"StringEquals": {"iam:PassedToService": PASSED_TO}}},
        ],
    }


def document(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def role(
    name: str, provider_arn: pulumi.Input[str], allowed: list[str], *, managed: str, description: str
) -> aws.iam.Role:
    """A role GitHub Actions assumes with a token whose `sub` is one of `allowed`, with AWS managed policy `managed`."""
    created = aws.iam.Role(
        name,
        description=description,
        assume_role_policy=pulumi.Output.from_input(provider_arn).apply(lambda arn: trust_policy(arn, allowed)),
        max_session_duration=MAX_SESSION_SECONDS,
    )
    managed_arn = partition.apply(lambda p: f"arn:{p}:iam::aws:policy/{managed}")
    aws.iam.RolePolicyAttachment(f"{name}-{managed}", role=created.name, policy_arn=managed_arn)
    return created


config = pulumi.Config(PROJECT)
allowed = subjects(
    config.require("subjectPrefix"),
    branch=config.get("deployBranch") or "main",
    environment=config.get("prodEnvironment") or "prod",
)
state_bucket, secrets_key = config.get("stateBucket"), config.get("secretsKeyArn")
partition = aws.get_partition_output().partition
account = aws.get_caller_identity_output().account_id

provider_arn: pulumi.Input[str]
if config.get("existingProviderArn"):
    provider_arn = config.require("existingProviderArn")
else:
    provider_arn = aws.iam.OpenIdConnectProvider("github", url=ISSUER_URL, client_id_lists=[AUDIENCE]).arn

preview = role("preview", provider_arn, allowed["preview"], managed=READ_ONLY,
               description="filepipe CI: pulumi preview on pull requests (read-only)")
aws.iam.RolePolicy("preview-no-data", role=preview.id, policy=partition.apply(lambda p: json.dumps(no_data_reads(p))))
deploy = role("deploy", provider_arn, allowed["deploy"], managed=POWER_USER,
              description="filepipe CI: pulumi up from the deploy branch and the prod environment")
aws.iam.RolePolicy("deploy-stack-iam", role=deploy.id,
                   policy=pulumi.Output.all(partition, account).apply(lambda v: json.dumps(stack_iam(v[0], v[1]))))
if state_bucket or secrets_key:
    for name, target, write in (("preview-backend", preview, False), ("deploy-backend", deploy, True)):
        aws.iam.RolePolicy(name, role=target.id, policy=partition.apply(
            lambda p, w=write: document(backend_statements(p, state_bucket, secrets_key, write=w))))

pulumi.export("previewRoleArn", preview.arn)
pulumi.export("deployRoleArn", deploy.arn)
pulumi.export("providerArn", provider_arn)
