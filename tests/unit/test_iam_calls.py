"""The IAM model behind tests/infra/test_iam_proven.py can say no: a proof that always passes proves nothing."""

from __future__ import annotations

from typing import Any

import pytest

from local.calls import AwsCall
from tests.iam_calls import (
    Check,
    Names,
    allowed_by,
    authorizations,
    condition_holds,
    denied_and_unused,
    permitted,
)

NAMES = Names(
    partition="aws", region="eu-west-1", account="123456789012",
    tables={"local-jobs": "jobs-1"}, buckets={"local-data": "data-1"},
    streams={"local-stream": "arn:aws:dynamodb:eu-west-1:123456789012:table/jobs-1/stream/2026"},
    launch_templates={"lt-local": "arn:aws:ec2:eu-west-1:123456789012:launch-template/lt-1"},
    subnets={"subnet-local": "arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-1"},
    security_group_arn="arn:aws:ec2:eu-west-1:123456789012:security-group/sg-1",
    worker_role_arn="arn:aws:iam::123456789012:role/worker", ami_parameter_arn="arn:aws:ssm:eu-west-1::parameter/ami",
    stack_tags={"local": "filepipe-dev-1"},
    instance_tags={"i-ours": {"FilepipeStack": "local"}, "i-theirs": {"FilepipeStack": "other"}},
)


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


TERMINATE_OURS = policy({"Sid": "T", "Effect": "Allow", "Action": ["ec2:TerminateInstances"],
                         "Resource": ["arn:aws:ec2:eu-west-1:123456789012:instance/*"],
                         "Condition": {"StringEquals": {"aws:ResourceTag/FilepipeStack": "filepipe-dev-1"}}})


def test_a_tag_condition_allows_this_stacks_instances_only() -> None:
    ours = AwsCall("sweeper", "ec2", "TerminateInstances", {"InstanceIds": ["i-ours"]})
    theirs = AwsCall("sweeper", "ec2", "TerminateInstances", {"InstanceIds": ["i-theirs"]})
    assert denied_and_unused(TERMINATE_OURS, [ours], NAMES) == ([], set())
    denied, unused = denied_and_unused(TERMINATE_OURS, [theirs], NAMES)
    assert len(denied) == 1 and unused == {("T", "ec2:TerminateInstances")}


def test_a_transaction_is_authorised_item_by_item() -> None:
    counter_only = policy({"Sid": "C", "Effect": "Allow", "Action": ["dynamodb:UpdateItem"],
                           "Resource": ["arn:aws:dynamodb:eu-west-1:123456789012:table/jobs-1"],
                           "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["user#*"]}}})
    item = {"TableName": "local-jobs", "Key": {"id": {"S": "user#u1"}}}
    job = {"TableName": "local-jobs", "Item": {"id": {"S": "V1StGXR8_Z5jdHi6B-myT"}}}
    call = AwsCall("jobs", "dynamodb", "TransactWriteItems", {"TransactItems": [{"Update": item}, {"Put": job}]})
    [update, put] = authorizations(call, NAMES)
    assert allowed_by(counter_only, update) == [("C", "dynamodb:UpdateItem")]
    assert allowed_by(counter_only, put) == [], "the PutItem of the job needs its own grant"
    job_update = Check("dynamodb:UpdateItem", update.resource, {"dynamodb:LeadingKeys": ["V1StGXR8_Z5jdHi6B-myT"]})
    assert allowed_by(counter_only, job_update) == [], "the LeadingKeys condition keeps jobs out of reach"


def test_run_instances_needs_every_resource_the_tags_the_role_and_the_ami() -> None:
    call = AwsCall("launcher", "ec2", "RunInstances", {
        "LaunchTemplate": {"LaunchTemplateId": "lt-local"}, "SubnetId": "subnet-local",
        "TagSpecifications": [{"ResourceType": "instance", "Tags": []}, {"ResourceType": "volume", "Tags": []}],
    })
    actions = [(c.action, c.resource.rsplit(":", 1)[-1]) for c in authorizations(call, NAMES)]
    assert ("ec2:RunInstances", "subnet/subnet-1") in actions and ("ec2:RunInstances", "image/ami-from-ssm") in actions
    assert ("ec2:CreateTags", "volume/*") in actions and ("iam:PassRole", "role/worker") in actions
    assert ("ssm:GetParameters", "parameter/ami") in actions
    without_subnet = policy({"Sid": "R", "Effect": "Allow", "Action": ["ec2:RunInstances"],
                             "Resource": ["arn:aws:ec2:eu-west-1:123456789012:launch-template/lt-1"]})
    assert len(denied_and_unused(without_subnet, [call], NAMES)[0]) == len(actions) - 1


def test_wildcards_match_like_iam_and_unknown_operators_are_refused() -> None:
    star = policy({"Sid": "S", "Effect": "Allow", "Action": ["s3:Get*"], "Resource": ["arn:aws:s3:::data-1/inputs/*"]})
    read = AwsCall("worker", "s3", "HeadObject", {"Bucket": "local-data", "Key": "inputs/a/b.txt"})
    other = AwsCall("worker", "s3", "GetObject", {"Bucket": "local-data", "Key": "outputs/a/b.txt"})
    assert denied_and_unused(star, [read], NAMES)[0] == []
    assert len(denied_and_unused(star, [other], NAMES)[0]) == 1
    assert condition_holds({"ForAllValues:StringLike": {"k": ["a*"]}}, {}), "IAM: true when the key is absent"
    with pytest.raises(AssertionError, match="NumericLessThan"):
        condition_holds({"NumericLessThan": {"k": "1"}}, {"k": "0"})


def test_a_copy_reads_its_source_and_writes_its_target() -> None:
    copy = AwsCall("manage", "s3", "CopyObject", {"Bucket": "local-data", "Key": "inputs/b/n.txt",
                                                 "CopySource": {"Bucket": "local-data", "Key": "inputs/a/n.txt"}})
    inputs = "arn:aws:s3:::data-1/inputs/*"
    read_only = policy({"Sid": "R", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [inputs]})
    both = policy({"Sid": "RW", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": [inputs]})
    assert [c.action for c in authorizations(copy, NAMES)] == ["s3:GetObject", "s3:PutObject"]
    assert len(denied_and_unused(read_only, [copy], NAMES)[0]) == 1, "the target needs s3:PutObject"
    assert denied_and_unused(both, [copy], NAMES) == ([], set())


def test_a_batch_delete_needs_each_key() -> None:
    batch = AwsCall("manage", "s3", "DeleteObjects", {"Bucket": "local-data", "Delete": {"Objects": [
        {"Key": "inputs/a/n.txt"}, {"Key": "outputs/a/worker.log"}]}})
    inputs_only = policy({"Sid": "D", "Effect": "Allow", "Action": ["s3:DeleteObject"],
                          "Resource": ["arn:aws:s3:::data-1/inputs/*"]})
    denied, _ = denied_and_unused(inputs_only, [batch], NAMES)
    assert denied == ["s3 DeleteObjects: s3:DeleteObject on arn:aws:s3:::data-1/outputs/a/worker.log with {}"]


def test_not_like_keeps_the_named_keys_out() -> None:
    condition = {"ForAllValues:StringNotLike": {"dynamodb:LeadingKeys": ["slot#*"]}}
    assert condition_holds(condition, {"dynamodb:LeadingKeys": ["V1StGXR8_Z5jdHi6B-myT"]})
    assert condition_holds(condition, {"dynamodb:LeadingKeys": ["user#u1"]})
    assert not condition_holds(condition, {"dynamodb:LeadingKeys": ["slot#0"]})


def test_the_model_reads_not_action_not_resource_and_a_boundary() -> None:
    """The evaluation the CI roles' tests rely on: `NotAction`/`NotResource` grant (or deny) everything else, a
    Deny in any policy wins, negated operators hold for a missing key (IAM's rule for them), and a permissions
    boundary caps what the identity policies allow."""
    power_user = policy({"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "*"})
    assert permitted([power_user], Check("s3:CreateBucket", "arn:aws:s3:::b"))
    assert not permitted([power_user], Check("iam:CreateRole", "arn:aws:iam::1:role/x"))
    outside = policy({"Effect": "Deny", "Action": "iam:*", "NotResource": ["arn:aws:iam::1:role/app/*"]})
    anything = policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
    assert permitted([anything, outside], Check("iam:CreateRole", "arn:aws:iam::1:role/app/x"))
    assert not permitted([anything, outside], Check("iam:CreateRole", "arn:aws:iam::1:role/admin"))
    boundary = "arn:aws:iam::1:policy/b"
    other = policy({"Effect": "Deny", "Action": "iam:CreateRole", "Resource": "*",
                    "Condition": {"ArnNotEquals": {"iam:PermissionsBoundary": boundary}}})
    assert not permitted([anything, other], Check("iam:CreateRole", "arn:aws:iam::1:role/app/x"))
    assert permitted([anything, other], Check("iam:CreateRole", "arn:aws:iam::1:role/app/x",
                                              {"iam:PermissionsBoundary": boundary}))
    assert condition_holds({"StringNotEquals": {"k": "v"}}, {}) and not condition_holds({"StringNotEquals": {"k": "v"}},
                                                                                         {"k": "v"})
    capped = policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    assert permitted([anything], Check("s3:PutObject", "arn:aws:s3:::b/k"))
    assert not permitted([anything], Check("s3:PutObject", "arn:aws:s3:::b/k"), boundary=capped)
    assert permitted([anything], Check("s3:GetObject", "arn:aws:s3:::b/k"), boundary=capped)


def test_a_part_copy_reads_its_source_and_writes_its_target() -> None:
    """UploadPartCopy (the worker's server-side copy of its input) needs s3:GetObject on the input as well as
    s3:PutObject on the output: a role that may only write outputs is refused the copy."""
    call = AwsCall("worker", "s3", "UploadPartCopy", {
        "Bucket": "local-data", "Key": "outputs/j/a.out.bin", "UploadId": "u", "PartNumber": 1,
        "CopySource": {"Bucket": "local-data", "Key": "inputs/j/a.bin"}, "CopySourceRange": "bytes=0-5242879",
    })
    assert authorizations(call, NAMES) == [Check("s3:GetObject", "arn:aws:s3:::data-1/inputs/j/a.bin"),
                                           Check("s3:PutObject", "arn:aws:s3:::data-1/outputs/j/a.out.bin")]
    write_only = policy({"Sid": "W", "Effect": "Allow", "Action": ["s3:PutObject"],
                         "Resource": ["arn:aws:s3:::data-1/outputs/*"]})
    denied, _ = denied_and_unused(write_only, [call], NAMES)
    assert denied == ["s3 UploadPartCopy: s3:GetObject on arn:aws:s3:::data-1/inputs/j/a.bin with {}"]
