"""Run the Pulumi program under `pulumi.runtime.set_mocks` and hand tests what it asked AWS to create.

The mocks record every resource's type, name and inputs, and answer with the computed outputs the program reads
(arn, id, streamArn, invokeArn, apiEndpoint, executionArn, domainName, ...), the way AWS would after a create.
A `Deployment` is one complete run of `__main__.py` with a given stack config; tests assert on its plain data.

Mocks and config are process-global in Pulumi; the whole moto suite runs in the same process but never touches
Pulumi, and this module sets no environment variable.
"""

from __future__ import annotations

import json
import runpy
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "__main__.py"
PROJECT = "filepipe"
STACK = "dev"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
PARTITION = "aws"
ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]


@dataclass(frozen=True)
class Recorded:
    """One resource registration: Pulumi type token, logical name, inputs (camelCase, resolved) and outputs."""

    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]

    def policy(self, key: str = "policy") -> dict[str, Any]:
        return json.loads(self.inputs[key])


def _service(type_token: str) -> str:
    module = type_token.split(":")[1].split("/")[0]
    return {"lambda": "lambda", "apigatewayv2": "apigateway", "cloudwatch": "logs"}.get(module, module)


def computed_outputs(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """Outputs AWS computes on create, shaped like the real ones (auto-names carry a suffix as Pulumi's do)."""
    name, token = args.name, args.typ
    physical = f"{name}-1a2b3c4"
    out: dict[str, Any] = {"arn": f"arn:{PARTITION}:{_service(token)}:{REGION}:{ACCOUNT}:{name}"}
    if token == "aws:s3/bucket:Bucket":
        bucket = args.inputs.get("bucket", physical)
        out.update(bucket=bucket, arn=f"arn:{PARTITION}:s3:::{bucket}",
                   bucketRegionalDomainName=f"{bucket}.s3.{REGION}.amazonaws.com")
    elif token == "aws:dynamodb/table:Table":
        table = args.inputs.get("name", physical)
        arn = f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
        out.update(name=table, arn=arn, streamArn=f"{arn}/stream/2026-01-01T00:00:00.000")
    elif token == "aws:lambda/function:Function":
        function = args.inputs.get("name", physical)
        arn = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{function}"
        out.update(name=function, arn=arn,
                   invokeArn=f"arn:{PARTITION}:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations")
    elif token == "aws:apigatewayv2/api:Api":
        api_id = "a1b2c3d4e5"
        out.update(apiEndpoint=f"https://{api_id}.execute-api.{REGION}.amazonaws.com",
                   executionArn=f"arn:{PARTITION}:execute-api:{REGION}:{ACCOUNT}:{api_id}")
    elif token == "aws:cloudfront/distribution:Distribution":
        out.update(domainName="d111111abcdef8.cloudfront.net",
                   arn=f"arn:{PARTITION}:cloudfront::{ACCOUNT}:distribution/E2QWRUHEXAMPLE")
    elif token == "aws:ec2/vpcEndpoint:VpcEndpoint":
        out.update(prefixListId=f"pl-{name}")
    elif token == "aws:ec2/subnet:Subnet":
        out.update(arn=f"arn:{PARTITION}:ec2:{REGION}:{ACCOUNT}:subnet/subnet-{name}")
    elif token == "aws:ec2/securityGroup:SecurityGroup":
        out.update(arn=f"arn:{PARTITION}:ec2:{REGION}:{ACCOUNT}:security-group/sg-{name}")
    elif token == "aws:ec2/launchTemplate:LaunchTemplate":
        out.update(arn=f"arn:{PARTITION}:ec2:{REGION}:{ACCOUNT}:launch-template/lt-{name}", latestVersion=1)
    elif token == "aws:iam/role:Role":
        out.update(name=physical, arn=f"arn:{PARTITION}:iam::{ACCOUNT}:role/{physical}")
    elif token == "aws:iam/instanceProfile:InstanceProfile":
        out.update(name=physical, arn=f"arn:{PARTITION}:iam::{ACCOUNT}:instance-profile/{physical}")
    elif token == "aws:cloudwatch/logGroup:LogGroup":
        group = args.inputs.get("name", f"/filepipe/{physical}")
        out.update(name=group, arn=f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{group}")
    elif token == "aws:sqs/queue:Queue":
        out.update(arn=f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{physical}",
                   url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}")
    return out


INVOKES: dict[str, dict[str, Any]] = {
    "aws:index/getRegion:getRegion": {"region": REGION, "name": REGION, "id": REGION},
    "aws:index/getPartition:getPartition": {"partition": PARTITION, "dnsSuffix": "amazonaws.com", "id": PARTITION},
    "aws:index/getCallerIdentity:getCallerIdentity": {
        "accountId": ACCOUNT, "arn": f"arn:{PARTITION}:iam::{ACCOUNT}:user/deployer", "userId": "AIDEXAMPLE",
        "id": ACCOUNT,
    },
    "aws:index/getAvailabilityZones:getAvailabilityZones": {
        "names": ZONES, "zoneIds": ["euw1-az1", "euw1-az2", "euw1-az3"], "id": REGION,
    },
}


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every resource registration and every invoke; fills in computed outputs."""

    def __init__(self) -> None:
        self.resources: list[Recorded] = []
        self.invokes: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = {**args.inputs, **computed_outputs(args)}
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs), outputs))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.invokes.append(args.token)
        if args.token not in INVOKES:
            raise NotImplementedError(f"the mocks do not answer invoke {args.token}")
        return INVOKES[args.token], []


@dataclass
class Deployment:
    """The resources one run of the program registered, and its stack outputs."""

    resources: list[Recorded]
    exports: dict[str, Any]
    namespace: dict[str, Any] = field(repr=False)
    warnings: list[warnings.WarningMessage] = field(repr=False, default_factory=list)

    def of_type(self, token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == token]

    def one(self, token: str, name: str | None = None) -> Recorded:
        found = [r for r in self.of_type(token) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {token} named {name!r}, found {[r.name for r in found]}"
        return found[0]

    def by_id(self, resource_id: str) -> Recorded:
        found = [r for r in self.resources if f"{r.name}-id" == resource_id]
        assert len(found) == 1, f"no resource has id {resource_id!r}"
        return found[0]


def dev_stack_config() -> dict[str, str]:
    """`Pulumi.dev.yaml`'s `filepipe:` keys (the `aws:` provider keys mean nothing to mocks)."""
    data = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text(encoding="utf-8"))
    return {key: str(value) for key, value in data["config"].items() if key.startswith(f"{PROJECT}:")}


@pytest.fixture(scope="session")
def mocks() -> RecordingMocks:
    recording = RecordingMocks()
    pulumi.runtime.set_mocks(recording, project=PROJECT, stack=STACK, preview=False)
    return recording


def _run(mocks: RecordingMocks, config: dict[str, str]) -> Deployment:
    mocks.resources.clear()
    mocks.invokes.clear()
    pulumi.runtime.set_all_config(config)
    root = pulumi.runtime.get_root_resource()
    assert root is not None
    root.outputs.clear()
    captured: dict[str, Any] = {}
    namespace: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        namespace.update(runpy.run_path(str(PROGRAM), run_name="__main__"))
        return pulumi.Output.from_input(dict(root.outputs)).apply(captured.update)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        program()
    return Deployment(list(mocks.resources), captured, namespace, list(caught))


@pytest.fixture(scope="session")
def build(mocks: RecordingMocks) -> Iterator[Callable[..., Deployment]]:
    """`build(**overrides)` runs the program with the dev stack's config plus `filepipe:<key>` overrides."""

    def run(**overrides: str) -> Deployment:
        config = dev_stack_config()
        config.update({f"{PROJECT}:{key}": value for key, value in overrides.items()})
        return _run(mocks, config)

    yield run
    pulumi.runtime.set_all_config({})


@pytest.fixture(scope="session")
def dev(build: Callable[..., Deployment]) -> Deployment:
    """The dev stack, built once for the whole infra suite."""
    return build()
