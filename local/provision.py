"""Create in an AWS endpoint (a moto server, or moto in-process) the resources the Pulumi program creates.

Everything is derived from `stackspec.settings` and the handler/worker modules, exactly as the Pulumi components
derive it, so local mode and tests exercise the same names, limits, user-data and key layout as AWS.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from typing import Any

from handlers.config import ApiConfig, LauncherConfig
from handlers.jobmodel import table_definition
from stackspec.cors import cors_rules
from stackspec.network import SUBNET_CIDRS, VPC_CIDR
from stackspec.settings import PROJECT, STACK_TAG, StackSettings, api_config, launcher_config
from stackspec.userpool import app_client_definition, user_pool_definition
from worker.userdata import WORKER_PATH, WORKER_SCRIPT_KEY, render_user_data


@dataclass(frozen=True)
class LocalStack:
    """Names and ids of one provisioned local stack."""

    stack: str
    bucket: str
    table: str
    stream_arn: str
    launch_template_id: str
    subnet_ids: tuple[str, ...]
    security_group_id: str
    settings: StackSettings
    user_pool_id: str = ""
    client_id: str = ""

    def api_config(self) -> ApiConfig:
        return api_config(self.bucket, self.table, self.settings)

    def launcher_config(self) -> LauncherConfig:
        return launcher_config(self.table, self.launch_template_id, self.subnet_ids, stack_tag=self.stack,
                               settings=self.settings)

    def user_data(self) -> str:
        return render_user_data(
            bucket=self.bucket, table=self.table, timeout_minutes=self.settings.job_timeout_minutes
        )


def provision(session: Any, settings: StackSettings, *, stack: str = "local", site_origin: str) -> LocalStack:
    """Create bucket, table, worker object, network and launch template; return their names and ids."""
    s3 = session.client("s3")
    ddb = session.client("dynamodb")
    ec2 = session.client("ec2")
    bucket = f"{PROJECT}-{stack}-data"
    table = f"{PROJECT}-{stack}-jobs"

    region = session.region_name
    create_args: dict[str, Any] = {"Bucket": bucket}
    if region and region != "us-east-1":
        create_args["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**create_args)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_cors(
        Bucket=bucket, CORSConfiguration={"CORSRules": cors_rules([site_origin, *settings.extra_origins])}
    )
    s3.put_object(Bucket=bucket, Key=WORKER_SCRIPT_KEY, Body=WORKER_PATH.read_bytes(), ContentType="text/x-python")

    created = ddb.create_table(**table_definition(table))
    stream_arn = created["TableDescription"]["LatestStreamArn"]

    vpc_id = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    subnet_ids = tuple(
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zones[i % len(zones)])["Subnet"]["SubnetId"]
        for i, cidr in enumerate(SUBNET_CIDRS)
    )
    group_id = ec2.create_security_group(
        GroupName=f"{PROJECT}-{stack}-worker", Description="filepipe worker VMs: no ingress", VpcId=vpc_id
    )["GroupId"]

    user_pool_id, client_id = create_user_pool(session.client("cognito-idp"), f"{PROJECT}-{stack}", settings)
    local = LocalStack(
        stack=stack, bucket=bucket, table=table, stream_arn=stream_arn, launch_template_id="",
        subnet_ids=subnet_ids, security_group_id=group_id, settings=settings, user_pool_id=user_pool_id,
        client_id=client_id,
    )
    template_id = ec2.create_launch_template(
        LaunchTemplateName=f"{PROJECT}-{stack}-worker",
        LaunchTemplateData={
            "ImageId": f"resolve:ssm:{settings.ami_parameter}",
            "InstanceType": settings.instance_type,
            "InstanceInitiatedShutdownBehavior": "terminate",
            "SecurityGroupIds": [group_id],
            "MetadataOptions": {
                "HttpTokens": "required", "HttpPutResponseHopLimit": 1, "InstanceMetadataTags": "enabled",
            },
            "UserData": base64.b64encode(local.user_data().encode("utf-8")).decode("ascii"),
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": STACK_TAG, "Value": stack}]}],
        },
    )["LaunchTemplate"]["LaunchTemplateId"]
    return replace(local, launch_template_id=template_id)


def create_user_pool(cognito: Any, name: str, settings: StackSettings) -> tuple[str, str]:
    """The user pool and app client the Auth component creates; returns their ids."""
    definition = user_pool_definition(f"{name}-users", allow_self_sign_up=settings.allow_self_sign_up)
    pool = cognito.create_user_pool(**definition)
    pool_id = pool["UserPool"]["Id"]
    client = cognito.create_user_pool_client(**app_client_definition(
        pool_id, f"{name}-web", access_token_minutes=settings.access_token_minutes,
        id_token_minutes=settings.id_token_minutes, refresh_token_days=settings.refresh_token_days,
    ))
    return pool_id, client["UserPoolClient"]["ClientId"]
