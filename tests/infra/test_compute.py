"""Compute: isolated network, gateway endpoints, security group, launch template and user-data, the launcher's
stream mapping, the sweeper's schedule."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from components import compute
from components.compute import rate_expression
from components.network import subnet_zones as pick_zones
from local.events import instance_state_change
from local.streams import matches
from stackspec.settings import NO_RESERVATION, STACK_TAG
from stackspec.triggers import (
    INSTANCE_TERMINATED_PATTERN,
    LAUNCHER_EVENT_FILTERS,
    STREAM_BATCH_SIZE,
    STREAM_MAX_RETRIES,
)
from tests.infra.conftest import (
    LOCAL_ZONE,
    REGION,
    ROOT,
    SCARCE_TYPES,
    STACK,
    TUNED,
    WORKER_TAG,
    ZONES,
    Deployment,
)
from worker.userdata import render_user_data

NETWORK_EGRESS = (
    "aws:ec2/internetGateway:InternetGateway", "aws:ec2/natGateway:NatGateway", "aws:ec2/route:Route",
    "aws:ec2/eip:Eip", "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
)


def test_subnets_are_private_in_two_zones(dev: Deployment) -> None:
    """Regression: one zone loses all launches in a zonal outage; a public IP makes a worker reachable."""
    subnets = dev.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == 2
    assert {s.inputs["availabilityZone"] for s in subnets} == set(ZONES[:2])
    for subnet in subnets:
        assert subnet.inputs["vpcId"] == "compute-vpc-id"
        assert subnet.inputs["mapPublicIpOnLaunch"] is False


def test_there_is_no_route_out_of_the_vpc(dev: Deployment) -> None:
    """Regression: an internet or NAT gateway turns the isolated workers into hosts that can reach (and be reached
    from) anywhere, and NAT costs ~$30/month at rest."""
    assert not [r.name for r in dev.resources if r.type in NETWORK_EGRESS]
    [table] = dev.of_type("aws:ec2/routeTable:RouteTable")
    assert not table.inputs.get("routes"), "the private route table must hold no routes besides the endpoints'"
    associations = dev.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    subnets = {f"{s.name}-id" for s in dev.of_type("aws:ec2/subnet:Subnet")}
    assert {a.inputs["subnetId"] for a in associations} == subnets
    assert {a.inputs["routeTableId"] for a in associations} == {f"{table.name}-id"}


def test_gateway_endpoints_for_s3_and_dynamodb_on_the_private_route_table(dev: Deployment) -> None:
    """Regression: without them the worker cannot fetch its script, packages or input, nor update its job."""
    endpoints = {e.name: e.inputs for e in dev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert set(endpoints) == {"compute-s3", "compute-dynamodb"}
    assert endpoints["compute-s3"]["serviceName"] == "com.amazonaws.eu-west-1.s3"
    assert endpoints["compute-dynamodb"]["serviceName"] == "com.amazonaws.eu-west-1.dynamodb"
    for inputs in endpoints.values():
        assert inputs["vpcEndpointType"] == "Gateway"
        assert inputs["routeTableIds"] == ["compute-private-id"]


NETWORK_TYPES = ("aws:ec2/vpc:Vpc", "aws:ec2/routeTable:RouteTable", "aws:ec2/subnet:Subnet",
                 "aws:ec2/routeTableAssociation:RouteTableAssociation", "aws:ec2/vpcEndpoint:VpcEndpoint",
                 "aws:ec2/securityGroup:SecurityGroup")


def test_the_network_is_a_component_whose_resources_keep_their_names_and_urns(dev: Deployment) -> None:
    """Regression: the network's resources were Compute's own children; as children of the Network component they
    keep their names and, by an alias naming Compute as their former parent, their URNs, so a deploy of the new
    code replaces no VPC, subnet or security group (a new URN is a delete and a create)."""
    network = [r for token in NETWORK_TYPES for r in dev.of_type(token)]
    assert len(network) == 1 + 1 + 2 + 2 + 2 + 1
    dev.one("filepipe:network:Network", "compute")
    for resource in network:
        assert resource.name.startswith("compute-"), resource.name
        assert resource.parent == "Network", f"{resource.name} is a child of {resource.parent}"
        assert resource.former_parents == ("Compute",), f"{resource.name} lost its URN: {resource.former_parents}"
    assert [r.name for r in dev.resources if r.former_parents and r.type not in NETWORK_TYPES] == []


def test_security_group_has_no_ingress_and_https_egress_to_the_endpoints_only(dev: Deployment) -> None:
    """Regression: any ingress rule (SSH to the world is the classic) exposes every worker VM."""
    group = dev.one("aws:ec2/securityGroup:SecurityGroup").inputs
    assert group["ingress"] == []
    [egress] = group["egress"]
    assert (egress["protocol"], egress["fromPort"], egress["toPort"]) == ("tcp", 443, 443)
    endpoints = {e.outputs["prefixListId"] for e in dev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert set(egress["prefixListIds"]) == endpoints and len(endpoints) == 2
    assert not egress.get("cidrBlocks") and not egress.get("ipv6CidrBlocks")
    assert not dev.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")


def test_launch_template_hardening(dev: Deployment) -> None:
    """Regression: IMDSv1 (SSRF steals the role), hop limit > 1, no metadata tags (the VM cannot read its JobId),
    unencrypted root, shutdown that stops instead of terminating (idle VMs kept and billed), or a key pair."""
    template = dev.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["metadataOptions"] == {
        "httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1,
        "instanceMetadataTags": "enabled",
    }
    assert template["instanceInitiatedShutdownBehavior"] == "terminate"
    [root] = template["blockDeviceMappings"]
    assert root["deviceName"] == "/dev/xvda"
    assert root["ebs"] == {"volumeType": "gp3", "encrypted": "true", "deleteOnTermination": "true"}
    assert "keyName" not in template
    assert template["vpcSecurityGroupIds"] == ["compute-worker-id"]
    profile = dev.one("aws:iam/instanceProfile:InstanceProfile")
    assert template["iamInstanceProfile"] == {"arn": profile.outputs["arn"]}
    assert profile.inputs["role"] == dev.one("aws:iam/role:Role", "compute-worker-role").outputs["name"]
    assert template["updateDefaultVersion"] is True, "the launcher starts the default version"


def test_launch_template_ami_and_type_come_from_config(dev: Deployment) -> None:
    """Regression: a hard-coded AMI id goes stale and differs per region; the type must follow the config."""
    template = dev.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    settings = dev.namespace["settings"]
    assert template["imageId"] == f"resolve:ssm:{settings.ami_parameter}"
    assert template["instanceType"] == settings.instance_type


def test_instance_type_override_reaches_the_template(tuned: Deployment) -> None:
    """Regression: `pulumi config set instanceType ...` ignored."""
    template = tuned.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["instanceType"] == "c7g.large"


def test_instances_and_volumes_are_tagged_with_the_stack(dev: Deployment) -> None:
    """Regression: without the stack tag the sweeper cannot find (and terminate) this stack's stray VMs."""
    specs = dev.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["tagSpecifications"]
    assert {s["resourceType"]: s["tags"] for s in specs} == {
        "instance": {STACK_TAG: WORKER_TAG}, "volume": {STACK_TAG: WORKER_TAG},
    }


def test_the_stack_tag_is_one_value_unique_to_the_deployment_everywhere(dev: Deployment) -> None:
    """Regression: VMs tagged with the bare stack name, so two people's `dev` stacks in one account see, fail and
    terminate each other's VMs; or a tag value that differs between the VMs (launch template), the launcher and
    sweeper (environment) and the sweeper's TerminateInstances condition, so VMs are missed or cannot be ended."""
    [suffix] = dev.of_type("random:index/randomId:RandomId")
    tag = f"filepipe-{STACK}-{suffix.outputs['hex']}"
    assert tag != STACK and len(suffix.outputs["hex"]) == 8
    template = dev.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    on_vms = {value for spec in template["tagSpecifications"] for value in spec["tags"].values()}
    environments = {dev.one("aws:lambda/function:Function", name).inputs["environment"]["variables"]["STACK_TAG"]
                    for name in ("compute-launcher", "compute-sweeper")}
    [terminate] = [s for s in dev.one("aws:iam/rolePolicy:RolePolicy", "compute-sweeper-policy").policy()["Statement"]
                   if s["Action"] == ["ec2:TerminateInstances"]]
    condition = {terminate["Condition"]["StringEquals"][f"aws:ResourceTag/{STACK_TAG}"]}
    assert on_vms == environments == condition == {tag}


def test_user_data_is_the_rendered_script_for_this_stacks_bucket_and_table(dev: Deployment) -> None:
    """Regression: user-data not base64 (launch template rejects it), rendered for another bucket/table, or a copy
    of the script that drifted from `worker/user_data.sh`."""
    template = dev.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    decoded = base64.b64decode(template["userData"], validate=True).decode("utf-8")
    assert decoded == render_user_data(
        bucket=dev.exports["bucketName"], table=dev.exports["tableName"],
        timeout_minutes=dev.namespace["settings"].job_timeout_minutes,
    )
    assert decoded.startswith("#!/bin/bash\n")
    assert dev.exports["bucketName"] in decoded and dev.exports["tableName"] in decoded


def test_job_timeout_override_reaches_the_in_vm_watchdog(tuned: Deployment) -> None:
    """Regression: `jobTimeoutMinutes` changed but VMs still power off at the old deadline."""
    template = tuned.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    decoded = base64.b64decode(template["userData"]).decode("utf-8")
    assert "TIMEOUT_MINUTES=42\n" in decoded


def test_stream_mapping_feeds_new_and_finished_jobs_to_the_launcher_and_keeps_failures(dev: Deployment) -> None:
    """Regression: without the filters every status update invokes the launcher; without the MODIFY pattern a
    finished job never frees its VM slot (the queue stalls until the sweeper); without
    ReportBatchItemFailures one bad record retries (and relaunches) the whole batch; unbounded retries block the
    shard for a day; without an on-failure queue dropped records vanish."""
    mapping = dev.one("aws:lambda/eventSourceMapping:EventSourceMapping").inputs
    table = dev.one("aws:dynamodb/table:Table").outputs
    launcher = dev.one("aws:lambda/function:Function", "compute-launcher").outputs
    queue = dev.one("aws:sqs/queue:Queue").outputs
    assert mapping["eventSourceArn"] == table["streamArn"]
    assert mapping["functionName"] == launcher["arn"]
    patterns = [json.loads(f["pattern"]) for f in mapping["filterCriteria"]["filters"]]
    assert patterns == list(LAUNCHER_EVENT_FILTERS), "the mapping must use the patterns local mode applies"
    assert mapping["batchSize"] == STREAM_BATCH_SIZE
    assert mapping["maximumRetryAttempts"] == STREAM_MAX_RETRIES
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["bisectBatchOnFunctionError"] is True
    assert 0 <= mapping["maximumRetryAttempts"] <= 10
    assert 60 <= mapping["maximumRecordAgeInSeconds"] <= 24 * 3600
    assert mapping["destinationConfig"] == {"onFailure": {"destinationArn": queue["arn"]}}
    assert mapping["startingPosition"] == "LATEST"


def test_failure_queue_is_encrypted_and_kept_two_weeks(dev: Deployment) -> None:
    """Regression: failed batches (job ids) stored unencrypted, or expiring before anyone looks."""
    queue = dev.one("aws:sqs/queue:Queue").inputs
    assert queue["sqsManagedSseEnabled"] is True
    assert queue["messageRetentionSeconds"] == 14 * 24 * 3600


class TestVmTerminatedRule:
    """EC2's state-change events for terminated VMs reach the slot release function, which frees the VM's slot."""

    def test_terminated_vms_invoke_the_release_function_not_the_launcher(self, dev: Deployment) -> None:
        """Regression: without this rule a slot is never freed when its VM goes, and the queue moves only when the
        sweeper notices, minutes later; aimed at the launcher, every VM terminated in the account took the
        launcher's concurrency while new jobs waited on the stream."""
        rule = dev.one("aws:cloudwatch/eventRule:EventRule", "compute-vm-terminated")
        assert json.loads(rule.inputs["eventPattern"]) == INSTANCE_TERMINATED_PATTERN
        event = instance_state_change("i-0abc", "terminated", "eu-west-1")
        assert matches(INSTANCE_TERMINATED_PATTERN, event), "the pattern must match the event the release handles"
        assert not matches(INSTANCE_TERMINATED_PATTERN, instance_state_change("i-0abc", "running", "eu-west-1"))
        target = dev.one("aws:cloudwatch/eventTarget:EventTarget", "compute-vm-terminated-target").inputs
        release = dev.one("aws:lambda/function:Function", "compute-release")
        assert target["rule"] == rule.outputs["name"] and target["arn"] == release.outputs["arn"]
        assert release.inputs["handler"] == "handlers.release.handler"

    def test_only_this_rule_may_invoke_the_release_function(self, dev: Deployment) -> None:
        rule = dev.one("aws:cloudwatch/eventRule:EventRule", "compute-vm-terminated").outputs
        release = dev.one("aws:lambda/function:Function", "compute-release").outputs
        permission = dev.one("aws:lambda/permission:Permission", "compute-vm-terminated-invoke").inputs
        assert permission == {
            "action": "lambda:InvokeFunction", "function": release["name"], "principal": "events.amazonaws.com",
            "sourceArn": rule["arn"],
        }
        launcher = dev.one("aws:lambda/function:Function", "compute-launcher").outputs["name"]
        invokers = [p.inputs for p in dev.of_type("aws:lambda/permission:Permission")
                    if p.inputs["function"] == launcher]
        assert invokers == [], "only its stream mapping invokes the launcher"

    def test_the_release_function_draws_on_no_reservation_and_its_own_role(
        self, dev: Deployment, tuned: Deployment
    ) -> None:
        """The launcher's reserved concurrency (when set) is the launcher's alone: the account's VM churn must not
        share it."""
        for deployment in (dev, tuned):
            release = deployment.one("aws:lambda/function:Function", "compute-release").inputs
            assert release["reservedConcurrentExecutions"] == NO_RESERVATION
        launcher = tuned.one("aws:lambda/function:Function", "compute-launcher").inputs
        assert launcher["reservedConcurrentExecutions"] == tuned.namespace["settings"].launcher_reserved_concurrency
        roles = {dev.one("aws:lambda/function:Function", f"compute-{name}").inputs["role"]
                 for name in ("launcher", "release", "sweeper")}
        assert len(roles) == 3


class TestSweeper:
    """The scheduled sweeper: a Lambda, an EventBridge rule, a target, and a permission for that rule only."""

    def test_rule_runs_the_sweeper_every_interval(self, dev: Deployment) -> None:
        """Regression: no schedule means overdue VMs run (and bill) until their own watchdog, stuck jobs never end,
        and a lost final stream record leaves the queue stalled for good."""
        rule = dev.one("aws:cloudwatch/eventRule:EventRule", "compute-sweep")
        interval = dev.namespace["settings"].sweep_interval_minutes
        assert rule.inputs["scheduleExpression"] == f"rate({interval} minutes)"
        assert "eventPattern" not in rule.inputs
        target = dev.one("aws:cloudwatch/eventTarget:EventTarget", "compute-sweep-target").inputs
        sweeper = dev.one("aws:lambda/function:Function", "compute-sweeper")
        assert target["rule"] == rule.outputs["name"]
        assert target["arn"] == sweeper.outputs["arn"]
        assert sweeper.inputs["handler"] == "handlers.sweeper.handler"

    def test_only_this_rule_may_invoke_the_sweeper(self, dev: Deployment) -> None:
        """Regression: a permission without source ARN lets any EventBridge rule (any account) trigger sweeps; a
        missing one makes every scheduled invocation fail silently."""
        rule = dev.one("aws:cloudwatch/eventRule:EventRule", "compute-sweep").outputs
        sweeper = dev.one("aws:lambda/function:Function", "compute-sweeper").outputs
        others = [p.inputs for p in dev.of_type("aws:lambda/permission:Permission")
                  if p.inputs["function"] == sweeper["name"]]
        assert others == [{
            "action": "lambda:InvokeFunction", "function": sweeper["name"], "principal": "events.amazonaws.com",
            "sourceArn": rule["arn"],
        }]

    def test_a_failed_sweep_is_not_retried_behind_the_next(self, dev: Deployment) -> None:
        """Regression: Lambda retries failed async invocations twice and keeps throttled ones for six hours, so
        stale sweeps pile up behind fresh ones; the next scheduled sweep does the same work."""
        config = dev.one("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig").inputs
        interval = dev.namespace["settings"].sweep_interval_minutes
        assert config["functionName"] == dev.one("aws:lambda/function:Function", "compute-sweeper").outputs["name"]
        assert config["maximumRetryAttempts"] == 0
        assert config["maximumEventAgeInSeconds"] == interval * 60

    def test_interval_comes_from_config(self, tuned: Deployment) -> None:
        """Regression: `sweepIntervalMinutes` ignored; `rate(1 minutes)` (EventBridge rejects the plural for 1)."""
        deployment = tuned
        assert TUNED["sweepIntervalMinutes"] == "1"
        rule = deployment.one("aws:cloudwatch/eventRule:EventRule", "compute-sweep")
        assert rule.inputs["scheduleExpression"] == "rate(1 minute)"
        config = deployment.one("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig").inputs
        assert config["maximumEventAgeInSeconds"] == 60, "EventBridge/Lambda's minimum event age"


@pytest.mark.parametrize(("minutes", "expression"), [(1, "rate(1 minute)"), (2, "rate(2 minutes)"),
                                                     (60, "rate(60 minutes)")])
def test_rate_expression(minutes: int, expression: str) -> None:
    assert rate_expression(minutes) == expression


def subnet_zones_of(deployment: Deployment) -> list[str]:
    return sorted(s.inputs["availabilityZone"] for s in deployment.of_type("aws:ec2/subnet:Subnet"))


def test_subnets_go_in_zones_that_offer_the_instance_type(tuned: Deployment) -> None:
    """Regression: a subnet in a zone without the instance type fails every launch there with `Unsupported`, half
    of all jobs for good; the first two zones by name are not enough."""
    offered = set(SCARCE_TYPES[TUNED["instanceType"]])
    assert "eu-west-1a" not in offered
    assert subnet_zones_of(tuned) == ["eu-west-1b", "eu-west-1c"]


def test_local_and_wavelength_zones_are_never_picked(dev: Deployment, tuned: Deployment) -> None:
    """Regression: an opted-in Local Zone (its name sorts first, and it offers the type) holding a subnet: other
    prices, fewer services, and no S3/DynamoDB gateway endpoint route there as in a zone proper."""
    for deployment in (dev, tuned):
        zones = subnet_zones_of(deployment)
        assert LOCAL_ZONE not in zones and set(zones) <= set(ZONES), zones


def test_the_zone_choice_does_not_depend_on_the_order_aws_lists_zones_in(build: Callable[..., Deployment]) -> None:
    """Regression: picking by list position, so an unchanged region answering in another order would replace
    subnets at the next deploy (the mocks list zones newest first)."""
    assert subnet_zones_of(build()) == ZONES[:2]
    for order in (ZONES, ZONES[::-1], [ZONES[1], ZONES[2], ZONES[0]]):
        assert pick_zones(order, order[::-1], instance_type="t4g.micro", region=REGION) == ZONES[:2]


@pytest.mark.parametrize(("offered", "found"), [([], "none"), (["eu-west-1b"], "eu-west-1b")])
def test_fewer_than_two_zones_is_an_error_naming_the_type_and_region(offered: list[str], found: str) -> None:
    """Regression: a region or type with one usable zone deploying a single-zone network (or an index error)."""
    with pytest.raises(ValueError, match=rf"x9g\.scarce is offered in {len(offered)} .* of {REGION} \({found}\)"):
        pick_zones(ZONES, offered, instance_type="x9g.scarce", region=REGION)


PREVIEW_WITH = """
import sys
import pulumi
from tests.infra.conftest import PROJECT, STACK, RecordingMocks, dev_stack_config, run_program
mocks = RecordingMocks()
pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=STACK, preview=True, logger=mocks.logger)
run_program(mocks, {**dev_stack_config(), **dict(arg.split("=", 1) for arg in sys.argv[1:])})
"""


def test_a_type_offered_in_one_zone_fails_the_preview() -> None:
    """Regression: the error raised inside the zone lookup lost (a preview that succeeds with an unknown zone).

    In a process of its own: a program that fails leaves Pulumi tasks behind that would log into other tests."""
    result = subprocess.run(
        [sys.executable, "-c", PREVIEW_WITH, "filepipe:instanceType=x9g.scarce"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode != 0, result.stdout
    assert f"instance type x9g.scarce is offered in 1 availability zone(s) of {REGION}" in result.stderr


def test_burstable_vms_launch_in_standard_credit_mode(dev: Deployment) -> None:
    """Regression: t4g (the default) launches in `unlimited` credit mode unless told otherwise (RunInstances'
    CreditSpecification reference), billed for surplus credits whenever a busy worker outruns its baseline."""
    template = dev.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert dev.namespace["settings"].instance_type.startswith("t4g.")
    assert template["creditSpecification"] == {"cpuCredits": "standard"}


@pytest.mark.parametrize(("instance_type", "credits"), [
    ("t2.micro", "standard"), ("t3.small", "standard"), ("t3a.medium", "standard"), ("t4g.nano", "standard"),
    ("c7g.large", None), ("m7g.medium", None), ("t4x.fictional", None),
])
def test_only_burstable_families_get_a_credit_specification(instance_type: str, credits: str | None) -> None:
    """The burstable families are EC2's InstanceFamilyCreditSpecification values (t2, t3, t3a, t4g); a credit
    mode on any other type means nothing."""
    spec = compute.credit_specification(instance_type)
    assert (spec.cpu_credits if spec is not None else None) == credits


def test_a_non_burstable_type_has_no_credit_specification(tuned: Deployment) -> None:
    template = tuned.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["instanceType"] == "c7g.large" and "creditSpecification" not in template


def test_a_customer_managed_ebs_key_encrypts_the_root_volume(dev: Deployment, tuned: Deployment) -> None:
    """An account whose EBS encryption by default uses a customer-managed key fails every launch unless the
    launchers may use the key; with `ebsKmsKeyArn` the template names it, without it EBS's default key is used."""
    [root] = tuned.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["blockDeviceMappings"]
    assert root["ebs"]["kmsKeyId"] == TUNED["ebsKmsKeyArn"] and root["ebs"]["encrypted"] == "true"
    [root] = dev.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["blockDeviceMappings"]
    assert "kmsKeyId" not in root["ebs"]
