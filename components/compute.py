"""Compute: an isolated network, the worker launch template, the launcher fed by the jobs table's stream, the slot
release function fed by EC2's VM-terminated events, and the scheduled sweeper."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components import iam
from components.functions import PythonFunction, python_function
from components.network import SUBNET_CIDRS, VPC_CIDR
from components.settings import NO_RESERVATION, PROJECT, STACK_TAG, WORKER_SCRIPT_KEY, StackSettings, launcher_config
from components.triggers import (
    INSTANCE_TERMINATED_PATTERN,
    LAUNCHER_EVENT_FILTERS,
    STREAM_BATCH_SIZE,
    STREAM_MAX_RETRIES,
)
from handlers import launcher as launcher_module
from handlers import sweeper as sweeper_module
from worker.userdata import render_user_data

ROOT_DEVICE = "/dev/xvda"
"""Root device name of Amazon Linux 2023 AMIs."""
HTTPS = 443
STREAM_MAX_RECORD_AGE_SECONDS = 3600
FAILURE_QUEUE_RETENTION_SECONDS = 14 * 24 * 3600
STACK_TAG_RANDOM_BYTES = 4
"""The stack tag's random suffix: 8 hex digits, so two stacks of one name in an account do not collide."""


@dataclass
class ComputeArgs:
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    table_name: pulumi.Input[str]
    table_arn: pulumi.Input[str]
    stream_arn: pulumi.Input[str]
    stack: str
    """The Pulumi stack's name; the `STACK_TAG` value on every worker VM starts with it (see `Compute.stack_tag`)."""
    settings: StackSettings


class Compute(pulumi.ComponentResource):
    """Worker VMs start from `launch_template` in `subnets`; the launcher starts one per inserted job, the sweeper
    cleans up after VMs and jobs that outlive the timeout and moves the queue on a schedule."""

    stack_tag: pulumi.Output[str]
    """Value of the `STACK_TAG` tag on this deployment's VMs: `<project>-<stack>-<random hex>`."""
    launch_template: aws.ec2.LaunchTemplate
    launcher: aws.lambda_.Function
    launcher_logs: aws.cloudwatch.LogGroup
    release: aws.lambda_.Function
    """Gives a terminated VM's slot back and moves the queue; apart from the launcher (see `_release`)."""
    release_logs: aws.cloudwatch.LogGroup
    sweeper: aws.lambda_.Function
    sweeper_logs: aws.cloudwatch.LogGroup
    failure_queue: aws.sqs.Queue
    subnets: list[aws.ec2.Subnet]

    def __init__(self, name: str, args: ComputeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("filepipe:compute:Compute", name, None, opts)
        self._name = name
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self._partition = aws.get_partition_output(opts=invoke).partition
        self._region = aws.get_region_output(opts=invoke).region
        self._account = aws.get_caller_identity_output(opts=invoke).account_id
        self.stack_tag = self._stack_tag(args.stack)

        self._network(args)
        self._worker(args)
        self._dispatchers(args)
        self.register_outputs({
            "stack_tag": self.stack_tag,
            "launch_template_id": self.launch_template.id,
            "subnet_ids": [subnet.id for subnet in self.subnets],
            "launcher": self.launcher.name,
            "release": self.release.name,
            "sweeper": self.sweeper.name,
        })

    def _stack_tag(self, stack: str) -> pulumi.Output[str]:
        """A tag value unique to this deployment, not just the stack's name.

        Two people's `dev` stacks in one account and region would otherwise tag their VMs alike, and each sweeper
        would see, fail and terminate the other's. The suffix is random once per stack and kept in its state.
        """
        suffix = random.RandomId(
            f"{self._name}-stack-tag", byte_length=STACK_TAG_RANDOM_BYTES, opts=pulumi.ResourceOptions(parent=self)
        )
        return pulumi.Output.concat(PROJECT, "-", stack, "-", suffix.hex)

    def _network(self, args: ComputeArgs) -> None:
        """Private subnets with no route out of the VPC; S3 and DynamoDB through gateway endpoints only."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        zones = self._subnet_zones(args.settings.instance_type)
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc", cidr_block=VPC_CIDR, enable_dns_support=True, enable_dns_hostnames=True, opts=child
        )
        self.route_table = aws.ec2.RouteTable(f"{name}-private", vpc_id=self.vpc.id, opts=child)
        self.subnets = []
        for index, cidr in enumerate(SUBNET_CIDRS):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zones.apply(lambda names, i=index: names[i]),
                map_public_ip_on_launch=False,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}", subnet_id=subnet.id, route_table_id=self.route_table.id, opts=child
            )
            self.subnets.append(subnet)
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=pulumi.Output.format("com.amazonaws.{0}.s3", self._region),
            vpc_endpoint_type="Gateway",
            route_table_ids=[self.route_table.id],
            policy=iam.s3_endpoint_policy(self._partition, self._region, args.bucket_arn),
            opts=child,
        )
        self.dynamodb_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-dynamodb",
            vpc_id=self.vpc.id,
            service_name=pulumi.Output.format("com.amazonaws.{0}.dynamodb", self._region),
            vpc_endpoint_type="Gateway",
            route_table_ids=[self.route_table.id],
            policy=iam.dynamodb_endpoint_policy(args.table_arn),
            opts=child,
        )
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-worker",
            description="filepipe worker VMs: no ingress; HTTPS to S3 and DynamoDB only",
            vpc_id=self.vpc.id,
            ingress=[],
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    description="S3 and DynamoDB through the gateway endpoints",
                    protocol="tcp",
                    from_port=HTTPS,
                    to_port=HTTPS,
                    prefix_list_ids=[self.s3_endpoint.prefix_list_id, self.dynamodb_endpoint.prefix_list_id],
                )
            ],
            opts=child,
        )

    def _subnet_zones(self, instance_type: str) -> pulumi.Output[list[str]]:
        """The zones the subnets go in: availability zones proper that offer `instance_type`, first by name.

        Local and Wavelength Zones (opt-in, other prices and services) are left out by their opt-in status; an
        impaired zone ("state" other than available) is not, so a zone's bad day at the next deploy cannot move
        (replace) a subnet.
        """
        invoke = pulumi.InvokeOutputOptions(parent=self)
        zones = aws.get_availability_zones_output(
            filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
            opts=invoke,
        )
        offerings = aws.ec2.get_instance_type_offerings_output(
            location_type="availability-zone",
            filters=[aws.ec2.GetInstanceTypeOfferingsFilterArgs(name="instance-type", values=[instance_type])],
            opts=invoke,
        )
        return pulumi.Output.all(zones.names, offerings.locations, self._region).apply(
            lambda found: subnet_zones(found[0], found[1], instance_type=instance_type, region=found[2])
        )

    def _worker(self, args: ComputeArgs) -> None:
        """Instance role and profile, and the launch template every worker VM starts from."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        self.instance_role = aws.iam.Role(
            f"{name}-worker-role", assume_role_policy=iam.assume_role_policy("ec2.amazonaws.com"), opts=child
        )
        aws.iam.RolePolicy(
            f"{name}-worker-policy",
            role=self.instance_role.id,
            policy=iam.worker_instance_policy(args.bucket_arn, WORKER_SCRIPT_KEY, args.table_arn),
            opts=child,
        )
        self.instance_profile = aws.iam.InstanceProfile(f"{name}-worker", role=self.instance_role.name, opts=child)
        tags = {STACK_TAG: self.stack_tag}
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-worker",
            image_id=f"resolve:ssm:{args.settings.ami_parameter}",
            instance_type=args.settings.instance_type,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=self.instance_profile.arn),
            vpc_security_group_ids=[self.security_group.id],
            instance_initiated_shutdown_behavior="terminate",
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
                instance_metadata_tags="enabled",
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=ROOT_DEVICE,
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_type="gp3", encrypted="true", delete_on_termination="true"
                    ),
                )
            ],
            user_data=user_data_base64(args.bucket_name, args.table_name, args.settings.job_timeout_minutes),
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=tags)
                for kind in ("instance", "volume")
            ],
            # The launcher starts the template's default version: keep it the newest.
            update_default_version=True,
            opts=child,
        )

    def _dispatchers(self, args: ComputeArgs) -> None:
        """The three functions that start VMs: the launcher (stream-driven), the slot release (VM terminated) and the
        sweeper (scheduled)."""
        environment = pulumi.Output.all(
            args.table_name, self.launch_template.id, self.stack_tag, *[subnet.id for subnet in self.subnets]
        ).apply(lambda ids: launcher_config(
            ids[0], ids[1], ids[3:], stack_tag=ids[2], settings=args.settings
        ).to_env())
        dispatch = iam.dispatch_statements(
            partition=self._partition,
            region=self._region,
            account=self._account,
            table_arn=args.table_arn,
            launch_template_arn=self.launch_template.arn,
            subnet_arns=[subnet.arn for subnet in self.subnets],
            security_group_arn=self.security_group.arn,
            instance_role_arn=self.instance_role.arn,
            ami_parameter=args.settings.ami_parameter,
        )
        terminate = iam.terminate_stack_instances_statement(
            self._partition, self._region, self._account, STACK_TAG, self.stack_tag
        )
        self._launcher(args, environment, dispatch, terminate)
        self._release(args, environment, dispatch)
        self._sweeper(args, environment, dispatch, terminate)

    def _launcher(
        self, args: ComputeArgs, environment: pulumi.Output[dict[str, str]], dispatch: list[iam.Statement],
        terminate: iam.Statement,
    ) -> None:
        """The launcher Lambda and the stream mapping that feeds it new jobs and finished ones (a cancelled job's
        VM is terminated by it)."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        self.failure_queue = aws.sqs.Queue(
            f"{name}-launch-failures",
            message_retention_seconds=FAILURE_QUEUE_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            opts=child,
        )
        launcher = self._dispatcher(
            "launcher",
            args,
            environment,
            lambda logs: iam.launcher_function_policy(
                dispatch=dispatch,
                terminate=terminate,
                stream_arn=args.stream_arn,
                failure_queue_arn=self.failure_queue.arn,
                log_group_arn=logs,
                bucket_arn=args.bucket_arn,
            ),
            reserved_concurrency=args.settings.launcher_reserved_concurrency,
            timeout_seconds=launcher_module.TIMEOUT_SECONDS,
        )
        self.launcher = launcher.function
        self.launcher_logs = launcher.log_group
        self.stream_mapping = aws.lambda_.EventSourceMapping(
            f"{name}-launcher-stream",
            event_source_arn=args.stream_arn,
            function_name=self.launcher.arn,
            starting_position="LATEST",
            batch_size=STREAM_BATCH_SIZE,
            filter_criteria=aws.lambda_.EventSourceMappingFilterCriteriaArgs(
                filters=[
                    aws.lambda_.EventSourceMappingFilterCriteriaFilterArgs(pattern=json.dumps(pattern))
                    for pattern in LAUNCHER_EVENT_FILTERS
                ]
            ),
            function_response_types=["ReportBatchItemFailures"],
            bisect_batch_on_function_error=True,
            maximum_retry_attempts=STREAM_MAX_RETRIES,
            maximum_record_age_in_seconds=STREAM_MAX_RECORD_AGE_SECONDS,
            destination_config=aws.lambda_.EventSourceMappingDestinationConfigArgs(
                on_failure=aws.lambda_.EventSourceMappingDestinationConfigOnFailureArgs(
                    destination_arn=self.failure_queue.arn
                )
            ),
            # Lambda checks the role can read the stream when the mapping is created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[launcher.role_policy]),
        )

    def _release(
        self, args: ComputeArgs, environment: pulumi.Output[dict[str, str]], dispatch: list[iam.Statement]
    ) -> None:
        """The slot release Lambda and the EventBridge rule that brings it every VM terminated in the account.

        Its own function, with no reserved concurrency, so that a busy account's instance churn (events for VMs that
        are not ours, which the rule cannot tell apart: they carry no tags) never takes the launcher's concurrency
        while new jobs wait on the stream.
        """
        release = self._dispatcher(
            "release",
            args,
            environment,
            lambda logs: iam.release_function_policy(dispatch=dispatch, table_arn=args.table_arn, log_group_arn=logs),
            reserved_concurrency=NO_RESERVATION,
            timeout_seconds=launcher_module.TIMEOUT_SECONDS,
        )
        self.release = release.function
        self.release_logs = release.log_group
        self._invoke_on_events(
            f"{self._name}-vm-terminated",
            self.release,
            description="filepipe: a terminated VM frees its slot for the next queued job",
            event_pattern=json.dumps(INSTANCE_TERMINATED_PATTERN),
        )

    def _sweeper(
        self, args: ComputeArgs, environment: pulumi.Output[dict[str, str]], dispatch: list[iam.Statement],
        terminate: iam.Statement,
    ) -> None:
        """The sweeper Lambda, invoked by an EventBridge rule every `sweep_interval_minutes`."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        interval = args.settings.sweep_interval_minutes
        sweeper = self._dispatcher(
            "sweeper",
            args,
            environment,
            lambda logs: iam.sweeper_function_policy(
                dispatch=dispatch,
                terminate=terminate,
                table_arn=args.table_arn,
                log_group_arn=logs,
            ),
            reserved_concurrency=args.settings.launcher_reserved_concurrency,
            timeout_seconds=sweeper_module.TIMEOUT_SECONDS,
        )
        self.sweeper = sweeper.function
        self.sweeper_logs = sweeper.log_group
        # A failed or throttled sweep is not worth retrying: the next one, `interval` minutes later, does the same.
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-sweeper-invoke",
            function_name=self.sweeper.name,
            maximum_retry_attempts=0,
            maximum_event_age_in_seconds=max(60, interval * 60),
            opts=child,
        )
        self.sweep_rule = self._invoke_on_events(
            f"{name}-sweep",
            self.sweeper,
            description="filepipe: run the sweeper (overdue VMs, stuck jobs, leaked slots, queued jobs)",
            schedule_expression=rate_expression(interval),
        )

    def _dispatcher(
        self,
        module: str,
        args: ComputeArgs,
        environment: pulumi.Output[dict[str, str]],
        policy: Callable[[pulumi.Output[str]], pulumi.Output[str]],
        *,
        reserved_concurrency: int,
        timeout_seconds: int,
    ) -> PythonFunction:
        """`handlers.<module>`, one of the three functions that start VMs, with the stack's launcher config."""
        return python_function(
            f"{self._name}-{module}",
            self,
            module=module,
            environment=environment,
            policy=policy,
            log_retention_days=args.settings.log_retention_days,
            reserved_concurrency=reserved_concurrency,
            timeout_seconds=timeout_seconds,
        )

    def _invoke_on_events(
        self, name: str, function: aws.lambda_.Function, **rule: pulumi.Input[str]
    ) -> aws.cloudwatch.EventRule:
        """An EventBridge rule (schedule or pattern) that invokes `function`, which only that rule may invoke."""
        child = pulumi.ResourceOptions(parent=self)
        event_rule = aws.cloudwatch.EventRule(name, opts=child, **rule)
        permission = aws.lambda_.Permission(
            f"{name}-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="events.amazonaws.com",
            source_arn=event_rule.arn,
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-target",
            rule=event_rule.name,
            arn=function.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[permission]),
        )
        return event_rule


def rate_expression(minutes: int) -> str:
    """EventBridge's schedule syntax, which wants the singular for one: `rate(1 minute)`, `rate(5 minutes)`."""
    return f"rate({minutes} minute{'' if minutes == 1 else 's'})"


def subnet_zones(
    zones: Sequence[str], offered_in: Sequence[str], *, instance_type: str, region: str
) -> list[str]:
    """The first `len(SUBNET_CIDRS)` of `zones` (by name) where `instance_type` is offered; an error if too few.

    Sorted, so the choice depends on what the region offers, not on the order AWS lists it in.
    """
    usable = sorted(set(zones) & set(offered_in))
    wanted = len(SUBNET_CIDRS)
    if len(usable) < wanted:
        raise ValueError(
            f"instance type {instance_type} is offered in {len(usable)} availability zone(s) of {region} "
            f"({', '.join(usable) or 'none'}); filepipe needs {wanted}: choose another instanceType or region"
        )
    return usable[:wanted]


def user_data_base64(
    bucket: pulumi.Input[str], table: pulumi.Input[str], timeout_minutes: int
) -> pulumi.Output[str]:
    """Base64 of the worker package's rendered user-data (a launch template wants it encoded)."""
    return pulumi.Output.all(bucket, table).apply(
        lambda names: base64.b64encode(
            render_user_data(bucket=names[0], table=names[1], timeout_minutes=timeout_minutes).encode("utf-8")
        ).decode("ascii")
    )
