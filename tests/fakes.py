"""An EC2 client whose RunInstances fails as planned (in order, or per subnet), for the launcher's unit tests and the
fault tests alike."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError

TRANSIENT_MESSAGES = {
    "InsufficientInstanceCapacity": "We currently do not have sufficient t4g.micro capacity in the Availability Zone "
                                    "you requested. Our system will be working on provisioning additional capacity.",
    "RequestLimitExceeded": "Request limit exceeded.",
}
ZONE_MESSAGES = {
    "Unsupported": "Your requested instance type (t4g.micro) is not supported in your requested Availability Zone "
                   "(us-east-1e). Please retry your request by not specifying an Availability Zone or choosing "
                   "us-east-1a, us-east-1b.",
    "InsufficientInstanceCapacity": TRANSIENT_MESSAGES["InsufficientInstanceCapacity"],
}
WAIT_MESSAGES = {
    # As AWS words them in RunInstances' errors, quoted in scrapoxy/scrapoxy#202 (VcpuLimitExceeded),
    # hashicorp/terraform#1891 (InstanceLimitExceeded) and aws/aws-sdk-js-v3#5253 (an instance profile IAM has not
    # propagated yet; there by name, here by ARN as the launch template gives it).
    "VcpuLimitExceeded": "You have requested more vCPU capacity than your current vCPU limit of 32 allows for the "
                         "instance bucket that the specified instance type belongs to. Please visit "
                         "http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.",
    "InstanceLimitExceeded": "Your quota allows for 0 more running instance(s). You requested at least 1",
    "InvalidParameterValue": "Value (arn:aws:iam::123456789012:instance-profile/compute-worker-1a2b3c4) for "
                             "parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN",
}
PERMANENT_MESSAGES = {
    "UnauthorizedOperation": "You are not authorized to perform this operation.",
    "InvalidLaunchTemplateId.NotFound": "The specified launch template does not exist.",
}


def run_instances_error(code: str) -> ClientError:
    message = {**TRANSIENT_MESSAGES, **WAIT_MESSAGES, **PERMANENT_MESSAGES, **ZONE_MESSAGES}[code]
    return ClientError({"Error": {"Code": code, "Message": message}}, "RunInstances")


class FlakyEc2:
    """An EC2 client whose next `run_instances` calls raise the planned errors; every other call goes through.

    `errors` are raised by the next calls in order, whatever their subnet; `by_subnet` maps a subnet id to the codes
    raised by the next calls in that subnet (`always` codes: by every call in that subnet).
    """

    def __init__(
        self,
        real: Any,
        errors: Iterable[str] = (),
        *,
        by_subnet: Mapping[str, Iterable[str]] | None = None,
        always: Mapping[str, str] | None = None,
    ) -> None:
        self.real = real
        self.planned = list(errors)
        self.planned_codes = tuple(self.planned)
        self.by_subnet = {subnet: list(codes) for subnet, codes in (by_subnet or {}).items()}
        self.always = dict(always or {})
        self.calls: list[tuple[str, str | None]] = []
        """(ClientToken = job id, error code or None) per RunInstances call."""
        self.subnets: list[str] = []
        """The SubnetId of each RunInstances call, in order."""
        self._lock = threading.Lock()

    def _next_error(self, subnet: str) -> str | None:
        if self.planned:
            return self.planned.pop(0)
        if self.by_subnet.get(subnet):
            return self.by_subnet[subnet].pop(0)
        return self.always.get(subnet)

    def run_instances(self, **kwargs: Any) -> Any:
        subnet = str(kwargs.get("SubnetId", ""))
        with self._lock:
            code = self._next_error(subnet)
            self.calls.append((kwargs.get("ClientToken", ""), code))
            self.subnets.append(subnet)
        if code is not None:
            raise run_instances_error(code)
        return self.real.run_instances(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def attempts(self, job_id: str) -> list[str | None]:
        with self._lock:
            return [code for token, code in self.calls if token == job_id]

    @property
    def codes(self) -> list[str | None]:
        with self._lock:
            return [code for _, code in self.calls]
