"""Compute: isolated network, gateway endpoints, security group, launch template and user-data, the launcher's
stream mapping."""

from __future__ import annotations

import base64
import json

from components.settings import STACK_TAG
from tests.infra.conftest import STACK, ZONES, Deployment
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


def test_instance_type_override_reaches_the_template(build) -> None:
    """Regression: `pulumi config set instanceType ...` ignored."""
    template = build(instanceType="c7g.large").one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["instanceType"] == "c7g.large"


def test_instances_and_volumes_are_tagged_with_the_stack(dev: Deployment) -> None:
    """Regression: without the stack tag the sweeper cannot find (and terminate) this stack's stray VMs."""
    specs = dev.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["tagSpecifications"]
    assert {s["resourceType"]: s["tags"] for s in specs} == {
        "instance": {STACK_TAG: STACK}, "volume": {STACK_TAG: STACK},
    }


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


def test_job_timeout_override_reaches_the_in_vm_watchdog(build) -> None:
    """Regression: `jobTimeoutMinutes` changed but VMs still power off at the old deadline."""
    template = build(jobTimeoutMinutes="42").one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    decoded = base64.b64decode(template["userData"]).decode("utf-8")
    assert "TIMEOUT_MINUTES=42\n" in decoded


def test_stream_mapping_feeds_inserts_to_the_launcher_and_keeps_failures(dev: Deployment) -> None:
    """Regression: without the INSERT filter every status update re-invokes the launcher; without
    ReportBatchItemFailures one bad record retries (and relaunches) the whole batch; unbounded retries block the
    shard for a day; without an on-failure queue dropped records vanish."""
    mapping = dev.one("aws:lambda/eventSourceMapping:EventSourceMapping").inputs
    table = dev.one("aws:dynamodb/table:Table").outputs
    launcher = dev.one("aws:lambda/function:Function", "compute-launcher").outputs
    queue = dev.one("aws:sqs/queue:Queue").outputs
    assert mapping["eventSourceArn"] == table["streamArn"]
    assert mapping["functionName"] == launcher["arn"]
    [pattern] = mapping["filterCriteria"]["filters"]
    assert json.loads(pattern["pattern"]) == {"eventName": ["INSERT"]}
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
