"""The policy pack (`policy/`) against the resources the program registers under mocks: every rule passes on the
real program (both stack files), and a deliberately wrong variant of each kind of resource is reported.

Each rule gets what the Pulumi CLI would give it: `ResourceValidationArgs` (or `StackValidationArgs`) holding the
resource's inputs behind the SDK's unknown-checking proxy, its options, and for the stack rule the property
dependencies (under mocks a resource's id is `<name>-id`, so an input equal to it depends on that resource).
"""

from __future__ import annotations

import ast
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policy import rules
from tests.infra.conftest import PROJECT, ROOT, STACK, Deployment, Recorded

POLICIES = {policy.name: policy for policy in rules.POLICIES}
RESOURCE_POLICIES = [p for p in rules.POLICIES if isinstance(p, ResourceValidationPolicy)]


def urn(resource: Recorded) -> str:
    return f"urn:pulumi:{STACK}::{PROJECT}::{resource.type}::{resource.name}"


def options(resource: Recorded) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=resource.options.get("protect", False), ignore_changes=[], delete_before_replace=None, aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[],
    )


def validation_args(resource: Recorded, props: dict[str, Any] | None = None) -> ResourceValidationArgs:
    inputs = copy.deepcopy(resource.inputs if props is None else props)
    return ResourceValidationArgs(resource.type, unknown_checking_proxy(inputs), urn(resource), resource.name,
                                  options(resource), None)


def stack_args(resources: list[Recorded]) -> StackValidationArgs:
    converted = {
        r.name + "|" + r.type: PolicyResource(r.type, unknown_checking_proxy(copy.deepcopy(r.inputs)), urn(r), r.name,
                                              options(r), None, None, [], {})
        for r in resources
    }
    by_id = {f"{r.name}-id": converted[r.name + "|" + r.type] for r in resources if r.type.startswith("aws:")}
    for r in resources:
        deps = converted[r.name + "|" + r.type].property_dependencies
        for key, value in r.inputs.items():
            if isinstance(value, str) and value in by_id:
                deps[key] = [by_id[value]]
    return StackValidationArgs(list(converted.values()))


def violations(policy: Any, args: ResourceValidationArgs | StackValidationArgs) -> list[str]:
    found: list[str] = []
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_rule_passes_on_the_program(stack: str, dev: Deployment, prod: Deployment) -> None:
    """Regression: a rule that rejects what the program really deploys fails every preview (or a program change
    that breaks an invariant, which is what the rule is for)."""
    deployment = {"dev": dev, "prod": prod}[stack]
    for policy in RESOURCE_POLICIES:
        for resource in deployment.resources:
            assert violations(policy, validation_args(resource)) == [], (policy.name, resource.name)
    for policy in rules.POLICIES:
        if isinstance(policy, StackValidationPolicy):
            assert violations(policy, stack_args(deployment.resources)) == [], policy.name


def mutate(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(props: dict[str, Any]) -> dict[str, Any]:
        changed = copy.deepcopy(props)
        change(changed)
        return changed

    return apply


def set_key(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda props: props.__setitem__(key, value)


def policy_with(statement: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        document = json.loads(props["policy"])
        document["Statement"].append(statement)
        props["policy"] = json.dumps(document)

    return change


def only_allows(props: dict[str, Any]) -> None:
    document = json.loads(props["policy"])
    document["Statement"] = [s for s in document["Statement"] if s["Effect"] == "Allow"]
    props["policy"] = json.dumps(document)


WRONG: list[tuple[str, str, str, Callable[[dict[str, Any]], None], str]] = [
    ("s3-private-encrypted-tls-only", rules.PUBLIC_ACCESS_BLOCK, "storage-data-public-access",
     set_key("restrictPublicBuckets", False), "restrictPublicBuckets"),
    ("s3-private-encrypted-tls-only", rules.OWNERSHIP, "site-files-ownership",
     set_key("rule", {"objectOwnership": "ObjectWriter"}), "BucketOwnerEnforced"),
    ("s3-private-encrypted-tls-only", rules.ENCRYPTION, "storage-data-encryption", set_key("rules", []),
     "default encryption"),
    ("s3-private-encrypted-tls-only", rules.BUCKET_POLICY, "site-files-policy", only_allows, "SecureTransport"),
    ("ec2-worker-vms-hardened", rules.LAUNCH_TEMPLATE, "compute-worker",
     lambda p: p["metadataOptions"].__setitem__("httpTokens", "optional"), "IMDSv2"),
    ("ec2-worker-vms-hardened", rules.LAUNCH_TEMPLATE, "compute-worker",
     set_key("networkInterfaces", [{"associatePublicIpAddress": "true"}]), "public IP"),
    ("ec2-worker-vms-hardened", rules.LAUNCH_TEMPLATE, "compute-worker",
     lambda p: p["blockDeviceMappings"][0]["ebs"].__setitem__("encrypted", "false"), "encrypted"),
    ("ec2-worker-vms-hardened", rules.LAUNCH_TEMPLATE, "compute-worker",
     set_key("instanceInitiatedShutdownBehavior", "stop"), "terminate"),
    ("ec2-worker-vms-hardened", rules.SUBNET, "compute-private-0", set_key("mapPublicIpOnLaunch", True), "public IP"),
    ("iam-least-privilege", "aws:iam/rolePolicy:RolePolicy", "compute-worker-policy",
     policy_with({"Sid": "Broad", "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}),
     "wildcard action"),
    ("iam-least-privilege", "aws:iam/rolePolicy:RolePolicy", "api-jobs-policy",
     policy_with({"Sid": "Any", "Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"}),
     "on resource '*'"),
    ("iam-least-privilege", "aws:iam/rolePolicy:RolePolicy", "compute-sweeper-policy",
     policy_with({"Sid": "Rest", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}), "NotAction"),
    ("iam-least-privilege", "aws:ec2/vpcEndpoint:VpcEndpoint", "compute-dynamodb",
     policy_with({"Sid": "All", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}),
     "wildcard action"),
    ("iam-least-privilege", "aws:s3/bucketPolicy:BucketPolicy", "storage-data-policy",
     policy_with({"Sid": "Read", "Effect": "Allow", "Principal": "*", "Action": "s3:Get*",
                  "Resource": "arn:aws:s3:::b/*"}), "wildcard action"),
    ("logs-retention", rules.LOG_GROUP, "api-access-logs", lambda p: p.pop("retentionInDays"), "retention"),
    ("dynamodb-point-in-time-recovery", rules.TABLE, "storage-jobs",
     set_key("pointInTimeRecovery", {"enabled": False}), "point-in-time recovery"),
    ("cloudfront-https-security-headers", rules.DISTRIBUTION, "site-cdn",
     lambda p: p["orderedCacheBehaviors"][0].__setitem__("viewerProtocolPolicy", "allow-all"), "HTTPS only"),
    ("cloudfront-https-security-headers", rules.DISTRIBUTION, "site-cdn",
     lambda p: p["defaultCacheBehavior"].pop("responseHeadersPolicyId"), "security-headers"),
    ("cloudfront-https-security-headers", rules.DISTRIBUTION, "site-cdn",
     lambda p: p["origins"][1]["customOriginConfig"].__setitem__("originProtocolPolicy", "http-only"), "HTTPS only"),
    ("sqs-encrypted", rules.QUEUE, "compute-launch-failures", set_key("sqsManagedSseEnabled", False), "encrypted"),
    ("protected-data-stays", rules.BUCKET, "storage-data", set_key("forceDestroy", True), "force_destroy"),
    ("protected-data-stays", rules.TABLE, "storage-jobs", set_key("deletionProtectionEnabled", False),
     "deletion protection"),
]


@pytest.mark.parametrize(("policy", "token", "name", "change", "expected"), WRONG,
                         ids=[f"{w[0]}:{w[2]}:{w[4]}" for w in WRONG])
def test_a_wrong_variant_of_each_resource_is_reported(
    prod: Deployment, policy: str, token: str, name: str, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    """Regression: a rule that passes whatever it is given (a typo in a property name, a check that never runs)
    would let a pull request drop the invariant with a green preview. Built on prod, whose data is protected."""
    resource = prod.one(token, name)
    found = violations(POLICIES[policy], validation_args(resource, mutate(change)(resource.inputs)))
    assert any(expected in message and name in message for message in found), found


@pytest.mark.parametrize("companion", sorted(rules.BUCKET_COMPANIONS))
def test_a_bucket_missing_a_guard_is_reported(dev: Deployment, companion: str) -> None:
    """Regression: a new bucket created without its public access block, ownership controls, encryption or
    TLS-only policy (the per-resource rules cannot see a resource that does not exist)."""
    dropped = dev.one(companion, f"storage-data-{rules_suffix(companion)}")
    kept = [r for r in dev.resources if r is not dropped]
    found = violations(POLICIES["s3-buckets-fully-guarded"], stack_args(kept))
    assert found == [f"bucket storage-data has no {rules.BUCKET_COMPANIONS[companion]}"]


def rules_suffix(token: str) -> str:
    return {rules.PUBLIC_ACCESS_BLOCK: "public-access", rules.OWNERSHIP: "ownership",
            rules.ENCRYPTION: "encryption", rules.BUCKET_POLICY: "policy"}[token]


def test_an_input_unknown_in_preview_is_not_passed_silently(dev: Deployment) -> None:
    """Regression: a rule that treats an unknown value (a policy naming an ARN not created yet) as fine; the SDK
    must see `UnknownValueError` to report "can't run during preview" and run the rule at `pulumi up`."""
    resource = dev.one("aws:iam/rolePolicy:RolePolicy", "compute-worker-policy")
    args = validation_args(resource, {**resource.inputs, "policy": UNKNOWN_STRING_VALUE})
    with pytest.raises(UnknownValueError):
        violations(POLICIES["iam-least-privilege"], args)


def test_the_pack_is_mandatory_and_runs_every_rule() -> None:
    """Regression: an advisory pack (violations only warn) or a rule defined but left out of the pack."""
    tree = ast.parse((ROOT / "policy" / "__main__.py").read_text(encoding="utf-8"))
    [call] = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "PolicyPack"]
    keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
    assert keywords == {"policies": "POLICIES", "enforcement_level": "EnforcementLevel.MANDATORY"}
    assert len(POLICIES) == len(rules.POLICIES), "policy names must be unique"
    for policy in rules.POLICIES:
        assert policy.enforcement_level is None, f"{policy.name} must not lower the pack's level"
