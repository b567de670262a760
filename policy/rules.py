"""The invariants a reviewer of filepipe checks, as Pulumi CrossGuard policies.

Properties arrive as the engine sees them (camelCase inputs). During a preview an input that depends on a resource
not yet created is unknown; reading it raises `UnknownValueError`, which the SDK reports as "can't run during
preview" and the rule then runs for real at `pulumi up`, before the resource is created. This module imports
nothing but the policy SDK and the standard library: the CLI runs it from this folder alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
SUBNET = "aws:ec2/subnet:Subnet"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TABLE = "aws:dynamodb/table:Table"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
QUEUE = "aws:sqs/queue:Queue"
ROLE = "aws:iam/role:Role"
INSTANCE_PROFILE = "aws:iam/instanceProfile:InstanceProfile"
BOUNDED_ROLES = "iam-roles-bounded"
"""The rule whose config (`--policy-pack-config`, written from the stack's config by `policy/stack_config.py`)
names the stack's `rolePath` and `permissionsBoundary`."""

PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
SSE_ALGORITHMS = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
BUCKET_COMPANIONS = {
    PUBLIC_ACCESS_BLOCK: "a public access block",
    OWNERSHIP: "ownership controls",
    ENCRYPTION: "default encryption",
    BUCKET_POLICY: "a bucket policy (TLS only)",
}
"""What every bucket needs beside it, each a separate resource whose `bucket` input is that bucket."""

POLICY_DOCUMENTS: Mapping[str, tuple[str, ...]] = {
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/role:Role": ("assumeRolePolicy",),
    BUCKET_POLICY: ("policy",),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("policy",),
    "aws:sqs/queuePolicy:QueuePolicy": ("policy",),
}
"""Where IAM policy documents (JSON strings) sit, by resource type."""
ACTIONS_ONLY_ON_ANY_RESOURCE = frozenset({"ec2:DescribeInstances", "dynamodb:ListStreams"})
"""Actions AWS authorises only on `"*"` (the Service Authorization Reference lists no resource type for them) that
this program uses. Add one here only with that reference open: any other action must name its resources."""
VIEWER_HTTPS = frozenset({"https-only", "redirect-to-https"})

Props = Mapping[str, Any]
Check = Callable[[Props], Iterable[str]]


def resource_policy(name: str, description: str, checks: Mapping[str, Check]) -> ResourceValidationPolicy:
    """A policy that runs `checks[type]` on each resource of that type and reports every problem it yields."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        check = checks.get(args.resource_type)
        if check is None:
            return
        for problem in check(args.props):
            report_violation(f"{args.name}: {problem}", None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate)


def public_access_blocked(props: Props) -> Iterator[str]:
    for flag in PUBLIC_ACCESS_FLAGS:
        if props.get(flag) is not True:
            yield f"{flag} must be true"


def ownership_enforced(props: Props) -> Iterator[str]:
    if (props.get("rule") or {}).get("objectOwnership") != "BucketOwnerEnforced":
        yield "object ownership must be BucketOwnerEnforced (ACLs disabled)"


def encrypted_by_default(props: Props) -> Iterator[str]:
    rules = props.get("rules") or []
    algorithms = [((rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm")) for rule in rules]
    if not algorithms or any(algorithm not in SSE_ALGORITHMS for algorithm in algorithms):
        yield f"default encryption must be one of {sorted(SSE_ALGORITHMS)}, got {algorithms}"


def statements(document: str) -> list[dict[str, Any]]:
    found = json.loads(document).get("Statement", [])
    return [found] if isinstance(found, dict) else list(found)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, (str, dict)) else list(value)


def denies_insecure_transport(props: Props) -> Iterator[str]:
    for statement in statements(props["policy"]):
        secure = (statement.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport")
        if statement.get("Effect") == "Deny" and str(secure).lower() == "false" and statement.get("Principal") == "*":
            return
    yield "the bucket policy must deny every request with aws:SecureTransport false"


def launch_template_hardened(props: Props) -> Iterator[str]:
    if (props.get("metadataOptions") or {}).get("httpTokens") != "required":
        yield "IMDSv2 must be required (metadataOptions.httpTokens = required)"
    for interface in props.get("networkInterfaces") or []:
        if str(interface.get("associatePublicIpAddress")).lower() == "true":
            yield "a network interface must not get a public IP"
    for mapping in props.get("blockDeviceMappings") or []:
        if "ebs" in mapping and str(mapping["ebs"].get("encrypted")).lower() != "true":
            yield f"volume {mapping.get('deviceName')} must be encrypted"
    if props.get("instanceInitiatedShutdownBehavior") != "terminate":
        yield "shutdown behaviour must be terminate (a VM that powers off must not linger, stopped)"


def subnet_private(props: Props) -> Iterator[str]:
    if props.get("mapPublicIpOnLaunch") is True:
        yield "instances in the subnet must not get a public IP"


def least_privilege(resource_type: str) -> Check:
    def check(props: Props) -> Iterator[str]:
        for key in POLICY_DOCUMENTS[resource_type]:
            if props.get(key):
                yield from statement_problems(statements(props[key]))

    return check


def statement_problems(found: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Allow statements only: a Deny may be broad (it takes permissions away)."""
    for statement in found:
        if statement.get("Effect") != "Allow":
            continue
        sid = statement.get("Sid", "(no Sid)")
        if "NotAction" in statement or "NotResource" in statement:
            yield f"statement {sid}: NotAction / NotResource in an Allow grants everything else"
        actions = [str(a) for a in as_list(statement.get("Action"))]
        wild = [a for a in actions if "*" in a]
        if wild:
            yield f"statement {sid}: wildcard action {wild}"
        if "*" in as_list(statement.get("Resource")):
            broad = sorted(set(actions) - ACTIONS_ONLY_ON_ANY_RESOURCE)
            if broad:
                yield f"statement {sid}: {broad} on resource '*' (only {sorted(ACTIONS_ONLY_ON_ANY_RESOURCE)} may be)"


def log_retention(props: Props) -> Iterator[str]:
    if not props.get("retentionInDays"):
        yield "a log group must have a retention (retentionInDays), or its logs are kept and billed forever"


def point_in_time_recovery(props: Props) -> Iterator[str]:
    if (props.get("pointInTimeRecovery") or {}).get("enabled") is not True:
        yield "point-in-time recovery must be enabled"


def cloudfront_https_with_security_headers(props: Props) -> Iterator[str]:
    default = props.get("defaultCacheBehavior") or {}
    for behavior in [default, *(props.get("orderedCacheBehaviors") or [])]:
        if behavior.get("viewerProtocolPolicy") not in VIEWER_HTTPS:
            yield f"behaviour {behavior.get('pathPattern', 'default')} must be HTTPS only (or redirect to HTTPS)"
    if not default.get("responseHeadersPolicyId"):
        yield "the default behaviour (the pages) must have a security-headers response policy"
    for origin in props.get("origins") or []:
        custom = origin.get("customOriginConfig")
        if custom and custom.get("originProtocolPolicy") != "https-only":
            yield f"origin {origin.get('originId')} must be reached over HTTPS only"


def queue_encrypted(props: Props) -> Iterator[str]:
    if props.get("sqsManagedSseEnabled") is not True and not props.get("kmsMasterKeyId"):
        yield "the queue must be encrypted (SQS-managed SSE or a KMS key)"


def roles_bounded(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """With the stack's `rolePath` and `permissionsBoundary` in this rule's config, every role carries both and
    every instance profile the path: deploy/ci-identity's deploy roles may create no other, so a role made another
    way fails here, in review, not at `pulumi up` with AccessDenied."""
    config = args.get_config() or {}
    path, boundary = config.get("rolePath"), config.get("permissionsBoundary")
    if not path or not boundary or args.resource_type not in (ROLE, INSTANCE_PROFILE):
        return
    if args.props.get("path") != path:
        report_violation(f"{args.name}: its path must be {path} (rolePath), got {args.props.get('path')!r}", None)
    if args.resource_type == ROLE and args.props.get("permissionsBoundary") != boundary:
        report_violation(f"{args.name}: its permissions boundary must be {boundary} (permissionsBoundary), "
                         f"got {args.props.get('permissionsBoundary')!r}", None)


def protected_data_stays(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A resource the program protects (`protectData`) must not be deletable by other means either."""
    if not args.opts.protect:
        return
    if args.resource_type == BUCKET and args.props.get("forceDestroy") is True:
        report_violation(f"{args.name}: a protected bucket must not set force_destroy", None)
    if args.resource_type == TABLE and args.props.get("deletionProtectionEnabled") is not True:
        report_violation(f"{args.name}: a protected table must have deletion protection", None)


def buckets_have_every_guard(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Each bucket has, among the resources whose `bucket` input comes from it, one of each `BUCKET_COMPANIONS`.

    The link is the engine's property dependency, known even in a preview where the bucket's id is not."""
    guards: dict[str, set[str]] = {}
    for resource in args.resources:
        if resource.resource_type in BUCKET_COMPANIONS:
            for source in resource.property_dependencies.get("bucket", []):
                guards.setdefault(source.urn, set()).add(resource.resource_type)
    for resource in args.resources:
        if resource.resource_type == BUCKET:
            missing = [what for kind, what in BUCKET_COMPANIONS.items() if kind not in guards.get(resource.urn, set())]
            if missing:
                report_violation(f"bucket {resource.name} has no {', no '.join(missing)}", resource.urn)


POLICIES: list[Any] = [
    resource_policy(
        "s3-private-encrypted-tls-only",
        "S3 buckets block every kind of public access, disable ACLs, encrypt by default and refuse plain HTTP.",
        {
            PUBLIC_ACCESS_BLOCK: public_access_blocked,
            OWNERSHIP: ownership_enforced,
            ENCRYPTION: encrypted_by_default,
            BUCKET_POLICY: denies_insecure_transport,
        },
    ),
    StackValidationPolicy(
        name="s3-buckets-fully-guarded",
        description="Every S3 bucket has a public access block, ownership controls, default encryption and a policy.",
        validate=buckets_have_every_guard,
    ),
    resource_policy(
        "ec2-worker-vms-hardened",
        "Launch templates require IMDSv2, encrypt volumes, terminate on shutdown; no VM gets a public IP.",
        {LAUNCH_TEMPLATE: launch_template_hardened, SUBNET: subnet_private},
    ),
    resource_policy(
        "iam-least-privilege",
        "No Allow statement has a wildcard action, and '*' resources only for actions AWS allows nowhere else.",
        {resource_type: least_privilege(resource_type) for resource_type in POLICY_DOCUMENTS},
    ),
    resource_policy("logs-retention", "Log groups have a retention.", {LOG_GROUP: log_retention}),
    resource_policy(
        "dynamodb-point-in-time-recovery", "DynamoDB tables have point-in-time recovery.",
        {TABLE: point_in_time_recovery},
    ),
    resource_policy(
        "cloudfront-https-security-headers",
        "CloudFront serves HTTPS only, reaches custom origins over HTTPS, and sends security headers.",
        {DISTRIBUTION: cloudfront_https_with_security_headers},
    ),
    resource_policy("sqs-encrypted", "SQS queues are encrypted at rest.", {QUEUE: queue_encrypted}),
    ResourceValidationPolicy(
        name=BOUNDED_ROLES,
        description="With rolePath and permissionsBoundary configured, every role and instance profile is under the "
                    "path and every role carries the boundary.",
        validate=roles_bounded,
        config_schema=PolicyConfigSchema(
            properties={"rolePath": {"type": "string"}, "permissionsBoundary": {"type": "string"}}
        ),
    ),
    ResourceValidationPolicy(
        name="protected-data-stays",
        description="A protected bucket has no force_destroy; a protected table has deletion protection.",
        validate=protected_data_stays,
    ),
]
