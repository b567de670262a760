"""IAM, proven against the calls: what each recorded AWS call needs from IAM, and whether a policy grants it.

`authorizations(call, names)` turns one call of a local run (`local.calls.AwsCall`) into the checks AWS makes
before it runs it: action, resource ARN (built from the call's parameters, with the deployed stack's names in place
of local mode's) and the condition keys this model can know (AWS's service authorization reference: e.g.
`TransactWriteItems` is authorised item by item as PutItem/UpdateItem/..., RunInstances also as CreateTags on what
it tags, PassRole of the template's instance role and GetParameters of its `resolve:ssm:` AMI). `allowed_by`
evaluates a policy document the way IAM does for Allow statements: actions and resources with `*`/`?` wildcards,
and the condition operators the program's policies use. A call the model does not know fails loudly, so a new call
cannot slip past unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from local.calls import AwsCall

ContextValue = str | list[str]


@dataclass(frozen=True)
class Check:
    """One authorisation AWS makes for a call."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Names:
    """The deployed stack's identifiers (from the program under mocks), by local mode's identifier."""

    partition: str
    region: str
    account: str
    tables: Mapping[str, str]
    buckets: Mapping[str, str]
    streams: Mapping[str, str]
    launch_templates: Mapping[str, str]
    """Local template id -> deployed template ARN."""
    subnets: Mapping[str, str]
    """Local subnet id -> deployed subnet ARN."""
    security_group_arn: str
    worker_role_arn: str
    ami_parameter_arn: str
    stack_tags: Mapping[str, str]
    instance_tags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Instance id -> its tags (as EC2 holds them), for `aws:ResourceTag/...` conditions."""
    ebs_kms_key_arn: str | None = None
    """The customer-managed KMS key the launch template encrypts root volumes with (`ebsKmsKeyArn`), if any."""

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (f"arn:{self.partition}:{service}:{self.region if region else ''}:"
                f"{self.account if account else ''}:{resource}")

    def table_arn(self, local_table: str) -> str:
        return self.arn("dynamodb", f"table/{self.tables[local_table]}")

    def object_arn(self, local_bucket: str, key: str) -> str:
        return f"arn:{self.partition}:s3:::{self.buckets[local_bucket]}/{key}"

    def bucket_arn(self, local_bucket: str) -> str:
        return f"arn:{self.partition}:s3:::{self.buckets[local_bucket]}"

    def instance_arn(self, instance_id: str) -> str:
        return self.arn("ec2", f"instance/{instance_id}")


def _key(item_key: Mapping[str, Any]) -> list[str]:
    return [item_key["id"]["S"]]


def _dynamodb(call: AwsCall, names: Names) -> list[Check]:
    p, op = call.params, call.operation
    if op in {"GetItem", "UpdateItem", "DeleteItem"}:
        return [Check(f"dynamodb:{op}", names.table_arn(p["TableName"]), {"dynamodb:LeadingKeys": _key(p["Key"])})]
    if op == "PutItem":
        return [Check("dynamodb:PutItem", names.table_arn(p["TableName"]), {"dynamodb:LeadingKeys": _key(p["Item"])})]
    if op == "Query":
        table = names.table_arn(p["TableName"])
        return [Check("dynamodb:Query", f"{table}/index/{p['IndexName']}" if "IndexName" in p else table)]
    if op == "BatchGetItem":
        return [Check("dynamodb:BatchGetItem", names.table_arn(table)) for table in p["RequestItems"]]
    if op == "TransactWriteItems":
        kinds = {"Put": ("PutItem", "Item"), "Update": ("UpdateItem", "Key"), "Delete": ("DeleteItem", "Key"),
                 "ConditionCheck": ("ConditionCheckItem", "Key")}
        checks = []
        for entry in p["TransactItems"]:
            [(kind, item)] = entry.items()
            action, key = kinds[kind]
            checks.append(Check(f"dynamodb:{action}", names.table_arn(item["TableName"]),
                                {"dynamodb:LeadingKeys": _key(item[key])}))
        return checks
    raise AssertionError(f"no IAM model for dynamodb {op}")


def _streams(call: AwsCall, names: Names) -> list[Check]:
    """The stream API: authorised on the stream's ARN (GetRecords names only an iterator of it)."""
    stream = call.params.get("StreamArn") or next(iter(names.streams))
    if call.operation not in {"DescribeStream", "GetShardIterator", "GetRecords", "ListStreams"}:
        raise AssertionError(f"no IAM model for dynamodbstreams {call.operation}")
    if call.operation == "ListStreams":
        return [Check("dynamodb:ListStreams", "*")]
    return [Check(f"dynamodb:{call.operation}", names.streams[stream])]


S3_ACTIONS = {
    "GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload", "DeleteObject": "s3:DeleteObject",
    "PutObjectTagging": "s3:PutObjectTagging", "DeleteObjectTagging": "s3:DeleteObjectTagging",
}


def _s3(call: AwsCall, names: Names) -> list[Check]:
    """Object operations on their object's ARN; CopyObject and UploadPartCopy read their source (s3:GetObject) and
    write their target (s3:PutObject); DeleteObjects deletes each key it names (s3:DeleteObject), as AWS's
    CopyObject, UploadPartCopy ("you must have the s3:GetObject permission to read the source object ... the
    s3:PutObject permission to write the object copy", its API reference, in botocore's S3 model) and DeleteObjects
    references say. The Service Authorization Reference for Amazon S3 maps CreateMultipartUpload, UploadPart and
    CompleteMultipartUpload to s3:PutObject and AbortMultipartUpload to s3:AbortMultipartUpload."""
    p = call.params
    if call.operation in {"CopyObject", "UploadPartCopy"}:
        source = p["CopySource"]
        bucket, key = (source["Bucket"], source["Key"]) if isinstance(source, dict) else source.split("/", 1)
        return [Check("s3:GetObject", names.object_arn(bucket, key)),
                Check("s3:PutObject", names.object_arn(p["Bucket"], p["Key"]))]
    if call.operation == "DeleteObjects":
        return [Check("s3:DeleteObject", names.object_arn(p["Bucket"], o["Key"])) for o in p["Delete"]["Objects"]]
    if call.operation not in S3_ACTIONS:
        raise AssertionError(f"no IAM model for s3 {call.operation}")
    return [Check(S3_ACTIONS[call.operation], names.object_arn(p["Bucket"], p["Key"]))]


def _run_instances(call: AwsCall, names: Names) -> list[Check]:
    """RunInstances from the stack's template: every resource it touches, the tags it sets, the role it passes and
    the AMI parameter the template resolves (as deployed: `resolve:ssm:` and the worker's instance profile)."""
    p = call.params
    created = {kind: names.arn("ec2", f"{kind}/*") for kind in ("instance", "volume", "network-interface")}
    run = [
        names.launch_templates[p["LaunchTemplate"]["LaunchTemplateId"]], names.subnets[p["SubnetId"]],
        names.security_group_arn, *created.values(), names.arn("ec2", "image/ami-from-ssm", account=False),
    ]
    checks = [Check("ec2:RunInstances", resource) for resource in run]
    for spec in p.get("TagSpecifications", []):
        checks.append(Check("ec2:CreateTags", created[spec["ResourceType"]], {"ec2:CreateAction": "RunInstances"}))
    checks.append(Check("iam:PassRole", names.worker_role_arn, {"iam:PassedToService": "ec2.amazonaws.com"}))
    checks.append(Check("ssm:GetParameters", names.ami_parameter_arn))
    if names.ebs_kms_key_arn:  # the root volume's customer-managed key (AWS's EBS encryption requirements)
        key = names.ebs_kms_key_arn
        checks.append(Check("kms:CreateGrant", key, {"kms:GrantIsForAWSResource": "true"}))
        checks += [Check(action, key) for action in ("kms:Decrypt", "kms:DescribeKey",
                                                     "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom",
                                                     "kms:ReEncryptTo")]
    return checks


def _ec2(call: AwsCall, names: Names) -> list[Check]:
    if call.operation == "DescribeInstances":
        return [Check("ec2:DescribeInstances", "*")]
    if call.operation == "RunInstances":
        return _run_instances(call, names)
    if call.operation == "TerminateInstances":
        checks = []
        for instance in call.params["InstanceIds"]:
            tags = {f"aws:ResourceTag/{key}": names.stack_tags.get(value, value)
                    for key, value in names.instance_tags[instance].items()}
            checks.append(Check("ec2:TerminateInstances", names.instance_arn(instance), tags))
        return checks
    raise AssertionError(f"no IAM model for ec2 {call.operation}")


def authorizations(call: AwsCall, names: Names) -> list[Check]:
    """The checks AWS makes for one call, in the deployed stack's names."""
    if call.service == "dynamodb":
        return _dynamodb(call, names)
    if call.service == "dynamodbstreams":
        return _streams(call, names)
    if call.service == "s3":
        return _s3(call, names)
    if call.service == "ec2":
        return _ec2(call, names)
    raise AssertionError(f"no IAM model for {call.service} {call.operation}")


def _wildcard(pattern: str) -> re.Pattern[str]:
    """IAM's matching: `*` any run of characters, `?` any one (`/` and `:` included)."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z",
                      re.DOTALL)


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return bool(_wildcard(pattern.lower() if ignore_case else pattern).match(value.lower() if ignore_case else value))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, ContextValue]) -> bool:
    """IAM's evaluation of the operators the program uses; an operator this model does not know fails the test."""
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            allowed, value = _as_list(wanted), context.get(key)
            if operator == "StringEquals":
                ok = isinstance(value, str) and value in allowed
            elif operator == "StringNotEquals":  # true for a missing key, as every negated operator
                ok = not (isinstance(value, str) and value in allowed)
            elif operator in {"ArnNotEquals", "ArnNotLike"}:  # true for a missing key too
                ok = not (isinstance(value, str) and any(_like(w, value) for w in allowed))
            elif operator in {"StringLike", "ArnEquals", "ArnLike"}:  # both Arn operators take wildcards in IAM
                ok = isinstance(value, str) and any(_like(w, value) for w in allowed)
            elif operator == "ForAllValues:StringLike":  # true for a missing key, as IAM has it
                ok = value is None or all(any(_like(w, v) for w in allowed) for v in _as_list(value))
            elif operator == "ForAllValues:StringNotLike":  # true for a missing key too
                ok = value is None or not any(_like(w, v) for w in allowed for v in _as_list(value))
            elif operator == "Bool":
                ok = value is not None and str(value).lower() in {str(w).lower() for w in allowed}
            else:
                raise AssertionError(f"no model of condition operator {operator}")
            if not ok:
                return False
    return True


def allowed_by(policy: Mapping[str, Any], check: Check) -> list[tuple[str, str]]:
    """(Sid, granted action pattern) of every Allow statement that grants `check`; empty when IAM would deny it."""
    statements = _as_list(policy["Statement"])
    if any(s["Effect"] == "Deny" and _grants(s, check) for s in statements):
        return []
    return [(s.get("Sid", ""), action) for s in statements if s["Effect"] == "Allow" and _grants(s, check)
            for action in _as_list(s["Action"]) if _like(action, check.action, ignore_case=True)]


def _grants(statement: Mapping[str, Any], check: Check) -> bool:
    """Whether the statement applies to the check: its actions (or all but its `NotAction`), its resources (or all
    but its `NotResource`), and its conditions."""
    return (_matches(statement, "Action", check.action, ignore_case=True)
            and _matches(statement, "Resource", check.resource)
            and condition_holds(statement.get("Condition", {}), check.context))


def _matches(statement: Mapping[str, Any], element: str, value: str, *, ignore_case: bool = False) -> bool:
    if f"Not{element}" in statement:
        return not any(_like(p, value, ignore_case) for p in _as_list(statement[f"Not{element}"]))
    return any(_like(p, value, ignore_case) for p in _as_list(statement.get(element, [])))


def permitted(policies: Sequence[Mapping[str, Any]], check: Check, boundary: Mapping[str, Any] | None = None) -> bool:
    """IAM's decision for a role with these identity policies (and permissions boundary): no Deny in any of them,
    an Allow in one of them, and, with a boundary, an Allow in the boundary too (AWS's policy evaluation logic)."""
    statements = [s for policy in policies for s in _as_list(policy["Statement"])]
    if boundary is not None and not permitted([boundary], check):
        return False
    if any(s["Effect"] == "Deny" and _grants(s, check) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _grants(s, check) for s in statements)


def granted_actions(policy: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(Sid, action) of every Allow statement."""
    return {(s.get("Sid", ""), action) for s in _as_list(policy["Statement"]) if s["Effect"] == "Allow"
            for action in _as_list(s["Action"])}


def denied_and_unused(
    policy: Mapping[str, Any], calls: Sequence[AwsCall], names: Names
) -> tuple[list[str], set[tuple[str, str]]]:
    """The calls (described) that `policy` would deny, and its granted (Sid, action) pairs no call used."""
    denied, used = [], set()
    for call in calls:
        for check in authorizations(call, names):
            granting = allowed_by(policy, check)
            if not granting:
                denied.append(f"{call.service} {call.operation}: {check.action} on {check.resource} "
                              f"with {dict(check.context)}")
            used |= set(granting)
    return denied, granted_actions(policy) - used
