"""CI identity for filepipe: GitHub's OIDC provider, the roles GitHub Actions may assume (by the token's `sub`:
which repository, and which event, branch or environment; and `aud`), and the permissions boundary of every role
filepipe's program creates.

- preview role: read-only (AWS's `ReadOnlyAccess`, minus every read of users' data: files, job records, stream
  records, users, log events), for `pulumi preview --refresh` on pull requests, which may assume only this role;
- dev deploy role: `pulumi up` of dev, only from the deploy branch (`main`) with no environment;
- prod deploy role: `pulumi up` of prod, only from a job in the prod environment (whose reviewers approve it);
- boundary: a managed policy, the most filepipe's functions and VMs may ever do. Both deploy roles may create or
  change only roles under `rolePath`, only with this boundary, and pass only those roles (to Lambda and EC2): a
  deploy cannot make an administrator. The stacks name it (`permissionsBoundary`, `rolePath` in their config).

Deployed once per AWS account by an administrator (README, "Set up review and deploy"); filepipe's own program does
not depend on it. Config (`pulumi config set <key>`; namespace `ci-identity`):
`subjectPrefix` (required): the `sub` claim's repository part, `repo:<owner>/<name>` (or, for a repository that
emits immutable claims, `repo:<owner>@<owner id>/<name>@<repository id>`); `deployBranch` (default `main`);
`prodEnvironment` (default `prod`); `rolePath` (default `/filepipe/`); `existingProviderArn` (an account has at
most one provider per URL: reuse it); `stateBucket` and `secretsKeyArn` (a self-managed S3 backend and its KMS
secrets key; leave unset for Pulumi Cloud).
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
"""Where filepipe keeps users' files, results and job logs in its data bucket (`handlers.jobmodel`'s prefixes)."""
OBJECT_READS = ["s3:GetObject", "s3:GetObjectAttributes", "s3:GetObjectTorrent", "s3:GetObjectVersion",
                "s3:GetObjectVersionAttributes", "s3:GetObjectVersionTorrent"]
ITEM_READS = ["dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:GetRecords",
              "dynamodb:GetShardIterator", "dynamodb:PartiQLSelect", "dynamodb:Query", "dynamodb:Scan",
              "dynamodb:ExportTableToPointInTime"]
USER_READS = ["cognito-idp:AdminGetDevice", "cognito-idp:AdminGetUser", "cognito-idp:AdminListDevices",
              "cognito-idp:AdminListGroupsForUser", "cognito-idp:AdminListUserAuthEvents", "cognito-idp:ListUsers",
              "cognito-idp:ListUsersInGroup"]
LOG_READS = ["logs:FilterLogEvents", "logs:GetLogEvents", "logs:GetLogRecord",
             "logs:GetQueryResults", "logs:ListAnomalies", "logs:StartLiveTail", "logs:StartQuery", "logs:Unmask"]
OTHER_READS = ["sqs:ReceiveMessage", "ec2:GetConsoleOutput", "ec2:GetConsoleScreenshot"]
"""The launch-failure queue's messages; a worker VM's console (its user-data's output names the job)."""
DEFAULT_ROLE_PATH = "/filepipe/"
ROLE_PATH = re.compile(r"^/([\w+=,.@-]+/)*$")
"""IAM's path syntax (IAM API reference, `path`): slash-delimited segments of these characters."""
STACK_IAM_ACTIONS = [
    "iam:AddRoleToInstanceProfile", "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:DeleteRole",
    "iam:GetInstanceProfile", "iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole", "iam:ListRolePolicies", "iam:RemoveRoleFromInstanceProfile",
    "iam:TagInstanceProfile", "iam:TagRole", "iam:UntagInstanceProfile", "iam:UntagRole", "iam:UpdateAssumeRolePolicy",
    "iam:UpdateRole",
]
"""What filepipe's program does in IAM beside writing roles' permissions: per-function roles, the worker's instance
profile. Granted on the role path only."""
BOUNDED_ACTIONS = ["iam:CreateRole", "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy"]
"""The role writes AWS authorises with `iam:PermissionsBoundary` (the boundary the request sets, or the role's
own: the Service Authorization Reference for IAM, as parliament 1.6.4 ships it): allowed only with ours."""
IAM_WRITES = ["iam:Add*", "iam:Attach*", "iam:Change*", "iam:Create*", "iam:Deactivate*", "iam:Delete*",
              "iam:Detach*", "iam:Enable*", "iam:PassRole", "iam:Put*", "iam:Remove*", "iam:Reset*", "iam:Resync*",
              "iam:Set*", "iam:Tag*", "iam:Untag*", "iam:Update*", "iam:Upload*"]
"""Every IAM write (a Deny may be broad: it takes permissions away)."""
BOUNDARY_CHANGES = ["iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion",
                    "iam:SetDefaultPolicyVersion", "iam:TagPolicy", "iam:UntagPolicy"]
PASSED_TO = ["ec2.amazonaws.com", "lambda.amazonaws.com"]
WORKER_PREFIX = "worker/"
"""Where the data bucket holds the worker script (`worker.userdata.WORKER_SCRIPT_KEY`)."""
STACK_TAG = "FilepipeStack"
"""The tag key on every worker VM (`handlers.jobmodel.STACK_TAG`); its value names the stack."""
LOCKS = ".pulumi/locks/*"
"""Where a self-managed backend writes its stack locks; a preview takes one too."""


def subjects(prefix: str, *, branch: str, environment: str) -> dict[str, list[str]]:
    """The `sub` claim each role trusts: pull requests preview; the branch deploys dev, the environment prod.

    GitHub puts `environment:<name>` in `sub` for a job that names an environment, and `ref:refs/heads/<branch>`
    otherwise, so the dev job (no environment) cannot present prod's claim, nor the prod job dev's."""
    if not SUBJECT_PREFIX.match(prefix):
        raise ValueError(f"subjectPrefix must look like repo:<owner>/<name>, got {prefix!r}")
    return {
        "preview": [f"{prefix}:pull_request"],
        "dev": [f"{prefix}:ref:refs/heads/{branch}"],
        "prod": [f"{prefix}:environment:{environment}"],
    }


def checked_role_path(path: str) -> str:
    """IAM's path syntax (`/` or `/<segments>/`); never `/` itself, which would put every role of the account in
    the deploy roles' reach."""
    if not ROLE_PATH.match(path) or path == "/":
        raise ValueError(f"rolePath must look like /<name>/ (not /), got {path!r}")
    return path


def trust_policy(provider_arn: str, allowed_subjects: list[str]) -> str:
    """AssumeRoleWithWebIdentity from GitHub's provider, for exactly these `sub` values and our audience."""
    # parliament UNKNOWN_FEDERATION_SOURCE (sts:AssumeRoleWithWebIdentity): parliament knows SAML providers and four
    # public identity providers, not an account's OIDC providers (`arn:...:oidc-provider/<host>`), such as GitHub's.
    # parliament MALFORMED (sts:AssumeRoleWithWebIdentity, "neither Resource nor NotResource"): a trust policy is
    # the role's resource policy, with a Principal and, as AWS requires, no Resource.
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
    """Deny statements keeping users' data out of the read-only role's reach, whatever ReadOnlyAccess grants:
    their files and results (objects under `DATA_PREFIXES` of any bucket), job records (items, PartiQL, the
    stream's records), the user pool's users (emails) and log events (which name jobs and users)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "NoUserFiles", "Effect": "Deny", "Action": OBJECT_READS,
             "Resource": [f"arn:{partition}:s3:::*/{prefix}*" for prefix in DATA_PREFIXES]},
            {"Sid": "NoJobRecords", "Effect": "Deny", "Action": ITEM_READS, "Resource": "*"},
            {"Sid": "NoUsers", "Effect": "Deny", "Action": USER_READS, "Resource": "*"},
            {"Sid": "NoLogEvents", "Effect": "Deny", "Action": LOG_READS, "Resource": "*"},
            {"Sid": "NoMessagesOrConsoles", "Effect": "Deny", "Action": OTHER_READS, "Resource": "*"},
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


def role_arns(partition: str, account: str, path: str) -> list[str]:
    """The roles and instance profiles under `path`: the only IAM entities a deploy may write."""
    return [f"arn:{partition}:iam::{account}:{kind}{path}*" for kind in ("role", "instance-profile")]


def deploy_iam(partition: str, account: str, path: str, boundary_arn: str) -> dict[str, Any]:
    """The IAM part of a deploy that PowerUserAccess leaves out, bounded so that no role it makes or changes can
    do more than `boundary_arn` allows: roles and instance profiles under `path` only; a role's permissions
    written only while it carries the boundary; roles passed only from under `path`, to Lambda and EC2. The
    denies hold whatever else is attached: no IAM write outside `path` (AWS's service-linked roles excepted,
    which PowerUserAccess may create), no other boundary, no boundary removed, the boundary policy untouched."""
    under_path = role_arns(partition, account, path)
    roles = under_path[0]
    boundary = {"iam:PermissionsBoundary": boundary_arn}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "StackRoles", "Effect": "Allow", "Action": STACK_IAM_ACTIONS, "Resource": under_path},
            {"Sid": "WriteRolesWithBoundary", "Effect": "Allow", "Action": BOUNDED_ACTIONS, "Resource": roles,
             "Condition": {"ArnEquals": boundary}},
            {"Sid": "PassStackRoles", "Effect": "Allow", "Action": "iam:PassRole", "Resource": roles,
             "Condition": {"StringEquals": {"iam:PassedToService": PASSED_TO}}},
            {"Sid": "NoIamWriteOutsidePath", "Effect": "Deny", "Action": IAM_WRITES,
             "NotResource": [*under_path, f"arn:{partition}:iam::{account}:role/aws-service-role/*"]},
            # ArnNotEquals holds when the key is absent (a role created without a boundary), as every negated
            # operator does (IAM User Guide, "IAM JSON policy elements: Condition operators").
            {"Sid": "NoOtherBoundary", "Effect": "Deny", "Action": BOUNDED_ACTIONS, "Resource": "*",
             "Condition": {"ArnNotEquals": boundary}},
            {"Sid": "KeepBoundaries", "Effect": "Deny", "Action": "iam:DeleteRolePermissionsBoundary",
             "Resource": "*"},
            {"Sid": "KeepTheBoundaryPolicy", "Effect": "Deny", "Action": BOUNDARY_CHANGES, "Resource": boundary_arn},
        ],
    }


def boundary_policy(partition: str, account: str, path: str) -> dict[str, Any]:
    """The most any role under `path` may do: the union of what filepipe's functions and worker VMs are granted
    (`components/iam.py`), with the resources narrowed to what this program can know before any stack exists
    (this account; the data bucket's key prefixes; the stack tag on VMs; roles under `path`).
    `tests/infra/test_ci_identity.py` checks that every grant of the program falls within it, and that each
    action here is granted by some role of the program."""
    arn = f"arn:{partition}"
    instances = f"{arn}:ec2:*:{account}:instance/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "StackObjects", "Effect": "Allow",
             "Action": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:DeleteObjectTagging", "s3:GetObject",
                        "s3:PutObject", "s3:PutObjectTagging"],
             "Resource": [f"{arn}:s3:::*/{prefix}*" for prefix in (*DATA_PREFIXES, WORKER_PREFIX)]},
            {"Sid": "NotFoundInsteadOfForbidden", "Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": f"{arn}:s3:::*"},
            {"Sid": "JobItems", "Effect": "Allow",
             "Action": ["dynamodb:BatchGetItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem",
                        "dynamodb:Query", "dynamodb:UpdateItem"],
             "Resource": f"{arn}:dynamodb:*:{account}:table/*"},
            {"Sid": "JobStream", "Effect": "Allow",
             "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
             "Resource": f"{arn}:dynamodb:*:{account}:table/*/stream/*"},
            {"Sid": "AnyResourceOnly", "Effect": "Allow", "Action": ["dynamodb:ListStreams", "ec2:DescribeInstances"],
             "Resource": "*"},
            {"Sid": "LaunchWorkers", "Effect": "Allow", "Action": "ec2:RunInstances",
             "Resource": [f"{arn}:ec2:*:{account}:*", f"{arn}:ec2:*::image/*"]},
            {"Sid": "TagOnLaunchOnly", "Effect": "Allow", "Action": "ec2:CreateTags",
             "Resource": [instances, f"{arn}:ec2:*:{account}:volume/*"],
             "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}}},
            {"Sid": "TerminateTaggedWorkers", "Effect": "Allow", "Action": "ec2:TerminateInstances",
             "Resource": instances, "Condition": {"StringLike": {f"aws:ResourceTag/{STACK_TAG}": "*"}}},
            # parliament PERMISSIONS_MANAGEMENT_ACTIONS (iam:PassRole) and PRIVILEGE_ESCALATION (iam:PassRole with
            # ec2:RunInstances): the launcher starts VMs with the worker role (components/iam.py says why); here
            # only roles under the path, which all carry this boundary, and only to EC2.
            {"Sid": "PassWorkerRoles", "Effect": "Allow", "Action": "iam:PassRole",
             "Resource": f"{arn}:iam::{account}:role{path}*",
             "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
            {"Sid": "ResolveAmi", "Effect": "Allow", "Action": "ssm:GetParameters",
             "Resource": [f"{arn}:ssm:*::parameter/aws/service/*", f"{arn}:ssm:*:{account}:parameter/*"]},
            # parliament PERMISSIONS_MANAGEMENT_ACTIONS (kms:CreateGrant): only a grant EBS asks for on the caller's
            # behalf, for a root volume encrypted with the stack's `ebsKmsKeyArn` (components/iam.py).
            {"Sid": "GrantEbsKeyToVolumes", "Effect": "Allow", "Action": "kms:CreateGrant",
             "Resource": f"{arn}:kms:*:{account}:key/*",
             "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
            {"Sid": "EncryptVolumesWithEbsKey", "Effect": "Allow",
             "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom",
                        "kms:ReEncryptTo"],
             "Resource": f"{arn}:kms:*:{account}:key/*"},
            {"Sid": "RecordFailedBatches", "Effect": "Allow", "Action": "sqs:SendMessage",
             "Resource": f"{arn}:sqs:*:{account}:*"},
            {"Sid": "OwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": f"{arn}:logs:*:{account}:log-group:*"},
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
role_path = checked_role_path(config.get("rolePath") or DEFAULT_ROLE_PATH)
state_bucket, secrets_key = config.get("stateBucket"), config.get("secretsKeyArn")
partition = aws.get_partition_output().partition
account = aws.get_caller_identity_output().account_id

provider_arn: pulumi.Input[str]
if config.get("existingProviderArn"):
    provider_arn = config.require("existingProviderArn")
else:
    provider_arn = aws.iam.OpenIdConnectProvider("github", url=ISSUER_URL, client_id_lists=[AUDIENCE]).arn

boundary = aws.iam.Policy(
    "boundary",
    description="filepipe: the most any role of the program (functions, worker VMs) may do; set by the CI roles",
    policy=pulumi.Output.all(partition, account).apply(lambda v: json.dumps(boundary_policy(v[0], v[1], role_path))),
)
preview = role("preview", provider_arn, allowed["preview"], managed=READ_ONLY,
               description="filepipe CI: pulumi preview on pull requests (read-only, no users' data)")
aws.iam.RolePolicy("preview-no-data", role=preview.id, policy=partition.apply(lambda p: json.dumps(no_data_reads(p))))
deployers = {
    stack: role(f"deploy-{stack}", provider_arn, allowed[stack], managed=POWER_USER,
                description=f"filepipe CI: pulumi up of {stack} ({' '.join(allowed[stack])})")
    for stack in ("dev", "prod")
}
for stack, deployer in deployers.items():
    aws.iam.RolePolicy(f"deploy-{stack}-iam", role=deployer.id, policy=pulumi.Output.all(
        partition, account, boundary.arn).apply(lambda v: json.dumps(deploy_iam(v[0], v[1], role_path, v[2]))))
if state_bucket or secrets_key:
    targets = [("preview-backend", preview, False), *((f"deploy-{s}-backend", r, True) for s, r in deployers.items())]
    for name, target, write in targets:
        aws.iam.RolePolicy(name, role=target.id, policy=partition.apply(
            lambda p, w=write: document(backend_statements(p, state_bucket, secrets_key, write=w))))

pulumi.export("previewRoleArn", preview.arn)
pulumi.export("devDeployRoleArn", deployers["dev"].arn)
pulumi.export("prodDeployRoleArn", deployers["prod"].arn)
pulumi.export("permissionsBoundaryArn", boundary.arn)
pulumi.export("rolePath", role_path)
pulumi.export("providerArn", provider_arn)
