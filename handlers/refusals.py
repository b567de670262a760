"""RunInstances refusals that mean "later", not "never": what the job's `queue_reason` says while it waits, and the
sentence it fails with when it has waited too long.

The error codes are AWS's ("Error codes for the Amazon EC2 API", docs.aws.amazon.com/AWSEC2/latest/APIReference/
errors-overview.html; botocore's EC2 model declares no error shapes). A quota is freed by a VM ending or raised by
the account's owner, not by a retry a second later, so a quota refusal sends the job back to the queue at once; the
sweeper tries it again at every sweep (`dispatch.dispatch`), and so does every VM's end.
"""

from __future__ import annotations

import re

from botocore.exceptions import ClientError

QUOTA_ERRORS = frozenset({"VcpuLimitExceeded", "InstanceLimitExceeded"})
"""The account's On-Demand limits (vCPUs of running instances; instances of a type) are reached."""
PROFILE_NOT_VISIBLE = re.compile(r"Invalid IAM Instance Profile", re.IGNORECASE)
"""`InvalidParameterValue` says this when the launch template's instance profile is not visible to EC2 yet (IAM is
eventually consistent: minutes after a deploy): "Value (...) for parameter iamInstanceProfile.name is invalid.
Invalid IAM Instance Profile name" (quoted in aws/aws-sdk-js-v3#5253 and hashicorp/terraform-provider-aws#27516)."""
VCPU_QUOTA_CODE = "L-1216C47A"
"""Service Quotas' code of EC2's "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances" quota, counted
in vCPUs (the AWS CLI user guide's `service-quotas get-aws-default-service-quota` example)."""
VCPU_QUOTA_NAME = "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"

WHY = {
    "VcpuLimitExceeded": "the account's On-Demand vCPU quota is used up by running VMs",
    "InstanceLimitExceeded": "the account's limit on running instances of this type is reached",
    "InsufficientInstanceCapacity": "AWS has no capacity for the instance type in the stack's zones just now",
    "InsufficientHostCapacity": "AWS has no capacity for the instance type in the stack's zones just now",
    "InsufficientCapacity": "AWS has no capacity for the instance type in the stack's zones just now",
    "RequestLimitExceeded": "EC2 is throttling this account's launches",
    "InvalidParameterValue": "the worker's instance profile is not visible to EC2 yet (IAM takes a few minutes "
                             "after a deploy)",
}


def error_code(err: Exception) -> str:
    """A ClientError's code, else the exception's class name (a BotoCoreError has no code)."""
    return err.response["Error"].get("Code", "") if isinstance(err, ClientError) else type(err).__name__


def waits(err: Exception) -> bool:
    """A refusal to wait out in the queue at once (no retry in place): a quota, or an instance profile not yet
    visible."""
    if not isinstance(err, ClientError):
        return False
    code = error_code(err)
    if code == "InvalidParameterValue":
        return bool(PROFILE_NOT_VISIBLE.search(err.response["Error"].get("Message", "")))
    return code in QUOTA_ERRORS


def queue_reason(err: Exception) -> str:
    """The job's `queue_reason` while it waits: what AWS said, in a sentence."""
    code = error_code(err)
    why = WHY.get(code) or str(err).rstrip(".")
    return f"Waiting for a VM: {why} ({code}); the launch is tried again at every sweep."


def gave_up_reason(code: str, waited_minutes: int) -> str:
    """The job's `error` when its launches were refused for longer than the queue's deadline: what to raise."""
    start = f"No VM could be started for {waited_minutes} minutes"
    if code == "VcpuLimitExceeded":
        return (f"{start}: the account's On-Demand vCPU quota was used up ({code}). Raise the EC2 quota "
                f"\"{VCPU_QUOTA_NAME}\" (quota code {VCPU_QUOTA_CODE}) in Service Quotas, or lower maxConcurrentVms.")
    if code == "InstanceLimitExceeded":
        return (f"{start}: the account's instance limit was reached ({code}). Raise the EC2 On-Demand instance "
                f"quota for the instance type in Service Quotas (vCPU quota code {VCPU_QUOTA_CODE} for standard "
                f"types), or lower maxConcurrentVms.")
    return f"{start}: {WHY.get(code, 'AWS refused every launch')} ({code})."
