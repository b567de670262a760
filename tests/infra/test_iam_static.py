"""IAM proven from the code, beside the recorded proof (tests/infra/test_iam_proven.py): from each Lambda entry point
as the program wires it (every `aws:lambda/function:Function`'s `handler`) and from the worker VM (worker.py, the
user-data's Python and its AWS CLI calls), every boto3 client method the code can reach (tests/callgraph.py) must
be allowed by that function's role policy, with the resources and conditions the call carries
(tests/iam_static.py), and every action a policy grants must be needed by some reachable call.

The recorded proof sees only the paths a local run drives; this one sees every path, so a cancel that lands while
the release function starts a VM (it terminates the VM: `dispatch.record_vm`) is checked too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from stackspec.settings import StackSettings
from tests.callgraph import CallGraph
from tests.iam_calls import Check, allowed_by, granted_actions
from tests.iam_static import (
    S3_KEYS,
    USER_DATA,
    WORKER_ENTRIES,
    Stack,
    cli_calls,
    platform_checks,
    project_sources,
    static_checks,
)
from tests.infra.conftest import ACCOUNT, PARTITION, REGION, TUNED, WORKER_TAG, Deployment

WORKER = "worker"
STATIC_EXEMPT: dict[tuple[str, str], str] = {
    ("NotFoundInsteadOfForbidden", "s3:ListBucket"): "no call names it: it makes S3 answer HeadObject of a missing "
                                                     "object 404 instead of 403 (S3's HeadObject reference)",
}
"""Granted (Sid, action) pairs no reachable call needs, with the reason they are granted anyway."""
ENDPOINTS = {"s3": "compute-s3", "dynamodb": "compute-dynamodb"}


@dataclass(frozen=True)
class Wired:
    """One identity the program creates and the code that runs with it."""

    name: str
    entries: tuple[str, ...]
    policy: dict[str, Any]
    platform: tuple[Check, ...] = ()
    cli: bool = False


def wired_functions(dev: Deployment) -> list[Wired]:
    """Every Lambda function of the program, with its role's policy, log group and event source mapping."""
    roles = {r.outputs["arn"]: r for r in dev.of_type("aws:iam/role:Role")}
    policies = {p.inputs["role"]: p for p in dev.of_type("aws:iam/rolePolicy:RolePolicy")}
    groups = {g.outputs["name"]: g.outputs["arn"] for g in dev.of_type("aws:cloudwatch/logGroup:LogGroup")}
    mappings = {m.inputs["functionName"]: m.inputs for m in
                dev.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")}
    found = []
    for function in dev.of_type("aws:lambda/function:Function"):
        role = roles[function.inputs["role"]]
        mapping = mappings.get(function.outputs["arn"], {})
        failure = mapping.get("destinationConfig", {}).get("onFailure", {}).get("destinationArn")
        platform = platform_checks(groups[function.inputs["loggingConfig"]["logGroup"]],
                                   mapping.get("eventSourceArn"), failure)
        found.append(Wired(function.name, (function.inputs["handler"],),
                           policies[f"{role.name}-id"].policy(), tuple(platform)))
    return found


def worker_identity(dev: Deployment) -> Wired:
    return Wired(WORKER, WORKER_ENTRIES, dev.one("aws:iam/rolePolicy:RolePolicy", "compute-worker-policy").policy(),
                 cli=True)


def ami_parameter_arn(parameter: str) -> str:
    """An SSM parameter's ARN: AWS's public ones (`/aws/service/...`) have no account in it, the account's own do."""
    owner = "" if parameter.startswith("/aws/") else ACCOUNT
    return f"arn:{PARTITION}:ssm:{REGION}:{owner}:parameter{parameter}"


def stack_of(dev: Deployment, settings: StackSettings | None = None) -> Stack:
    table = dev.one("aws:dynamodb/table:Table").outputs
    subnets = sorted(dev.of_type("aws:ec2/subnet:Subnet"), key=lambda subnet: subnet.name)
    template = dev.one("aws:ec2/launchTemplate:LaunchTemplate")
    ebs = template.inputs["blockDeviceMappings"][0]["ebs"]
    return Stack.of(
        partition=PARTITION, region=REGION, account=ACCOUNT, table=table["name"], bucket=dev.exports["bucketName"],
        template_arn=template.outputs["arn"], subnet_arns=[s.outputs["arn"] for s in subnets],
        security_group_arn=dev.one("aws:ec2/securityGroup:SecurityGroup", "compute-worker").outputs["arn"],
        worker_role_arn=dev.one("aws:iam/role:Role", "compute-worker-role").outputs["arn"],
        ami_parameter_arn=ami_parameter_arn((settings or StackSettings()).ami_parameter),
        stack_tag=WORKER_TAG, stream_arn=table["streamArn"], ebs_kms_key_arn=ebs.get("kmsKeyId"),
    )


def prove(graph: CallGraph, identity: Wired, stack: Stack) -> tuple[list[str], set[tuple[str, str]]]:
    """What `identity`'s policy would deny of its reachable calls, and the grants none of them needs."""
    extra = cli_calls(USER_DATA.read_text(encoding="utf-8")) if identity.cli else []
    used: set[tuple[str, str]] = set()
    denied = []
    for needed in static_checks(graph, identity.entries, stack, extra):
        granting = allowed_by(identity.policy, needed.check)
        if not granting:
            denied.append(needed.describe())
        used |= set(granting)
    for check in identity.platform:
        granting = allowed_by(identity.policy, check)
        if not granting:
            denied.append(f"(platform) {check.action} on {check.resource}")
        used |= set(granting)
    return denied, granted_actions(identity.policy) - used - set(STATIC_EXEMPT)


@pytest.fixture(scope="module")
def graph() -> CallGraph:
    return CallGraph(project_sources())


def identities(dev: Deployment) -> list[Wired]:
    return [*wired_functions(dev), worker_identity(dev)]


def test_every_client_call_is_placed(graph: CallGraph) -> None:
    """A client the graph cannot recognise (a new variable name, a paginator of a computed operation) would hide its
    calls from the proof: it must fail here instead."""
    assert graph.unresolved == []


def test_the_proof_covers_every_function_the_program_wires(dev: Deployment) -> None:
    """Guards the evidence: the entry points come from the program, so a new function is proven without a list to
    update; the six of today must all be among them."""
    handlers = {entry for identity in wired_functions(dev) for entry in identity.entries}
    assert {f"handlers.{m}.handler" for m in ("upload", "jobs", "manage", "launcher", "release", "sweeper")} <= handlers


def test_no_reachable_call_is_denied(dev: Deployment, graph: CallGraph) -> None:
    """Regression: the release function can terminate a VM (a job cancelled while release starts it:
    `dispatch.record_vm`) but its role had no `ec2:TerminateInstances`; a path no local run drives fails on AWS."""
    failures = {}
    for identity in identities(dev):
        denied, _ = prove(graph, identity, stack_of(dev))
        if denied:
            failures[identity.name] = denied
    assert failures == {}, "\n".join(f"{name} would be denied:\n  " + "\n  ".join(d) for name, d in failures.items())


def test_every_grant_is_needed_by_a_reachable_call(dev: Deployment, graph: CallGraph) -> None:
    """Least privilege the other way: a grant no code path needs is a permission an attacker gets for free."""
    unused = {identity.name: sorted(prove(graph, identity, stack_of(dev))[1]) for identity in identities(dev)}
    assert {name: grants for name, grants in unused.items() if grants} == {}


def test_every_static_exemption_is_a_grant(dev: Deployment) -> None:
    granted = set().union(*(granted_actions(identity.policy) for identity in identities(dev)))
    assert set(STATIC_EXEMPT) <= granted


def test_the_worker_calls_pass_the_vpc_endpoint_policies(dev: Deployment, graph: CallGraph) -> None:
    """The worker's subnets reach S3 and DynamoDB only through the gateway endpoints, whose policies also decide."""
    extra = cli_calls(USER_DATA.read_text(encoding="utf-8"))
    needed = static_checks(graph, WORKER_ENTRIES, stack_of(dev), extra)
    for service, endpoint in ENDPOINTS.items():
        policy = dev.one("aws:ec2/vpcEndpoint:VpcEndpoint", endpoint).policy()
        checks = [n for n in needed if n.check.action.startswith(f"{service}:")]
        assert checks, f"the worker makes no {service} call"
        assert [n.describe() for n in checks if not allowed_by(policy, n.check)] == [], endpoint


# --- the proof fails when the code changes without its grant ---

def planted(edits: Mapping[str, tuple[str, str]]) -> CallGraph:
    """The project's sources with `module: (old, new)` replacements made (each `old` must be there)."""
    sources = project_sources()
    for module, (old, new) in edits.items():
        assert old in sources[module], f"{module} no longer has {old!r}"
        sources[module] = sources[module].replace(old, new)
    return CallGraph(sources)


NEW_ROUTE = '''

@router.route("DELETE", "/api/jobs/{id}/counter")
def reset_counter(event: Event, services: ApiServices) -> Response:
    services.ddb.delete_item(TableName=services.config.table, Key={"id": {"S": "x"}})
    return json_response(204, {})
'''


def identity_named(dev: Deployment, handler: str) -> Wired:
    return next(identity for identity in identities(dev) if handler in identity.entries)


def test_a_route_added_without_a_grant_fails_the_proof(dev: Deployment) -> None:
    """A new route of the jobs function that deletes items: its role has no DeleteItem, so the proof must name it."""
    graph = planted({"handlers.jobs": ("\n\ndef handler(", NEW_ROUTE + "\n\ndef handler(")})
    denied, _ = prove(graph, identity_named(dev, "handlers.jobs.handler"), stack_of(dev))
    assert len(denied) == 1 and "handlers.jobs.reset_counter" in denied[0] and "dynamodb:DeleteItem" in denied[0]


def test_a_deep_code_path_without_a_grant_fails_the_proof(dev: Deployment) -> None:
    """A path several calls down from the sweeper (its slot reads) that starts to delete a slot item: denied."""
    graph = planted({"handlers.capacity": ("page = ddb.batch_get_item(RequestItems=request)",
                                           "page = ddb.batch_get_item(RequestItems=request)\n"
                                           "            ddb.delete_item(TableName=table, Key={})")})
    denied, _ = prove(graph, identity_named(dev, "handlers.sweeper.handler"), stack_of(dev))
    assert any("handlers.capacity.leases" in d and "dynamodb:DeleteItem" in d for d in denied), denied


def test_a_grant_whose_call_is_removed_fails_the_proof(dev: Deployment) -> None:
    """The upload function's only S3 call gone: its PutObject (and tagging) grant is then reachable from nowhere."""
    graph = planted({"handlers.upload": ("post = s3.generate_presigned_post(", "post = dict(")})
    _, unused = prove(graph, identity_named(dev, "handlers.upload.handler"), stack_of(dev))
    assert unused == {("SignUploadsOfInputs", "s3:PutObject"), ("SignUploadsOfInputs", "s3:PutObjectTagging")}


def test_an_s3_call_site_must_declare_its_keys(dev: Deployment) -> None:
    """A new S3 call site is not assumed to touch any key: the proof asks which before it can pass."""
    graph = planted({"handlers.jobs": ("\n\ndef handler(", NEW_ROUTE.replace(
        "services.ddb.delete_item(TableName=services.config.table, Key={\"id\": {\"S\": \"x\"}})",
        "services.s3.delete_object(Bucket=services.config.bucket, Key=\"x\")") + "\n\ndef handler(")})
    with pytest.raises(AssertionError, match="declare the keys it touches"):
        prove(graph, identity_named(dev, "handlers.jobs.handler"), stack_of(dev))


def test_a_customer_managed_ebs_key_is_granted_to_every_function_that_launches(tuned: Deployment) -> None:
    """With `ebsKmsKeyArn`, RunInstances also needs the key (CreateGrant for AWS resources, Decrypt, DescribeKey,
    GenerateDataKeyWithoutPlaintext, ReEncrypt: AWS's "Requirements for Amazon EBS encryption"): the launcher,
    the release function and the sweeper all launch, and nothing else gets the key."""
    stack = stack_of(tuned, StackSettings.from_config(TUNED.get))
    assert stack.names.ebs_kms_key_arn == TUNED["ebsKmsKeyArn"]
    graph = CallGraph(project_sources())
    proofs = {identity.name: prove(graph, identity, stack) for identity in identities(tuned)}
    assert {name: denied for name, (denied, _) in proofs.items() if denied} == {}
    assert {name: unused for name, (_, unused) in proofs.items() if unused} == {}
    holders = {identity.name for identity in identities(tuned)
               if any(a.startswith("kms:") for _, a in granted_actions(identity.policy))}
    assert holders == {"compute-launcher", "compute-release", "compute-sweeper"}


def test_every_declared_s3_call_site_still_calls_s3(graph: CallGraph) -> None:
    """An `S3_KEYS` entry left behind by a renamed or removed function would declare keys for nothing."""
    sites = {call.site for calls in graph.calls.values() for call in calls if call.service == "s3"}
    declared = {key.split(" ")[0] for key in S3_KEYS}
    assert declared <= sites, declared - sites
