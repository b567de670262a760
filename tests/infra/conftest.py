"""Run the Pulumi program under `pulumi.runtime.set_mocks` and hand tests what it asked AWS to create.

The mocks record every resource's type, name and inputs, and answer with the computed outputs the program reads
(arn, id, streamArn, invokeArn, apiEndpoint, executionArn, domainName, ...), the way AWS would after a create.
A `Deployment` is one complete run of `__main__.py` with a given stack config; tests assert on its plain data.

Mocks and config are process-global in Pulumi; the whole moto suite runs in the same process but never touches
Pulumi, and this module sets no environment variable.
"""

from __future__ import annotations

import json
import logging
import runpy
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

with warnings.catch_warnings():
    # pulumi_aws warns, on import, about each deprecated class it defines (see `_run`): import the modules the
    # program uses at import time quietly.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_aws(\.|$)")
    import components.api
    import components.compute
    import components.monitoring
    import components.site
    import components.storage  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "__main__.py"
PROJECT = "filepipe"
STACK = "dev"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
PARTITION = "aws"
ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
"""The region's availability zones proper (opt-in status `opt-in-not-required`)."""
LOCAL_ZONE = "eu-west-1-tst-1a"
"""A made-up Local Zone the account has opted in to: its name sorts before every zone proper."""
ZONE_OPT_IN = {**{zone: "opt-in-not-required" for zone in ZONES}, LOCAL_ZONE: "opted-in"}
SCARCE_TYPES: dict[str, list[str]] = {
    "c7g.large": [LOCAL_ZONE, "eu-west-1c", "eu-west-1b"],
    "x9g.scarce": ["eu-west-1b", LOCAL_ZONE],
}
"""Instance types offered in some zones only (listed in no particular order, as AWS may); any other type is offered
in every zone, the Local Zone included."""


@dataclass(frozen=True)
class Recorded:
    """One resource registration: Pulumi type token, logical name, inputs (camelCase, resolved) and outputs."""

    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    """The resource options policy checks read (`protect`, `retain_on_delete`), as the program passed them."""
    parent: str = ""
    """The class of the component the resource was created in (`Compute`, `Network`, ...)."""
    former_parents: tuple[str, ...] = ()
    """The classes its aliases name as a former parent: the URNs it keeps from before a move between components."""

    def policy(self, key: str = "policy") -> dict[str, Any]:
        return json.loads(self.inputs[key])


def _service(type_token: str) -> str:
    module = type_token.split(":")[1].split("/", maxsplit=1)[0]
    return {"apigatewayv2": "apigateway", "cloudwatch": "logs"}.get(module, module)


def _arn(service: str, resource: str, *, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


def _bucket(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    bucket = inputs.get("bucket", name)
    return {"bucket": bucket, "arn": f"arn:{PARTITION}:s3:::{bucket}",
            "bucketRegionalDomainName": f"{bucket}.s3.{REGION}.amazonaws.com"}


def _table(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    table = inputs.get("name", name)
    arn = _arn("dynamodb", f"table/{table}")
    return {"name": table, "arn": arn, "streamArn": f"{arn}/stream/2026-01-01T00:00:00.000"}


def _function(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    arn = _arn("lambda", f"function:{inputs.get('name', name)}")
    return {"name": inputs.get("name", name), "arn": arn,
            "invokeArn": f"arn:{PARTITION}:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations"}


def _log_group(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    group = inputs.get("name", f"/filepipe/{name}")
    return {"name": group, "arn": _arn("logs", f"log-group:{group}")}


RANDOM_HEX = "5eed1e55"
"""What every `random.RandomId` of the mocks holds (4 bytes, as hex)."""
WORKER_TAG = f"{PROJECT}-{STACK}-{RANDOM_HEX}"
"""The stack tag value of the mocked deployments' worker VMs."""
API_ID = "a1b2c3d4e5"
DISTRIBUTION_DOMAIN = "d111111abcdef8.cloudfront.net"
COMPUTED: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    "aws:s3/bucket:Bucket": _bucket,
    "aws:dynamodb/table:Table": _table,
    "aws:lambda/function:Function": _function,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:apigatewayv2/api:Api": lambda name, inputs: {
        "apiEndpoint": f"https://{API_ID}.execute-api.{REGION}.amazonaws.com",
        "executionArn": _arn("execute-api", API_ID),
    },
    "aws:cloudfront/distribution:Distribution": lambda name, inputs: {
        "domainName": DISTRIBUTION_DOMAIN, "arn": _arn("cloudfront", "distribution/E2QWRUHEXAMPLE", region=""),
    },
    "aws:ec2/vpcEndpoint:VpcEndpoint": lambda name, inputs: {"prefixListId": f"pl-{name}"},
    "aws:ec2/subnet:Subnet": lambda name, inputs: {"arn": _arn("ec2", f"subnet/subnet-{name}")},
    "aws:ec2/securityGroup:SecurityGroup": lambda name, inputs: {"arn": _arn("ec2", f"security-group/sg-{name}")},
    "aws:ec2/launchTemplate:LaunchTemplate": lambda name, inputs: {
        "arn": _arn("ec2", f"launch-template/lt-{name}"), "latestVersion": 1,
    },
    # An IAM ARN holds the entity's path (`role/<path...>/<name>`; `/` when none is given).
    "aws:iam/role:Role": lambda name, inputs: {
        "name": name, "arn": _arn("iam", f"role{inputs.get('path') or '/'}{name}", region=""),
    },
    "aws:iam/policy:Policy": lambda name, inputs: {
        "name": name, "arn": _arn("iam", f"policy{inputs.get('path') or '/'}{name}", region=""),
    },
    "aws:iam/instanceProfile:InstanceProfile": lambda name, inputs: {
        "name": name, "arn": _arn("iam", f"instance-profile{inputs.get('path') or '/'}{name}", region=""),
    },
    "aws:cloudwatch/eventRule:EventRule": lambda name, inputs: {"name": name, "arn": _arn("events", f"rule/{name}")},
    "random:index/randomId:RandomId": lambda name, inputs: {"hex": RANDOM_HEX[: 2 * int(inputs["byteLength"])]},
    "aws:sqs/queue:Queue": lambda name, inputs: {
        "name": name,
        "arn": _arn("sqs", name), "url": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}",
    },
}


def computed_outputs(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """Outputs AWS computes on create, shaped like the real ones; physical names carry a suffix as Pulumi's do."""
    physical = f"{args.name}-1a2b3c4"
    generic = {"arn": _arn(_service(args.typ), args.name)}
    specific = COMPUTED.get(args.typ)
    return {**generic, **(specific(physical, args.inputs) if specific else {})}


INVOKES: dict[str, dict[str, Any]] = {
    "aws:index/getRegion:getRegion": {"region": REGION, "name": REGION, "id": REGION},
    "aws:index/getPartition:getPartition": {"partition": PARTITION, "dnsSuffix": "amazonaws.com", "id": PARTITION},
    "aws:index/getCallerIdentity:getCallerIdentity": {
        "accountId": ACCOUNT, "arn": f"arn:{PARTITION}:iam::{ACCOUNT}:user/deployer", "userId": "AIDEXAMPLE",
        "id": ACCOUNT,
    },
}


def _filters(args: dict[str, Any]) -> dict[str, list[str]]:
    return {f["name"]: list(f["values"]) for f in args.get("filters") or []}


def _availability_zones(args: dict[str, Any]) -> dict[str, Any]:
    """DescribeAvailabilityZones: zones the account may use, filtered by opt-in status when asked, newest first."""
    wanted = _filters(args).get("opt-in-status")
    names = [zone for zone in sorted(ZONE_OPT_IN, reverse=True) if wanted is None or ZONE_OPT_IN[zone] in wanted]
    return {"names": names, "zoneIds": [f"euw1-{zone.rsplit('-', 1)[-1]}" for zone in names], "id": REGION}


def _instance_type_offerings(args: dict[str, Any]) -> dict[str, Any]:
    """DescribeInstanceTypeOfferings by availability zone, for the instance types in the `instance-type` filter."""
    assert args.get("locationType") == "availability-zone", args
    types = _filters(args).get("instance-type", [])
    offered = [(kind, zone) for kind in types for zone in SCARCE_TYPES.get(kind, list(ZONE_OPT_IN))]
    return {"instanceTypes": [kind for kind, _ in offered], "locations": [zone for _, zone in offered],
            "locationTypes": ["availability-zone"] * len(offered), "id": REGION}


INVOKE_ANSWERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": _instance_type_offerings,
}


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.levelname}: {record.getMessage()}")


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every resource registration, every invoke and every engine log message; fills in outputs."""

    def __init__(self) -> None:
        self.resources: list[Recorded] = []
        self.options: dict[tuple[str, str], dict[str, Any]] = {}
        self.parents: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        self.invokes: list[str] = []
        self.messages: list[str] = []
        self.logger = logging.getLogger("tests.infra.pulumi-engine")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(_ListHandler(self.messages))

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = {**args.inputs, **computed_outputs(args)}
        options = self.options.pop((args.typ, args.name), {})
        parent, former = self.parents.pop((args.typ, args.name), ("", ()))
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs), outputs, options, parent, former))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.invokes.append(args.token)
        if args.token in INVOKE_ANSWERS:
            return INVOKE_ANSWERS[args.token](dict(args.args)), []
        if args.token not in INVOKES:
            raise NotImplementedError(f"the mocks do not answer invoke {args.token}")
        return INVOKES[args.token], []

    def record_options(self, args: pulumi.ResourceTransformationArgs) -> None:
        """A stack transformation that changes nothing: it notes the options the mocks' monitor is not given."""
        self.options[(args.type_, args.name)] = {
            "protect": bool(args.opts.protect), "retain_on_delete": bool(args.opts.retain_on_delete),
        }
        former = tuple(type(alias.parent).__name__ for alias in args.opts.aliases or []
                       if isinstance(alias, pulumi.Alias) and alias.parent not in (None, ...))
        self.parents[(args.type_, args.name)] = (type(args.opts.parent).__name__ if args.opts.parent else "", former)


@dataclass
class Deployment:
    """The resources one run of the program registered, and its stack outputs."""

    resources: list[Recorded]
    exports: dict[str, Any]
    namespace: dict[str, Any] = field(repr=False)
    engine_messages: list[str] = field(default_factory=list)
    """What the program logged through the Pulumi engine (warnings such as "... is deprecated")."""

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


def stack_config(stack: str) -> dict[str, str]:
    """`Pulumi.<stack>.yaml`'s `filepipe:` keys (the `aws:` provider keys mean nothing to mocks)."""
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    return {key: str(value) for key, value in data["config"].items() if key.startswith(f"{PROJECT}:")}


def dev_stack_config() -> dict[str, str]:
    return stack_config("dev")


PROD_ALARM_EMAIL = "ops@example.org"
"""What an operator sets as prod's `alarmEmail` (`pulumi config set alarmEmail ... --stack prod`), for the tests."""


def prod_stack_config() -> dict[str, str]:
    return {**stack_config("prod"), f"{PROJECT}:alarmEmail": PROD_ALARM_EMAIL}


@pytest.fixture(scope="session")
def mocks() -> RecordingMocks:
    recording = RecordingMocks()
    pulumi.runtime.set_mocks(recording, project=PROJECT, stack=STACK, preview=False, logger=recording.logger)
    pulumi.runtime.register_stack_transformation(recording.record_options)
    return recording


def run_program(mocks: RecordingMocks, config: dict[str, str], path: Path = PROGRAM) -> Deployment:
    mocks.resources.clear()
    mocks.options.clear()
    mocks.parents.clear()
    mocks.invokes.clear()
    mocks.messages.clear()
    pulumi.runtime.set_all_config(config)
    root = pulumi.runtime.get_root_resource()
    assert root is not None
    root.outputs.clear()
    captured: dict[str, Any] = {}
    namespace: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        namespace.update(runpy.run_path(str(path), run_name="__main__"))
        return pulumi.Output.from_input(dict(root.outputs)).apply(captured.update)

    with warnings.catch_warnings():
        # Loading a pulumi_aws module warns about every deprecated class it *defines*; that says nothing about this
        # program, whose own deprecated uses reach the engine log (see `Deployment.engine_messages`).
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_aws(\.|$)")
        program()
    return Deployment(list(mocks.resources), captured, namespace, list(mocks.messages))


@pytest.fixture(scope="session")
def build(mocks: RecordingMocks) -> Iterator[Callable[..., Deployment]]:
    """`build(**overrides)` runs the program with the dev stack's config plus `filepipe:<key>` overrides."""

    def run(**overrides: str) -> Deployment:
        config = dev_stack_config()
        config.update({f"{PROJECT}:{key}": value for key, value in overrides.items()})
        return run_program(mocks, config)

    yield run
    pulumi.runtime.set_all_config({})


@pytest.fixture(scope="session")
def dev(build: Callable[..., Deployment]) -> Deployment:
    """The dev stack, built once for the whole infra suite."""
    return build()


@pytest.fixture(scope="session")
def prod(mocks: RecordingMocks) -> Deployment:
    """The program under `Pulumi.prod.yaml`'s config, built once, with the `alarmEmail` its operator must add (the
    file leaves it out: no address of ours belongs in the repository, and a protected stack refuses to deploy
    without one)."""
    return run_program(mocks, prod_stack_config())


TUNED: dict[str, str] = {
    "instanceType": "c7g.large",
    "amiParameter": "/filepipe/worker-ami",
    "maxFileMb": "25",
    "maxTextLength": "500",
    "maxConcurrentVms": "3",
    "jobTimeoutMinutes": "42",
    "logRetentionDays": "30",
    "uploadExpirySeconds": "120",
    "downloadExpirySeconds": "90",
    "apiThrottleRate": "7",
    "apiThrottleBurst": "11",
    "apiReservedConcurrency": "6",
    "launcherReservedConcurrency": "3",
    "sweepIntervalMinutes": "1",
    "alarmEmail": "ops@example.org",
    "failedJobsAlarmThreshold": "7",
    "extraOrigins": "https://files.example.org, https://staging.example.org",
    "allowSelfSignUp": "false",
    "allowedEmailDomains": "example.org,example.net",
    "emailFrom": "filepipe <no-reply@example.org>",
    "sesIdentityArn": "arn:aws:ses:eu-west-1:123456789012:identity/example.org",
    "maxActiveJobsPerUser": "9",
    "uploadGrantsPerHour": "17",
    "accessTokenMinutes": "15",
    "idTokenMinutes": "20",
    "refreshTokenDays": "3",
    "protectData": "true",
    "retentionDays": "45",
    "rolePath": "/filepipe/",
    "permissionsBoundary": f"arn:{PARTITION}:iam::{ACCOUNT}:policy/filepipe-boundary",
    "ebsKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}
"""A stack that sets every config key to a value unlike the dev stack's and the defaults (a new key must be added
here: `test_program` checks), so one run of the program shows each override reaching its resources."""


@pytest.fixture(scope="session")
def tuned(build: Callable[..., Deployment]) -> Deployment:
    """The dev stack with every key of `TUNED` set, built once."""
    return build(**TUNED)


@pytest.fixture(scope="session")
def defaults(mocks: RecordingMocks) -> Deployment:
    """A stack with no config at all (a fresh `pulumi stack init`), built once."""
    return run_program(mocks, {})
