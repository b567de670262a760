"""deploy/ci-identity under mocks: GitHub's OIDC provider; trust policies that let pull requests assume only the
read-only preview role, only the deploy branch the dev deploy role and only the prod environment the prod deploy
role; and each role's policies evaluated with the project's IAM model (`tests/iam_calls.py`) against the calls it
must be able to make and the calls it must not.

AWS managed policies are not in this repository. PowerUserAccess is small and quoted below from AWS's managed
policy reference. ReadOnlyAccess is thousands of actions; the preview role is evaluated with "allow everything"
in its place, a superset: what the role's own Deny statements take away is then taken away from ReadOnlyAccess
too, and a read that passes shows only that no Deny of ours blocks it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import botocore.session
import pytest
from parliament import iam_definition

from handlers.jobmodel import INPUT_PREFIX, OUTPUT_PREFIX, STACK_TAG
from tests.iam_calls import Check, permitted
from tests.infra.conftest import ACCOUNT, ROOT, Deployment, RecordingMocks, run_program
from tests.infra.test_parliament import EXPLAINED, Finding, lint
from worker.userdata import WORKER_SCRIPT_KEY

PROGRAM = ROOT / "deploy" / "ci-identity" / "__main__.py"
REPO = "repo:octo-org/filepipe"
ISSUER = "token.actions.githubusercontent.com"
ROLE = "aws:iam/role:Role"
POLICY = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
INLINE = "aws:iam/rolePolicy:RolePolicy"
DEPLOYERS = ("deploy-dev", "deploy-prod")
IAM = f"arn:aws:iam::{ACCOUNT}"
BOUNDARY = f"{IAM}:policy/boundary-1a2b3c4"
"""The boundary policy's ARN under the mocks (its physical name carries a suffix, as Pulumi's do)."""
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
STACK_ROLE = f"{IAM}:role/filepipe/api-jobs-role-1a2b3c4"
OTHER_ROLE = f"{IAM}:role/ops-admin"

POWER_USER_ACCESS: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "account:*"], "Resource": "*"},
        {"Effect": "Allow", "Action": [
            "account:GetAccountInformation", "account:GetGovCloudAccountInformation", "account:GetPrimaryEmail",
            "account:ListRegions", "iam:CreateServiceLinkedRole", "iam:DeleteServiceLinkedRole", "iam:ListRoles",
            "organizations:DescribeEffectivePolicy", "organizations:DescribeOrganization",
        ], "Resource": "*"},
    ],
}
"""arn:aws:iam::aws:policy/PowerUserAccess, v12, as docs.aws.amazon.com/aws-managed-policy/latest/reference/
PowerUserAccess.html shows it."""
ANYTHING: dict[str, Any] = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
"""Stands in for ReadOnlyAccess (see the module's docstring)."""
MANAGED = {"arn:aws:iam::aws:policy/PowerUserAccess": POWER_USER_ACCESS,
           "arn:aws:iam::aws:policy/ReadOnlyAccess": ANYTHING}


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
    assert {r.name for r in ci.of_type(ROLE)} == {"preview", *DEPLOYERS}
    for role in ("preview", *DEPLOYERS):
        statement = trust(ci, role)
        assert statement["Principal"] == {"Federated": arn}, role
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity", role
        assert statement["Condition"]["StringEquals"][f"{ISSUER}:aud"] == "sts.amazonaws.com", role


TOKENS = {
    "pull request": f"{REPO}:pull_request",
    "main, no environment": f"{REPO}:ref:refs/heads/main",
    "prod environment": f"{REPO}:environment:prod",
    "another branch": f"{REPO}:ref:refs/heads/feature",
    "another environment": f"{REPO}:environment:dev",
    "a fork's main": "repo:octo-org/fork:ref:refs/heads/main",
    "another repository's pull request": "repo:someone-else/filepipe:pull_request",
}
MAY_ASSUME = {"preview": {"pull request"}, "deploy-dev": {"main, no environment"}, "deploy-prod": {"prod environment"}}


@pytest.mark.parametrize("role", sorted(MAY_ASSUME))
def test_each_role_trusts_only_its_own_token(ci: Deployment, role: str) -> None:
    """Regression: one deploy role for both stacks (code merged to main could then change prod without the prod
    environment's approval), the dev role assumable from the prod environment's token or the other way round, a
    pull request deploying, or any role trusting another branch, environment or repository."""
    statement = trust(ci, role)
    assumable = {name for name, sub in TOKENS.items() if may_assume(statement, sub=sub)}
    assert assumable == MAY_ASSUME[role]
    assert not may_assume(statement, sub=TOKENS["pull request"] if role != "preview" else TOKENS["prod environment"])
    assert not may_assume(trust(ci, "preview"), sub=f"{REPO}:pull_request", aud="https://github.com/octo-org")


def test_branch_and_environment_come_from_config(identity: Callable[..., Deployment]) -> None:
    """Regression: a repository whose default branch or production environment has another name cannot deploy."""
    prefix = "repo:octo-org@123456/filepipe@789012"
    deployment = identity(deployBranch="trunk", prodEnvironment="production", subjectPrefix=prefix)
    subs = {role: trust(deployment, role)["Condition"]["StringEquals"][f"{ISSUER}:sub"] for role in DEPLOYERS}
    assert subs == {"deploy-dev": [f"{prefix}:ref:refs/heads/trunk"],
                    "deploy-prod": [f"{prefix}:environment:production"]}


@pytest.mark.parametrize("prefix", ["octo-org/filepipe", "repo:octo-org/*", "repo:*", "repo:octo-org/filepipe:ref"])
def test_a_subject_prefix_that_would_trust_too_much_is_refused(
    identity: Callable[..., Deployment], prefix: str
) -> None:
    """Regression: a wildcard or malformed prefix that matches other repositories' tokens (or none at all)."""
    with pytest.raises(ValueError, match="subjectPrefix"):
        identity(subjectPrefix=prefix)


@pytest.mark.parametrize("path", ["/", "filepipe", "/filepipe", "/file pipe/", "/*/"])
def test_a_role_path_that_would_reach_other_roles_is_refused(identity: Callable[..., Deployment], path: str) -> None:
    """Regression: `/` (every role of the account, administrators' included, in the deploy roles' reach) or a
    path IAM would refuse, found only at `pulumi up`."""
    with pytest.raises(ValueError, match="rolePath"):
        identity(rolePath=path)


def managed(deployment: Deployment, role: str) -> list[str]:
    name = deployment.one(ROLE, role).outputs["name"]
    return [a.inputs["policyArn"] for a in deployment.of_type(ATTACHMENT) if a.inputs["role"] == name]


def policies(deployment: Deployment, role: str) -> list[dict[str, Any]]:
    """Every identity policy of `role`: its managed policies (as quoted above) and its inline ones."""
    inline = [p.policy() for p in deployment.of_type(INLINE) if p.inputs["role"] == f"{role}-id"]
    return [MANAGED[arn] for arn in managed(deployment, role)] + inline


def test_the_preview_role_has_read_only_access_and_denies_only(ci: Deployment) -> None:
    """Regression: a preview role that can change the stack (a pull request's code runs with it)."""
    assert managed(ci, "preview") == ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    [inline] = [p for p in ci.of_type(INLINE) if p.inputs["role"] == "preview-id"]
    assert inline.name == "preview-no-data"
    assert all(s["Effect"] == "Deny" for s in inline.policy()["Statement"])


PREVIEW_MUST = [
    Check("s3:GetBucketPolicy", "arn:aws:s3:::storage-data-1a2b3c4"),
    Check("s3:ListBucket", "arn:aws:s3:::storage-data-1a2b3c4"),
    Check("s3:GetObject", f"arn:aws:s3:::storage-data-1a2b3c4/{WORKER_SCRIPT_KEY}"),
    Check("s3:GetObject", "arn:aws:s3:::site-files-1a2b3c4/index.html"),
    Check("dynamodb:DescribeTable", f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/storage-jobs-1a2b3c4"),
    Check("dynamodb:DescribeStream", f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/storage-jobs/stream/x"),
    Check("cognito-idp:DescribeUserPool", f"arn:aws:cognito-idp:eu-west-1:{ACCOUNT}:userpool/eu-west-1_abc"),
    Check("cognito-idp:DescribeUserPoolClient", f"arn:aws:cognito-idp:eu-west-1:{ACCOUNT}:userpool/eu-west-1_abc"),
    Check("logs:DescribeLogGroups", "*"),
    Check("lambda:GetFunction", f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:api-jobs"),
    Check("iam:GetRole", STACK_ROLE),
    Check("iam:GetRolePolicy", STACK_ROLE),
    Check("ec2:DescribeLaunchTemplateVersions", "*"),
    Check("sqs:GetQueueAttributes", f"arn:aws:sqs:eu-west-1:{ACCOUNT}:compute-launch-failures"),
]
"""What `pulumi preview --refresh` reads: each resource's configuration (and the objects the program uploads: the
worker script, the site's files)."""
TABLE = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/storage-jobs-1a2b3c4"
POOL = f"arn:aws:cognito-idp:eu-west-1:{ACCOUNT}:userpool/eu-west-1_abc"
LOG_GROUP = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/api-jobs:*"
PREVIEW_MUST_NOT = [
    Check("s3:GetObject", f"arn:aws:s3:::storage-data-1a2b3c4/{INPUT_PREFIX}abc/notes.txt"),
    Check("s3:GetObjectVersion", f"arn:aws:s3:::storage-data-1a2b3c4/{OUTPUT_PREFIX}abc/notes.out.txt"),
    Check("s3:GetObject", f"arn:aws:s3:::storage-data-1a2b3c4/{OUTPUT_PREFIX}abc/worker.log"),
    Check("dynamodb:GetItem", TABLE), Check("dynamodb:BatchGetItem", TABLE), Check("dynamodb:Query", TABLE),
    Check("dynamodb:Query", f"{TABLE}/index/by-owner"), Check("dynamodb:Scan", TABLE),
    Check("dynamodb:PartiQLSelect", TABLE), Check("dynamodb:GetRecords", f"{TABLE}/stream/x"),
    Check("dynamodb:GetShardIterator", f"{TABLE}/stream/x"), Check("dynamodb:ExportTableToPointInTime", TABLE),
    Check("cognito-idp:ListUsers", POOL), Check("cognito-idp:AdminGetUser", POOL),
    Check("cognito-idp:ListUsersInGroup", POOL), Check("cognito-idp:AdminListGroupsForUser", POOL),
    Check("logs:GetLogEvents", LOG_GROUP), Check("logs:FilterLogEvents", LOG_GROUP),
    Check("logs:StartQuery", LOG_GROUP), Check("logs:GetQueryResults", "*"), Check("logs:StartLiveTail", LOG_GROUP),
    Check("sqs:ReceiveMessage", f"arn:aws:sqs:eu-west-1:{ACCOUNT}:compute-launch-failures"),
    Check("ec2:GetConsoleOutput", f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/i-0123456789abcdef0"),
]


def test_the_preview_role_reads_the_stack_but_no_users_data(ci: Deployment) -> None:
    """Regression: a preview role (which any same-repository pull request's code runs with) that can read users'
    uploads, outputs and logs, job records (items, PartiQL, the stream), the pool's users (every email) or log
    events; or one whose denies also block what a refresh reads."""
    role = policies(ci, "preview")
    blocked = [c for c in PREVIEW_MUST if not permitted(role, c)]
    assert not blocked, blocked
    readable = [c for c in PREVIEW_MUST_NOT if permitted(role, c)]
    assert not readable, readable


USER_DATA_SHAPES = {
    "dynamodb": {"AttributeValue"},
    "dynamodbstreams": {"AttributeValue"},
    "cognito-idp": {"AttributeType", "UserType"},
    "logs": {"EventMessage", "QueryResults", "LogRecord", "LogSamples", "LiveTailSessionLogEvent"},
}
"""The botocore shapes that carry users' data in each service's answers: item attributes, users and their
attributes, log messages and query results."""
ACTION_OF = {
    ("dynamodb", "ExecuteStatement"): "dynamodb:PartiQLSelect",
    ("dynamodb", "BatchExecuteStatement"): "dynamodb:PartiQLSelect",
    ("dynamodb", "ExecuteTransaction"): "dynamodb:PartiQLSelect",
    ("dynamodb", "TransactGetItems"): "dynamodb:GetItem",
    ("dynamodb", "TransactWriteItems"): "dynamodb:PutItem",
}
"""Operations authorised by an action of another name (the Service Authorization Reference for DynamoDB: PartiQL
statements as PartiQLSelect/Insert/Update/Delete, TransactGetItems and TransactWriteItems item by item as GetItem,
PutItem, ...); the stream API's
actions are `dynamodb:`. Any other operation is authorised by the action of its own name."""
NOT_USERS_DATA = {
    "dynamodb:DescribeExport": "an export's description; its spec's shapes reach AttributeValue, no item does",
    "dynamodb:SearchVectors": "vector search over a vector index; filepipe's table has none",
    "cognito-idp:GetDevice": "authorised by the user's own access token, not IAM",
    "cognito-idp:GetUser": "authorised by the user's own access token, not IAM",
    "cognito-idp:ListDevices": "authorised by the user's own access token, not IAM",
    "logs:TestMetricFilter": "answers with the messages the caller sends it",
    "logs:TestTransformer": "answers with the messages the caller sends it",
}
"""Reads whose answer can hold users' data in general but not filepipe's here, each with the reason."""


def _reaches(shape: Any, names: set[str], seen: set[str]) -> bool:
    if shape is None or shape.name in seen:
        return False
    seen.add(shape.name)
    if shape.name in names:
        return True
    members = {"structure": lambda: list(shape.members.values()), "list": lambda: [shape.member],
               "map": lambda: [shape.value]}.get(shape.type_name, list)()
    return any(_reaches(member, names, seen) for member in members)


def user_data_reads() -> Iterator[str]:
    """The IAM action of every operation, in botocore's service models of the services holding users' data,
    whose answer carries that data and which IAM calls a read (its access level in parliament's copy of the
    Service Authorization Reference is not Write)."""
    session = botocore.session.get_session()
    levels = {f"{service['prefix']}:{p['privilege']}": p["access_level"]
              for service in iam_definition for p in service["privileges"]}
    for service, shapes in USER_DATA_SHAPES.items():
        model = session.get_service_model(service)
        for operation in model.operation_names:
            if _reaches(model.operation_model(operation).output_shape, shapes, set()):
                action = ACTION_OF.get((service, operation), f"{model.signing_name}:{operation}")
                if levels.get(action) != "Write":
                    yield action


def test_every_read_of_users_data_botocore_knows_is_denied_to_the_preview_role(ci: Deployment) -> None:
    """Regression: an AWS read that returns items, users or log events (a new API, or one missed in the list,
    as `dynamodb:PartiQLSelect` and `cognito-idp:ListUsers` were) left to ReadOnlyAccess. The operations come
    from botocore's service models in this virtualenv, so an upgrade that brings a new one fails here until it
    is denied or explained in NOT_USERS_DATA."""
    role = policies(ci, "preview")
    reads = set(user_data_reads())
    assert {"dynamodb:PartiQLSelect", "dynamodb:GetRecords", "cognito-idp:ListUsers", "logs:GetLogEvents"} <= reads
    readable = sorted(a for a in reads - set(NOT_USERS_DATA) if permitted(role, Check(a, "*")))
    assert not readable, readable
    known = {f"{service['prefix']}:{p['privilege']}" for service in iam_definition for p in service["privileges"]}
    assert reads - set(NOT_USERS_DATA) <= known, "an operation whose IAM action is not its name: add it to ACTION_OF"
    assert set(NOT_USERS_DATA) <= reads, set(NOT_USERS_DATA) - reads


def deploy_checks(partition_account: str = IAM) -> tuple[list[Check], list[Check]]:
    """(must be allowed, must be denied) for a deploy role, with the boundary `BOUNDARY` and path `/filepipe/`."""
    bounded = {"iam:PermissionsBoundary": BOUNDARY}
    admin_bounded = {"iam:PermissionsBoundary": ADMIN}
    lam, ec2 = {"iam:PassedToService": "lambda.amazonaws.com"}, {"iam:PassedToService": "ec2.amazonaws.com"}
    profile = f"{partition_account}:instance-profile/filepipe/compute-worker-1a2b3c4"
    must = [
        Check("iam:CreateRole", STACK_ROLE, bounded), Check("iam:PutRolePolicy", STACK_ROLE, bounded),
        Check("iam:DeleteRolePolicy", STACK_ROLE, bounded),
        Check("iam:PutRolePermissionsBoundary", STACK_ROLE, bounded),
        Check("iam:GetRole", STACK_ROLE), Check("iam:ListRolePolicies", STACK_ROLE),
        Check("iam:UpdateAssumeRolePolicy", STACK_ROLE), Check("iam:TagRole", STACK_ROLE),
        Check("iam:DeleteRole", STACK_ROLE),
        Check("iam:CreateInstanceProfile", profile), Check("iam:AddRoleToInstanceProfile", profile),
        Check("iam:PassRole", STACK_ROLE, lam), Check("iam:PassRole", STACK_ROLE, ec2),
        Check("iam:CreateServiceLinkedRole", f"{partition_account}:role/aws-service-role/ops.apigateway.amazonaws.com"),
        Check("s3:CreateBucket", "arn:aws:s3:::storage-data-1a2b3c4"),
        Check("lambda:CreateFunction", f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:api-jobs"),
        Check("dynamodb:CreateTable", TABLE), Check("cognito-idp:CreateUserPool", "*"),
        Check("ec2:CreateLaunchTemplate", "*"), Check("cloudfront:CreateDistribution", "*"),
    ]
    must_not = [
        Check("iam:CreateRole", STACK_ROLE), Check("iam:CreateRole", STACK_ROLE, admin_bounded),
        Check("iam:CreateRole", OTHER_ROLE, bounded), Check("iam:PutRolePolicy", OTHER_ROLE),
        Check("iam:PutRolePolicy", OTHER_ROLE, bounded), Check("iam:PutRolePolicy", STACK_ROLE),
        Check("iam:AttachRolePolicy", STACK_ROLE, {**bounded, "iam:PolicyARN": ADMIN}),
        Check("iam:AttachRolePolicy", OTHER_ROLE, {"iam:PolicyARN": ADMIN}),
        Check("iam:UpdateAssumeRolePolicy", OTHER_ROLE),
        Check("iam:UpdateAssumeRolePolicy", f"{partition_account}:role/deploy-prod-1a2b3c4"),
        Check("iam:PassRole", OTHER_ROLE, lam), Check("iam:PassRole", OTHER_ROLE, ec2),
        Check("iam:PassRole", STACK_ROLE, {"iam:PassedToService": "cloudformation.amazonaws.com"}),
        Check("iam:DeleteRolePermissionsBoundary", STACK_ROLE, bounded),
        Check("iam:PutRolePermissionsBoundary", STACK_ROLE, admin_bounded),
        Check("iam:PutRolePermissionsBoundary", OTHER_ROLE, bounded),
        Check("iam:CreatePolicyVersion", BOUNDARY), Check("iam:DeletePolicy", BOUNDARY),
        Check("iam:SetDefaultPolicyVersion", BOUNDARY), Check("iam:CreatePolicy", f"{partition_account}:policy/x"),
        Check("iam:CreateUser", f"{partition_account}:user/x"),
        Check("iam:CreateAccessKey", f"{partition_account}:user/x"),
        Check("iam:AttachUserPolicy", f"{partition_account}:user/x", {"iam:PolicyARN": ADMIN}),
        Check("iam:AddRoleToInstanceProfile", f"{partition_account}:instance-profile/ops-admin"),
        Check("organizations:LeaveOrganization", "*"),
    ]
    return must, must_not


@pytest.mark.parametrize("role", DEPLOYERS)
def test_a_deploy_role_writes_only_bounded_roles_under_its_path(ci: Deployment, role: str) -> None:
    """Regression: a deploy role that can make itself administrator: create a role without the boundary, or
    outside the path, attach AdministratorAccess, pass a role from outside the path (or to another service),
    remove or replace a role's boundary, rewrite the boundary policy, or touch the CI roles themselves; or one
    so tight that `pulumi up` of the stack fails."""
    assert managed(ci, role) == ["arn:aws:iam::aws:policy/PowerUserAccess"]
    assert ci.exports["permissionsBoundaryArn"] == BOUNDARY and ci.exports["rolePath"] == "/filepipe/"
    found = policies(ci, role)
    must, must_not = deploy_checks()
    blocked = [c for c in must if not permitted(found, c)]
    assert not blocked, blocked
    allowed = [c for c in must_not if permitted(found, c)]
    assert not allowed, allowed


def test_the_role_path_comes_from_config(identity: Callable[..., Deployment]) -> None:
    """Regression: a deploy role scoped to a path other than the one the stacks' roles are created under."""
    deployment = identity(rolePath="/apps/filepipe/")
    [policy] = [p.policy() for p in deployment.of_type(INLINE) if p.name == "deploy-dev-iam"]
    assert permitted([policy], Check("iam:PassRole", f"{IAM}:role/apps/filepipe/x",
                                     {"iam:PassedToService": "lambda.amazonaws.com"}))
    assert not permitted([policy], Check("iam:PassRole", STACK_ROLE, {"iam:PassedToService": "lambda.amazonaws.com"}))
    assert deployment.exports["rolePath"] == "/apps/filepipe/"


def test_boundary_conditions_are_ones_aws_evaluates_for_those_actions(ci: Deployment) -> None:
    """Regression: an Allow conditioned on `iam:PermissionsBoundary` for an action AWS does not give that key
    (the condition would never hold, or a Deny on it never apply). Checked against parliament's copy of the
    Service Authorization Reference for IAM."""
    keys = {p["privilege"]: {k for r in p["resource_types"] for k in r.get("condition_keys", [])}
            for service in iam_definition if service["prefix"] == "iam" for p in service["privileges"]}
    for statement in ci.one(INLINE, "deploy-dev-iam").policy()["Statement"]:
        for condition in statement.get("Condition", {}).values():
            for key in condition:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                missing = [a for a in actions if key not in keys[a.split(":", 1)[1]]]
                assert not missing, (statement["Sid"], key, missing)


def test_the_boundary_is_exported_and_each_deploy_role_names_it(ci: Deployment) -> None:
    """Regression: a boundary the stacks cannot name, or deploy roles that require another one."""
    boundary = ci.one(POLICY, "boundary")
    assert ci.exports["permissionsBoundaryArn"] == boundary.outputs["arn"]
    for role in DEPLOYERS:
        text = ci.one(INLINE, f"{role}-iam").inputs["policy"]
        assert text.count(boundary.outputs["arn"]) >= 3, role  # allowed with it, denied without it, kept as is


def program_grants(deployment: Deployment) -> Iterator[tuple[str, Check]]:
    """(role policy, check) for every action on every resource each Allow statement of the program's roles grants,
    with the context its conditions require (the value a call must carry)."""
    for policy in deployment.of_type(INLINE):
        for statement in policy.policy()["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            context = {key: values if isinstance(values, str) else values[0]
                       for operator, tests in statement.get("Condition", {}).items()
                       if not operator.startswith("ForAllValues:") for key, values in tests.items()}
            for action in statement["Action"]:
                for resource in statement["Resource"]:
                    yield policy.name, Check(action, resource, context)


def test_the_boundary_holds_everything_the_program_grants_and_no_more(
    ci: Deployment, tuned: Deployment, dev: Deployment
) -> None:
    """Regression: a grant added to a function or the worker (components/iam.py) that the boundary cuts off, so
    the call fails only on AWS; or a boundary wider than the program needs (an action no role is granted). The
    bounded stack (roles under the path) and the dev stack's config (AWS's public AMI parameter) both; dev's
    PassRole names a role outside the path, as an unbounded stack's roles are, and is left out."""
    boundary = ci.one(POLICY, "boundary").policy()
    grants = list(program_grants(tuned)) + [grant for grant in program_grants(dev) if grant[1].action != "iam:PassRole"]
    outside = [(name, check) for name, check in grants if not permitted([boundary], check)]
    assert not outside, outside
    bounded = {a for s in boundary["Statement"] for a in (s["Action"] if isinstance(s["Action"], list)
                                                            else [s["Action"]])}
    assert bounded == {check.action for _, check in grants}


def test_the_boundary_names_the_programs_prefixes_and_tag(ci: Deployment) -> None:
    """Regression: the program moving users' files, the worker script or its VM tag, and the boundary (which
    cannot import the program) still naming the old ones."""
    namespace = ci.namespace
    assert namespace["DATA_PREFIXES"] == (INPUT_PREFIX, OUTPUT_PREFIX)
    assert WORKER_SCRIPT_KEY.startswith(namespace["WORKER_PREFIX"])
    assert namespace["STACK_TAG"] == STACK_TAG
    terminate = [s for s in ci.one(POLICY, "boundary").policy()["Statement"] if s["Action"] == "ec2:TerminateInstances"]
    assert not permitted([{"Statement": terminate}], Check("ec2:TerminateInstances", f"arn:aws:ec2:eu-west-1:{ACCOUNT}"
                                                           ":instance/i-0123456789abcdef0"))


CI_EXPLAINED: set[Finding] = {
    ("UNKNOWN_FEDERATION_SOURCE", frozenset({"sts:assumerolewithwebidentity"})),
    ("MALFORMED", frozenset({"sts:assumerolewithwebidentity"})),
    ("PERMISSIONS_MANAGEMENT_ACTIONS", frozenset({"iam:passrole", "kms:creategrant"})),
    ("PRIVILEGE_ESCALATION", frozenset({"iam:passrole", "ec2:runinstances"})),
}
"""Parliament's findings on the CI policies, each explained by a comment in deploy/ci-identity/__main__.py."""


def test_parliament_finds_nothing_unexplained_in_the_ci_policies(ci: Deployment) -> None:
    """Regression: a CI policy with an unknown action, a condition of the wrong type (`StringEquals` on an ARN key)
    or a resource of the wrong type, unseen because parliament linted only the main program's documents."""
    found = set(lint(ci))
    assert found == CI_EXPLAINED, found ^ CI_EXPLAINED
    comments = " ".join(line for line in PROGRAM.read_text(encoding="utf-8").splitlines() if "#" in line)
    for issue, actions in found:
        assert f"parliament {issue}" in comments or f"and {issue}" in comments, issue
        assert all(action.split(":")[1] in comments.lower() for action in actions), (issue, actions)
    assert {key for key in found if "sts:assumerolewithwebidentity" not in key[1]} <= set(EXPLAINED)


def test_an_existing_provider_is_reused(identity: Callable[..., Deployment]) -> None:
    """Regression: an account that already has GitHub's provider (one per URL) cannot deploy this program."""
    existing = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
    deployment = identity(existingProviderArn=existing)
    assert deployment.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider") == []
    for role in ("preview", *DEPLOYERS):
        assert trust(deployment, role)["Principal"] == {"Federated": existing}
    assert deployment.exports["providerArn"] == existing


def statements_by_sid(deployment: Deployment, name: str) -> Mapping[str, dict[str, Any]]:
    return {s["Sid"]: s for s in deployment.one(INLINE, name).policy()["Statement"]}


def test_a_self_managed_backend_is_readable_in_preview_and_writable_in_deploy(
    identity: Callable[..., Deployment]
) -> None:
    """Regression: a preview that cannot read the state or take its lock, or that can overwrite the state."""
    key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    deployment = identity(stateBucket="filepipe-state", secretsKeyArn=key)
    preview = statements_by_sid(deployment, "preview-backend")
    assert preview["ReadState"]["Resource"] == "arn:aws:s3:::filepipe-state/*"
    assert preview["TakeLocks"]["Resource"] == "arn:aws:s3:::filepipe-state/.pulumi/locks/*"
    assert "WriteState" not in preview
    assert preview["Secrets"] == {"Sid": "Secrets", "Effect": "Allow", "Resource": key, "Action": ["kms:Decrypt"]}
    for role in DEPLOYERS:
        deploy = statements_by_sid(deployment, f"{role}-backend")
        assert deploy["WriteState"]["Resource"] == "arn:aws:s3:::filepipe-state/*"
        assert "kms:Encrypt" in deploy["Secrets"]["Action"]


def test_pulumi_cloud_needs_no_backend_policy(ci: Deployment) -> None:
    """Regression: state-bucket grants on a stack whose state lives in Pulumi Cloud (a bucket named `None`)."""
    assert {p.name for p in ci.of_type(INLINE)} == {"preview-no-data", "deploy-dev-iam", "deploy-prod-iam"}
    assert set(ci.exports) == {"previewRoleArn", "devDeployRoleArn", "prodDeployRoleArn", "permissionsBoundaryArn",
                               "rolePath", "providerArn"}
    assert json.dumps(ci.exports).count("arn:") == 5
