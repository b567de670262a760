"""IAM and resource policy documents, one small function each, scoped to specific ARNs.

Every function returns an `Output[str]` of JSON (via `Output.json_dumps`), so ARNs that are still unknown at
preview time can be placed in them. `tests/infra/test_iam.py` parses every policy the program creates and checks
that no Allow statement uses a wildcard action, nor the resource `"*"` but for the two actions that support no
other (`ec2:DescribeInstances`, `dynamodb:ListStreams`); `tests/infra/test_parliament.py` lints every document with
parliament, and each finding it reports is explained in a comment next to its statement ("parliament ISSUE").

Resource policies (bucket and VPC endpoint policies) name `Principal: "*"`; that is the principal, not a resource,
and AWS requires it there: an endpoint policy applies to every caller inside the VPC, and a TLS-only deny must
catch every caller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from handlers.capacity import SLOT_PREFIX
from handlers.grants import GRANT_COUNTER_PREFIX
from handlers.jobmodel import INPUT_PREFIX, OUTPUT_PREFIX, OWNER_INDEX, STATUS_INDEX
from handlers.quota import COUNTER_PREFIX

VERSION = "2012-10-17"
Statement = dict[str, Any]


def statement(
    actions: Sequence[str],
    resources: Sequence[pulumi.Input[str]],
    *,
    sid: str,
    condition: Mapping[str, Any] | None = None,
    effect: str = "Allow",
    principal: Any = None,
) -> Statement:
    result: Statement = {"Sid": sid, "Effect": effect, "Action": list(actions), "Resource": list(resources)}
    if principal is not None:
        result["Principal"] = principal
    if condition:
        result["Condition"] = dict(condition)
    return result


def document(*statements: Statement) -> pulumi.Output[str]:
    return pulumi.Output.json_dumps({"Version": VERSION, "Statement": list(statements)})


def assume_role_policy(service: str) -> str:
    """Trust policy letting one AWS service (e.g. `lambda.amazonaws.com`) assume the role."""
    # parliament MALFORMED (sts:AssumeRole, "neither Resource nor NotResource"): a trust policy is the role's
    # resource policy; it names a Principal and, as AWS requires, no Resource (parliament lints identity policies).
    return json.dumps({
        "Version": VERSION,
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    })


def objects(bucket_arn: pulumi.Input[str], pattern: str) -> pulumi.Output[str]:
    """`arn:...:bucket/<pattern>`, e.g. `objects(arn, "inputs/*")`."""
    return pulumi.Output.concat(bucket_arn, "/", pattern)


def log_statement(log_group_arn: pulumi.Input[str]) -> Statement:
    """Write to the function's own log group (the ARN without the `:*` suffix, as pulumi-aws exports it)."""
    return statement(
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [pulumi.Output.concat(log_group_arn, ":*")],
        sid="OwnLogGroup",
    )


def tls_only_statement(bucket_arn: pulumi.Input[str]) -> Statement:
    """Deny any request to the bucket or its objects that does not use TLS.

    A Deny may use `s3:*`: it takes permissions away, so a broad action is the safe direction.
    """
    return statement(
        ["s3:*"],
        [bucket_arn, objects(bucket_arn, "*")],
        sid="DenyInsecureTransport",
        effect="Deny",
        principal="*",
        condition={"Bool": {"aws:SecureTransport": "false"}},
    )


def data_bucket_policy(bucket_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    return document(tls_only_statement(bucket_arn))


def site_bucket_policy(bucket_arn: pulumi.Input[str], distribution_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """CloudFront (through origin access control) may read objects, for this distribution only."""
    return document(
        statement(
            ["s3:GetObject"],
            [objects(bucket_arn, "*")],
            sid="CloudFrontReadsThroughOac",
            principal={"Service": "cloudfront.amazonaws.com"},
            condition={"StringEquals": {"AWS:SourceArn": distribution_arn}},
        ),
        tls_only_statement(bucket_arn),
    )


def upload_function_policy(bucket_arn: pulumi.Input[str], table_arn: pulumi.Input[str],
                           log_group_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """The upload function signs presigned POSTs (S3 authorises the upload with the *signer's* permissions) and
    counts each grant per user (the `uploads#` counter items only)."""
    return document(
        # PutObjectTagging: the POST tags the upload (`jobmodel.UNCLAIMED_UPLOAD_TAG`), which S3 authorises with the
        # signer's s3:PutObjectTagging ("Tagging and access control policies", S3 user guide).
        statement(["s3:PutObject", "s3:PutObjectTagging"], [objects(bucket_arn, f"{INPUT_PREFIX}*")],
                  sid="SignUploadsOfInputs"),
        statement(
            ["dynamodb:UpdateItem"], [table_arn], sid="CountUploadGrantsPerUser",
            condition={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{GRANT_COUNTER_PREFIX}*"]}},
        ),
        log_statement(log_group_arn),
    )


def presignup_function_policy(log_group_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """The pre sign-up trigger reads its event and its environment: it calls no AWS API, so it may only log."""
    return document(log_statement(log_group_arn))


def jobs_function_policy(
    bucket_arn: pulumi.Input[str], table_arn: pulumi.Input[str], log_group_arn: pulumi.Input[str]
) -> pulumi.Output[str]:
    """HEAD the uploaded input, sign GETs of outputs, create/read jobs, count them per user (the `user#` counter
    items only), list a user's jobs through the `by-owner` index.

    `s3:ListBucket` is there so that HEAD of a key that does not exist answers 404 (without it S3 answers 403 and
    the handler cannot tell "not uploaded" from "forbidden").
    """
    return document(
        statement(
            ["s3:GetObject"],
            [objects(bucket_arn, f"{INPUT_PREFIX}*"), objects(bucket_arn, f"{OUTPUT_PREFIX}*")],
            sid="ReadInputsSignOutputs",
        ),
        statement(["s3:ListBucket"], [bucket_arn], sid="NotFoundInsteadOfForbidden"),
        statement(["dynamodb:GetItem", "dynamodb:PutItem"], [table_arn], sid="CreateAndReadJobs"),
        statement(
            ["dynamodb:UpdateItem"], [table_arn], sid="CountActiveJobsPerUser",
            condition={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{COUNTER_PREFIX}*"]}},
        ),
        statement(["dynamodb:Query"], [pulumi.Output.concat(table_arn, "/index/", OWNER_INDEX)], sid="ListOwnJobs"),
        log_statement(log_group_arn),
    )


def manage_function_policy(
    bucket_arn: pulumi.Input[str], table_arn: pulumi.Input[str], log_group_arn: pulumi.Input[str]
) -> pulumi.Output[str]:
    """Cancel, retry and delete a user's jobs (`handlers.manage`): read jobs and the VM slots, move and delete job
    items and count them per user, but never write a VM slot (items `slot#...`: freeing one would break the VM
    cap); copy an input to a new job's key; sign a finished job's download; delete a job's input, output and log.

    `s3:ListBucket` makes S3 answer a copy of an input that is gone 404 (the handler's 409 `input_gone`) instead of
    403, as for the jobs function.
    """
    return document(
        statement(["s3:GetObject", "s3:PutObject"], [objects(bucket_arn, f"{INPUT_PREFIX}*")], sid="CopyInputs"),
        # A retry of a job retried before answers with the job that retry made (`manage.retry_job`): once it has
        # SUCCEEDED, with a presigned GET of its output, which S3 authorises with this role's permissions.
        statement(["s3:GetObject"], [objects(bucket_arn, f"{OUTPUT_PREFIX}*")], sid="SignOutputDownloads"),
        statement(
            ["s3:DeleteObject"],
            [objects(bucket_arn, f"{INPUT_PREFIX}*"), objects(bucket_arn, f"{OUTPUT_PREFIX}*")],
            sid="DeleteJobFiles",
        ),
        statement(["s3:ListBucket"], [bucket_arn], sid="NotFoundInsteadOfForbidden"),
        statement(["dynamodb:GetItem", "dynamodb:BatchGetItem"], [table_arn], sid="ReadJobsAndSlots"),
        statement(
            ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"], [table_arn], sid="ManageJobsNotSlots",
            condition={"ForAllValues:StringNotLike": {"dynamodb:LeadingKeys": [f"{SLOT_PREFIX}*"]}},
        ),
        log_statement(log_group_arn),
    )


def worker_instance_policy(
    bucket_arn: pulumi.Input[str], worker_key: str, table_arn: pulumi.Input[str]
) -> pulumi.Output[str]:
    """The VM fetches the worker script and its input, writes its output and log, and moves its job.

    The worker's S3 calls and the actions that authorise them (AWS's Service Authorization Reference for Amazon S3;
    UploadPartCopy's API reference for its source):
    - HeadObject, GetObject of the input (under 5 MiB), GetObject of the worker script: s3:GetObject on `inputs/*`
      and the script's key;
    - UploadPartCopy of the input's ranges: s3:GetObject on the source (`inputs/*`) and s3:PutObject on the output;
    - PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload of the output, PutObject of the log:
      s3:PutObject on `outputs/*`;
    - AbortMultipartUpload of a failed output: s3:AbortMultipartUpload on `outputs/*`.
    """
    return document(
        statement(
            ["s3:GetObject"],
            [objects(bucket_arn, worker_key), objects(bucket_arn, f"{INPUT_PREFIX}*")],
            sid="ReadWorkerAndInputs",
        ),
        statement(
            ["s3:PutObject", "s3:AbortMultipartUpload"],
            [objects(bucket_arn, f"{OUTPUT_PREFIX}*")],
            sid="WriteOutputsAndLogs",
        ),
        statement(["dynamodb:GetItem", "dynamodb:UpdateItem"], [table_arn], sid="MoveOwnJob"),
    )


def ec2_arn(
    partition: pulumi.Input[str], region: pulumi.Input[str], account: pulumi.Input[str], kind: str
) -> pulumi.Output[str]:
    """`arn:<partition>:ec2:<region>:<account>:<kind>/*`; pass account `""` for AMIs, which have no owner field."""
    return pulumi.Output.format("arn:{0}:ec2:{1}:{2}:{3}/*", partition, region, account, kind)


def ssm_parameter_arn(
    partition: pulumi.Input[str], region: pulumi.Input[str], account: pulumi.Input[str], parameter: str
) -> pulumi.Output[str]:
    """ARN of an SSM parameter; AWS's public parameters (`/aws/service/...`) have no account in their ARN."""
    owner = "" if parameter.startswith("/aws/") else account
    path = parameter if parameter.startswith("/") else f"/{parameter}"
    return pulumi.Output.format("arn:{0}:ssm:{1}:{2}:parameter{3}", partition, region, owner, path)


def dispatch_statements(
    *,
    partition: pulumi.Input[str],
    region: pulumi.Input[str],
    account: pulumi.Input[str],
    table_arn: pulumi.Input[str],
    launch_template_arn: pulumi.Input[str],
    subnet_arns: Sequence[pulumi.Input[str]],
    security_group_arn: pulumi.Input[str],
    instance_role_arn: pulumi.Input[str],
    ami_parameter: str,
    ebs_kms_key_arn: str | None = None,
) -> list[Statement]:
    """What `handlers.dispatch.dispatch` needs: move jobs, hold VM slots, start VMs from this stack's template only.

    Shared by the launcher, the slot release function and the sweeper (all start queued jobs). RunInstances
    authorises every resource it touches: the template, the subnet and security group it names, the instance, volume
    and network interface it creates, and the AMI it boots (resolved from SSM at launch, so its id is not known
    here: any image in the region, account field empty as AMI ARNs have it). The tags it sets on the instance and
    volume (`JobId`, the stack tag) are authorised by CreateTags with `ec2:CreateAction = RunInstances`, which holds
    for any tag key.
    """
    created = [ec2_arn(partition, region, account, kind) for kind in ("instance", "volume", "network-interface")]
    return [
        # Jobs move, and VM slots (lease items in the same table) are taken and given back, by conditional UpdateItem;
        # dispatch reads nothing else (tests/infra/test_iam_proven.py: every granted action is used).
        statement(["dynamodb:UpdateItem"], [table_arn], sid="MoveJobs"),
        statement(
            ["dynamodb:Query"], [pulumi.Output.concat(table_arn, "/index/", STATUS_INDEX)], sid="FindQueuedJobs"
        ),
        statement(
            ["ec2:RunInstances"],
            [
                launch_template_arn,
                *subnet_arns,
                security_group_arn,
                *created,
                ec2_arn(partition, region, "", "image"),
            ],
            sid="LaunchFromTemplate",
        ),
        statement(
            ["ec2:CreateTags"],
            created[:2],
            sid="TagOnLaunchOnly",
            condition={"StringEquals": {"ec2:CreateAction": "RunInstances"}},
        ),
        # parliament PERMISSIONS_MANAGEMENT_ACTIONS (iam:PassRole) and PRIVILEGE_ESCALATION (iam:PassRole with
        # ec2:RunInstances, "CreateEC2WithExistingIP"): starting a VM with a role is what the launcher is for. It may
        # pass only the worker role, only to EC2, and start VMs only from this stack's template, so a VM gets no more
        # than the worker's rights (its bucket prefixes and the jobs table).
        statement(
            ["iam:PassRole"],
            [instance_role_arn],
            sid="PassWorkerRole",
            condition={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        # parliament RESOURCE_MISMATCH (ssm:GetParameters): AWS's public parameters (`/aws/service/...`, the default
        # AMI) have an empty account field in their ARN, which parliament's ARN check does not accept.
        statement(
            ["ssm:GetParameters"], [ssm_parameter_arn(partition, region, account, ami_parameter)], sid="ResolveAmi"
        ),
        *(ebs_key_statements(ebs_kms_key_arn) if ebs_kms_key_arn else []),
    ]


EBS_KEY_ACTIONS = ("kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom",
                   "kms:ReEncryptTo")
"""What the caller of RunInstances needs on a customer-managed key that encrypts the new volume, besides CreateGrant
(AWS's "Requirements for Amazon EBS encryption", Permissions for users; its `kms:ReEncrypt` is both ReEncrypt
actions)."""


def ebs_key_statements(key_arn: str) -> list[Statement]:
    """Use of the customer-managed key of the root volumes (`ebsKmsKeyArn`) by the roles that call RunInstances:
    EBS creates a grant for the volume on the caller's behalf, so CreateGrant only for an AWS resource
    (`kms:GrantIsForAWSResource`), as AWS's EBS encryption requirements advise."""
    # parliament PERMISSIONS_MANAGEMENT_ACTIONS (iam:PassRole, kms:CreateGrant): a grant on the one key of the root
    # volumes, and only one EBS asks for on the caller's behalf (kms:GrantIsForAWSResource), as EBS needs to use
    # the key for the volume; the document also passes the worker role (see `dispatch_statements`).
    return [
        statement(["kms:CreateGrant"], [key_arn], sid="GrantEbsKeyToVolumes",
                  condition={"Bool": {"kms:GrantIsForAWSResource": "true"}}),
        statement(list(EBS_KEY_ACTIONS), [key_arn], sid="EncryptVolumesWithEbsKey"),
    ]


def terminate_stack_instances_statement(
    partition: pulumi.Input[str],
    region: pulumi.Input[str],
    account: pulumi.Input[str],
    stack_tag_key: str,
    stack_tag: pulumi.Input[str],
) -> Statement:
    """TerminateInstances of instances in this region and account tagged `stack_tag_key=stack_tag` only (a value
    unique per deployment), which every worker VM gets at launch (the launch template's tag specifications and the
    launcher's RunInstances): never another stack's workers nor unrelated servers."""
    return statement(
        ["ec2:TerminateInstances"],
        [ec2_arn(partition, region, account, "instance")],
        sid="TerminateStackInstances",
        condition={"StringEquals": {f"aws:ResourceTag/{stack_tag_key}": stack_tag}},
    )


def launcher_function_policy(
    *,
    dispatch: Sequence[Statement],
    terminate: Statement,
    stream_arn: pulumi.Input[str],
    failure_queue_arn: pulumi.Input[str],
    log_group_arn: pulumi.Input[str],
    bucket_arn: pulumi.Input[str],
) -> pulumi.Output[str]:
    """Read the table's stream, record batches given up on, dispatch (`dispatch_statements`), terminate the VMs
    of cancelled jobs (`terminate_stack_instances_statement`), and claim each new job's upload (remove its
    unclaimed-upload tag, so the bucket's lifecycle keeps it)."""
    return document(
        # parliament RESOURCE_MISMATCH (dynamodb:DescribeStream, GetRecords, GetShardIterator): a stream ARN ends in
        # its label, a timestamp with colons (`.../stream/2026-01-01T00:00:00.000`), which parliament's strict ARN
        # check splits as if they separated ARN fields. The resource is the table's stream, exactly.
        statement(
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            [stream_arn],
            sid="ReadJobStream",
        ),
        # ListStreams has no resource type in AWS's service authorization reference (parliament's copy of it says
        # so), so a statement scoped to stream ARNs would grant nothing: it lists stream ARNs, and reveals no data.
        statement(["dynamodb:ListStreams"], ["*"], sid="ListJobStreams"),
        *dispatch,
        terminate,
        statement(["s3:DeleteObjectTagging"], [objects(bucket_arn, f"{INPUT_PREFIX}*")], sid="ClaimUploads"),
        statement(["sqs:SendMessage"], [failure_queue_arn], sid="RecordFailedBatches"),
        log_statement(log_group_arn),
    )


def read_slots_statement(table_arn: pulumi.Input[str], *, jobs_too: bool = False) -> Statement:
    """Read the VM slot items in batches (`handlers.capacity.leases`), and with `jobs_too` single jobs by id."""
    actions = ["dynamodb:BatchGetItem", *(["dynamodb:GetItem"] if jobs_too else [])]
    return statement(actions, [table_arn], sid="ReadSlotsAndJobs" if jobs_too else "ReadSlots")


def release_function_policy(
    *,
    dispatch: Sequence[Statement],
    terminate: Statement,
    table_arn: pulumi.Input[str],
    log_group_arn: pulumi.Input[str],
) -> pulumi.Output[str]:
    """Find the slot a terminated VM holds (`ReadSlots`), give it back and start queued jobs in it
    (`dispatch_statements`); nothing else: no stream, no queue.

    A job cancelled while this function starts its VM has that VM terminated at once (`dispatch.record_vm`), so it
    terminates this stack's VMs as the launcher does (`terminate_stack_instances_statement`); without it the VM
    would hold its slot until its worker noticed the cancel."""
    return document(read_slots_statement(table_arn), *dispatch, terminate, log_statement(log_group_arn))


def sweeper_function_policy(
    *,
    dispatch: Sequence[Statement],
    terminate: Statement,
    table_arn: pulumi.Input[str],
    log_group_arn: pulumi.Input[str],
) -> pulumi.Output[str]:
    """Find this stack's VMs, terminate only those (`terminate_stack_instances_statement`), read the slots and their
    holders' jobs (leaked slots), and dispatch (`dispatch_statements`).

    `ec2:DescribeInstances` supports no resource-level permissions (AWS's service authorization reference lists
    no resource type for it), so it is the one Allow on `"*"`; it reveals, and changes, nothing.
    """
    return document(
        statement(["ec2:DescribeInstances"], ["*"], sid="FindStackInstances"),
        terminate,
        read_slots_statement(table_arn, jobs_too=True),
        *dispatch,
        log_statement(log_group_arn),
    )


def al2023_repository_bucket(region: str) -> str:
    """The S3 bucket Amazon Linux 2023 installs packages from, in `region` (documented in the AL2023 guide)."""
    return f"al2023-repos-{region}-de612dc2"


def s3_endpoint_policy(
    partition: pulumi.Input[str], region: pulumi.Input[str], bucket_arn: pulumi.Input[str]
) -> pulumi.Output[str]:
    """What the isolated subnets may do in S3: read AL2023 packages, and the worker's own data calls."""
    repository = pulumi.Output.from_input(region).apply(al2023_repository_bucket)
    return document(
        statement(
            ["s3:GetObject"],
            [pulumi.Output.format("arn:{0}:s3:::{1}/*", partition, repository)],
            sid="AmazonLinuxPackages",
            principal="*",
        ),
        statement(
            ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            [objects(bucket_arn, "*")],
            sid="StackDataBucket",
            principal="*",
        ),
    )


def dynamodb_endpoint_policy(table_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """The isolated subnets may only read and update items of this stack's jobs table."""
    return document(
        statement(["dynamodb:GetItem", "dynamodb:UpdateItem"], [table_arn], sid="JobsTable", principal="*"),
    )
