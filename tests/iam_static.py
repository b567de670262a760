"""The static IAM proof's model: the code each deployed function runs, the client calls it can reach
(`tests/callgraph.py`), and the authorisations AWS makes for each, in the deployed stack's names.

From method to IAM action: botocore's service model names the API operation a client method calls
(`xform_name(OperationName) == method`); `tests/iam_calls.py`'s `authorizations` then gives the action(s) AWS checks
for it, as AWS's Service Authorization Reference and each API's "Permissions" section list them: mostly
`<service>:<OperationName>`, with the documented exceptions modelled there (HeadObject needs s3:GetObject, as S3's
HeadObject reference says; multipart uploads s3:PutObject; TransactWriteItems each item's own action; RunInstances
also CreateTags, PassRole and the `resolve:ssm:` GetParameters). A call is turned into one such recorded-call shape
(`AwsCall`) per resource it can touch, so both proofs share one IAM model. s3transfer's managed transfers are the
API calls s3transfer makes for them (`TRANSFERS`); a presigned request is authorised as the request it signs.

What a call carries, statically:
- DynamoDB: the stack's one table; a Query each index named by an `IndexName` in the reachable code (the table when
  none); TransactWriteItems each kind of item (`Put`, `Update`, ...) the reachable code writes. Item keys are data,
  so `dynamodb:LeadingKeys` conditions are left to the recorded proof (tests/infra/test_iam_proven.py).
- S3: the stack's bucket, and the keys `S3_KEYS` declares for the function holding the call: a new S3 call site
  must say what it touches before it can pass.
- EC2: RunInstances from the stack's template in each of its subnets, tagging the `ResourceType`s the call names;
  TerminateInstances of an instance carrying the stack tag (every VM the stack starts carries it).
Platform calls made with a function's role but not by its code (`platform_checks`): the Lambda runtime's log writes,
and an event source mapping's stream reads and on-failure messages.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore import xform_name

from handlers.jobmodel import INPUT_PREFIX, OUTPUT_PREFIX
from local.calls import AwsCall
from stackspec.settings import STACK_TAG
from tests.callgraph import MODULE_BODY, CallGraph, ClientCall
from tests.iam_calls import Check, Names, authorizations
from worker.userdata import WORKER_SCRIPT_KEY

ROOT = Path(__file__).resolve().parent.parent
USER_DATA = ROOT / "worker" / "user_data.sh"
USER_DATA_MODULE = "worker.user_data"
"""The user-data's embedded Python (its `<<'PY'` heredoc), analysed as a module of this name."""
WORKER_ENTRIES = (f"worker.worker.{MODULE_BODY}", f"{USER_DATA_MODULE}.{MODULE_BODY}")
"""What runs on a worker VM: the user-data's Python, which runs worker.py as `__main__`."""
CLI_SERVICES = {"s3api": "s3", "dynamodb": "dynamodb", "ec2": "ec2"}
"""AWS CLI command groups -> botocore service (the high-level `aws s3` commands are not modelled: a use fails)."""

TABLE, BUCKET, TEMPLATE, STACK, INSTANCE = "table", "bucket", "lt-stack", "stack", "i-stack"
"""The local names of the synthesized calls (`Names` maps them to the deployment's)."""
S3_KEYS: dict[str, tuple[str, ...]] = {
    "handlers.upload.create_upload": (INPUT_PREFIX,),
    "handlers.launcher.claim_upload": (INPUT_PREFIX,),
    "handlers.jobs.uploaded_size": (INPUT_PREFIX,),
    "handlers.jobviews.download_url": (OUTPUT_PREFIX,),
    "handlers.manage.input_size": (INPUT_PREFIX,),
    "handlers.manage.copy_input": (INPUT_PREFIX,),
    "handlers.manage.retry_job": (INPUT_PREFIX,),
    "handlers.manage.delete_files": (INPUT_PREFIX, OUTPUT_PREFIX),
    "worker.worker.head_input": (INPUT_PREFIX,),
    "worker.worker.put_small_output get_object": (INPUT_PREFIX,),
    "worker.worker.put_small_output put_object": (OUTPUT_PREFIX,),
    "worker.worker.copy_into_output": (OUTPUT_PREFIX,),
    "worker.worker.copy_parts": (OUTPUT_PREFIX,),
    "worker.worker.abort_upload": (OUTPUT_PREFIX,),
    "worker.worker.upload_log": (OUTPUT_PREFIX,),
    f"{USER_DATA_MODULE}.{MODULE_BODY}": (WORKER_SCRIPT_KEY,),
}
"""Function holding an S3 call (or `"<function> <method>"` for one of its calls) -> the key prefixes, or the exact
key, the call can touch in the stack's bucket."""
S3_COPY_SOURCES: dict[str, str] = {"worker.worker.copy_parts": INPUT_PREFIX}
"""Function holding a server-side copy (UploadPartCopy) -> the key prefix its copy source lies under; without an
entry a copy's source is taken to be under its target's prefix."""
TRANSFERS = {
    "upload_file": ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
                    "AbortMultipartUpload"),
    "upload_fileobj": ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
                       "AbortMultipartUpload"),
    "download_file": ("HeadObject", "GetObject"),
    "download_fileobj": ("HeadObject", "GetObject"),
    "copy": ("HeadObject", "CopyObject", "CreateMultipartUpload", "UploadPartCopy", "CompleteMultipartUpload",
             "AbortMultipartUpload"),
}
"""s3transfer's managed transfers -> the API calls they make: an upload is one PutObject, or a multipart upload it
aborts when a part fails; a download HEADs the object for its size, then GETs it (ranges for a large one); a copy
HEADs the source, then copies it whole or in parts."""
TRANSACTION_ITEMS = ("Put", "Update", "Delete", "ConditionCheck")


def project_sources(root: Path = ROOT) -> dict[str, str]:
    """Module name -> source of everything that runs in a function or on a VM: handlers/, worker/ and the
    user-data's Python."""
    sources = {f"{path.parent.name}.{path.stem}": path.read_text(encoding="utf-8")
               for folder in ("handlers", "worker") for path in sorted((root / folder).glob("*.py"))}
    sources[USER_DATA_MODULE] = user_data_python((root / USER_DATA.relative_to(ROOT)).read_text(encoding="utf-8"))
    return sources


def user_data_python(script: str) -> str:
    """The Python the user-data pipes to `python3` (its heredocs quoted `'PY'`), joined."""
    return "\n".join(re.findall(r"<<'PY'\n(.*?)\nPY\n", script, flags=re.DOTALL))


def cli_calls(script: str) -> list[ClientCall]:
    """The AWS CLI calls of a shell script (`aws <service> <command>`, comments skipped) as client calls."""
    found = []
    for number, line in enumerate(script.splitlines(), start=1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        for group, command in re.findall(r"(?:^|[\s;(|&])aws\s+([a-z0-9-]+)\s+([a-z0-9-]+)", code):
            service = CLI_SERVICES.get(group)
            if service is None:
                raise AssertionError(f"user-data line {number}: no model of the AWS CLI's `aws {group}`")
            found.append(ClientCall(service, command.replace("-", "_"), "worker/user_data.sh", number,
                                    ast.Call(func=ast.Name("aws"), args=[], keywords=[])))
    return found


def operation_name(service: str, method: str) -> str:
    """The API operation a client method calls, from botocore's service model."""
    model = botocore.session.get_session().get_service_model(service)
    names = {xform_name(name): name for name in model.operation_names}
    if method not in names:
        raise AssertionError(f"{service} has no operation for client method {method}")
    return names[method]


@dataclass(frozen=True)
class Stack:
    """What the synthesized calls name: the deployment's identifiers behind the local names above."""

    names: Names
    subnets: tuple[str, ...]

    @classmethod
    def of(cls, *, partition: str, region: str, account: str, table: str, bucket: str, template_arn: str,
           subnet_arns: Sequence[str], security_group_arn: str, worker_role_arn: str, ami_parameter_arn: str,
           stack_tag: str, stream_arn: str, ebs_kms_key_arn: str | None = None) -> Stack:
        subnets = {f"subnet-{i}": arn for i, arn in enumerate(subnet_arns)}
        names = Names(
            partition=partition, region=region, account=account, tables={TABLE: table}, buckets={BUCKET: bucket},
            streams={"stream": stream_arn}, launch_templates={TEMPLATE: template_arn}, subnets=subnets,
            security_group_arn=security_group_arn, worker_role_arn=worker_role_arn,
            ami_parameter_arn=ami_parameter_arn, stack_tags={STACK: stack_tag},
            instance_tags={INSTANCE: {STACK_TAG: STACK}}, ebs_kms_key_arn=ebs_kms_key_arn,
        )
        return cls(names=names, subnets=tuple(subnets))


def _s3_calls(call: ClientCall, operation: str, keys: Iterable[str]) -> list[AwsCall]:
    def example(key: str) -> str:
        return key if not key.endswith("/") else f"{key}example/file.txt"

    def params(key: str) -> dict[str, Any]:
        source = example(S3_COPY_SOURCES.get(call.site, key))
        return {"Bucket": BUCKET, "Key": example(key), "CopySource": {"Bucket": BUCKET, "Key": source},
                "Delete": {"Objects": [{"Key": example(key)}]}}
    return [AwsCall(call.site, "s3", operation, params(key)) for key in keys]


def presigned_post_fields(graph: CallGraph, call: ClientCall) -> set[str]:
    """The form fields a presigned POST fixes (its `Fields` dict's keys, where they are constants)."""
    fields = call.keyword("Fields")
    if not isinstance(fields, ast.Dict):
        return set()
    return {name for key in fields.keys if key is not None and (name := graph.constant(key, call.site)) is not None}


def presigned_operation(graph: CallGraph, call: ClientCall) -> str:
    """The operation a presigned request performs: POST uploads are PutObject; a URL's `ClientMethod`."""
    if call.method == "generate_presigned_post":
        return "PutObject"
    method = call.keyword("ClientMethod") or (call.node.args[0] if call.node.args else None)
    name = graph.constant(method, call.site) if method is not None else None
    if name is None:
        raise AssertionError(f"{call.site} line {call.line}: cannot tell which operation the URL presigns")
    return operation_name("s3", name)


def synthesize(graph: CallGraph, call: ClientCall, reachable: set[str], stack: Stack) -> list[AwsCall]:
    """The recorded-call shapes of one static call, one per resource (and item kind) it can touch."""
    if call.service == "s3":
        return _s3_shapes(graph, call)
    operation = operation_name(call.service, call.method)
    if call.service == "dynamodb":
        return _dynamodb_calls(graph, call, operation, reachable)
    if call.service == "ec2":
        return _ec2_calls(graph, call, operation, stack)
    return [AwsCall(call.site, call.service, operation, {})]


def _s3_shapes(graph: CallGraph, call: ClientCall) -> list[AwsCall]:
    keys = S3_KEYS.get(f"{call.site} {call.method}", S3_KEYS.get(call.site))
    if keys is None:
        raise AssertionError(f"{call.site} line {call.line} calls S3 {call.method}: declare the keys it touches "
                             "in tests/iam_static.py S3_KEYS")
    if call.method in TRANSFERS:
        return [shape for op in TRANSFERS[call.method] for shape in _s3_calls(call, op, keys)]
    if call.method == "generate_presigned_post" and "tagging" in presigned_post_fields(graph, call):
        # S3 user guide, "Tagging and access control policies": tags set on upload (PutObject, POST Object) are
        # authorised as s3:PutObjectTagging too.
        return [*_s3_calls(call, "PutObject", keys), *_s3_calls(call, "PutObjectTagging", keys)]
    if call.method.startswith("generate_presigned_"):
        return _s3_calls(call, presigned_operation(graph, call), keys)
    return _s3_calls(call, operation_name("s3", call.method), keys)


def _ec2_calls(graph: CallGraph, call: ClientCall, operation: str, stack: Stack) -> list[AwsCall]:
    if operation == "RunInstances":
        kinds = sorted(v for v in graph.string_values("ResourceType", [call.site]) if v)
        return [AwsCall(call.site, "ec2", operation, {
            "LaunchTemplate": {"LaunchTemplateId": TEMPLATE}, "SubnetId": subnet,
            "TagSpecifications": [{"ResourceType": kind} for kind in kinds]}) for subnet in stack.subnets]
    if operation == "TerminateInstances":
        return [AwsCall(call.site, "ec2", operation, {"InstanceIds": [INSTANCE]})]
    return [AwsCall(call.site, "ec2", operation, {})]


def _dynamodb_calls(graph: CallGraph, call: ClientCall, operation: str, reachable: set[str]) -> list[AwsCall]:
    key = {"id": {"S": "key"}}
    if operation == "Query":
        indexes = graph.string_values("IndexName", reachable)
        if None in indexes:
            raise AssertionError(f"{call.site} line {call.line}: an IndexName the graph cannot read")
        return [AwsCall(call.site, "dynamodb", operation, {"TableName": TABLE, **({"IndexName": i} if i else {})})
                for i in sorted(indexes, key=str) or [""]]
    if operation == "TransactWriteItems":
        kinds = [kind for kind in TRANSACTION_ITEMS if kind in graph.dict_keys(reachable)]
        assert kinds, f"{call.site} line {call.line}: a transaction whose items the graph cannot find"
        return [AwsCall(call.site, "dynamodb", operation, {"TransactItems": [
            {kind: {"TableName": TABLE, "Key": key, "Item": key}} for kind in kinds]})]
    if operation == "BatchGetItem":
        return [AwsCall(call.site, "dynamodb", operation, {"RequestItems": {TABLE: {}}})]
    return [AwsCall(call.site, "dynamodb", operation, {"TableName": TABLE, "Key": key, "Item": key})]


def without_item_keys(check: Check) -> Check:
    """The check with `dynamodb:LeadingKeys` left out (item keys are data; the recorded proof checks them)."""
    context = {k: v for k, v in check.context.items() if k != "dynamodb:LeadingKeys"}
    return Check(check.action, check.resource, context)


@dataclass(frozen=True)
class StaticCheck:
    """One authorisation a reachable call needs, and where the call is written."""

    check: Check
    call: ClientCall

    def describe(self) -> str:
        return (f"{self.call.site} line {self.call.line} ({self.call.service} {self.call.method}): "
                f"{self.check.action} on {self.check.resource} with {dict(self.check.context)}")


def static_checks(graph: CallGraph, entries: Sequence[str], stack: Stack,
                  extra_calls: Sequence[ClientCall] = ()) -> list[StaticCheck]:
    """Every authorisation the client calls reachable from `entries` need (plus `extra_calls`, e.g. the CLI's)."""
    reachable = set().union(*(graph.reachable(entry) for entry in entries))
    calls = [call for entry in entries for call in graph.client_calls(entry)] + list(extra_calls)
    found = []
    for call in calls:
        for shape in synthesize(graph, call, reachable, stack):
            found += [StaticCheck(without_item_keys(check), call) for check in authorizations(shape, stack.names)]
    return found


def platform_checks(log_group_arn: str | None, stream_arn: str | None, failure_queue_arn: str | None) -> list[Check]:
    """Calls AWS makes with a function's role but not from its code.

    - The Lambda runtime writes the function's logs to its log group (CreateLogStream, PutLogEvents on its streams).
    - An event source mapping on a DynamoDB stream reads it with the function's role: DescribeStream, GetRecords,
      GetShardIterator, ListStreams (DynamoDB developer guide, "IAM policy to allow an AWS Lambda function to access
      DynamoDB stream records"); ListStreams has no resource type, so `*`.
    - Its on-failure destination, an SQS queue, is sent the batches given up on (sqs:SendMessage).
    """
    checks: list[Check] = []
    if log_group_arn:
        stream = f"{log_group_arn}:log-stream:2026/01/01/[$LATEST]0123456789abcdef"
        checks += [Check("logs:CreateLogStream", stream), Check("logs:PutLogEvents", stream)]
    if stream_arn:
        checks += [Check(f"dynamodb:{op}", stream_arn) for op in ("DescribeStream", "GetRecords", "GetShardIterator")]
        checks.append(Check("dynamodb:ListStreams", "*"))
    if failure_queue_arn:
        checks.append(Check("sqs:SendMessage", failure_queue_arn))
    return checks
