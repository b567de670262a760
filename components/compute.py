"""Compute: an isolated network, the worker launch template, the launcher fed by the jobs table's stream, the slot
release function fed by EC2's VM-terminated events, and the scheduled sweeper."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components import iam
from components.functions import PythonFunction, python_function
from components.network import Network, NetworkArgs
from components.roles import instance_profile, service_role
from components.storage import Storage
from handlers import launcher as launcher_module
from handlers import release as release_module
from handlers import sweeper as sweeper_module
from stackspec.settings import NO_RESERVATION, PROJECT, STACK_TAG, StackSettings, launcher_config
from stackspec.triggers import (
    INSTANCE_TERMINATED_PATTERN,
    LAUNCHER_EVENT_FILTERS,
    STREAM_BATCH_SIZE,
    STREAM_MAX_RETRIES,
)
from worker.userdata import WORKER_SCRIPT_KEY, render_user_data

ROOT_DEVICE = "/dev/xvda"
"""Root device name of Amazon Linux 2023 AMIs."""
STREAM_MAX_RECORD_AGE_SECONDS = 3600
FAILURE_QUEUE_RETENTION_SECONDS = 14 * 24 * 3600
STACK_TAG_RANDOM_BYTES = 4
"""The stack tag's random suffix: 8 hex digits, so two stacks of one name in an account do not collide."""


@dataclass
class ComputeArgs:
    storage: Storage
    """The data bucket the VMs read and write, and the jobs table whose stream feeds the launcher."""
    stack: str
    """The Pulumi stack's name; the `STACK_TAG` value on every worker VM starts with it (see `Compute.stack_tag`)."""
    settings: StackSettings


class Compute(pulumi.ComponentResource):
    """Worker VMs start from `launch_template` in the network's subnets; the launcher starts one per inserted job,
    the sweeper cleans up after VMs and jobs that outlive the timeout and moves the queue on a schedule."""

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
    network: Network

    def __init__(self, name: str, args: ComputeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("filepipe:compute:Compute", name, None, opts)
        self._name = name
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self._partition = aws.get_partition_output(opts=invoke).partition
        self._region = aws.get_region_output(opts=invoke).region
        self._account = aws.get_caller_identity_output(opts=invoke).account_id
        self.stack_tag = self._stack_tag(args.stack)

        self.network = Network(name, NetworkArgs(
            bucket_arn=args.storage.bucket.arn, table_arn=args.storage.table.arn,
            instance_type=args.settings.instance_type,
        ), opts=pulumi.ResourceOptions(parent=self))
        self._worker(args)
        self._dispatchers(args)
        self.register_outputs({
            "stack_tag": self.stack_tag,
            "launch_template_id": self.launch_template.id,
            "subnet_ids": [subnet.id for subnet in self.network.subnets],
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

    def _worker(self, args: ComputeArgs) -> None:
        """Instance role and profile, and the launch template every worker VM starts from."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        self.instance_role = service_role(f"{name}-worker-role", "ec2.amazonaws.com", args.settings, child)
        aws.iam.RolePolicy(
            f"{name}-worker-policy",
            role=self.instance_role.id,
            policy=iam.worker_instance_policy(args.storage.bucket.arn, WORKER_SCRIPT_KEY, args.storage.table.arn),
            opts=child,
        )
        self.instance_profile = instance_profile(f"{name}-worker", self.instance_role, args.settings, child)
        tags = {STACK_TAG: self.stack_tag}
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-worker",
            image_id=f"resolve:ssm:{args.settings.ami_parameter}",
            instance_type=args.settings.instance_type,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=self.instance_profile.arn),
            vpc_security_group_ids=[self.network.security_group.id],
            instance_initiated_shutdown_behavior="terminate",
            credit_specification=credit_specification(args.settings.instance_type),
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
                        volume_type="gp3", encrypted="true", delete_on_termination="true",
                        kms_key_id=args.settings.ebs_kms_key_arn or None,
                    ),
                )
            ],
            user_data=user_data_base64(
                args.storage.bucket.bucket, args.storage.table.name, args.settings.job_timeout_minutes
            ),
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
            args.storage.table.name, self.launch_template.id, self.stack_tag,
            *[subnet.id for subnet in self.network.subnets],
        ).apply(lambda ids: launcher_config(
            ids[0], ids[1], ids[3:], stack_tag=ids[2], settings=args.settings
        ).to_env())
        dispatch = iam.dispatch_statements(
            partition=self._partition,
            region=self._region,
            account=self._account,
            table_arn=args.storage.table.arn,
            launch_template_arn=self.launch_template.arn,
            subnet_arns=[subnet.arn for subnet in self.network.subnets],
            security_group_arn=self.network.security_group.arn,
            instance_role_arn=self.instance_role.arn,
            ami_parameter=args.settings.ami_parameter,
            ebs_kms_key_arn=args.settings.ebs_kms_key_arn or None,
        )
        terminate = iam.terminate_stack_instances_statement(
            self._partition, self._region, self._account, STACK_TAG, self.stack_tag
        )
        self._launcher(args, environment, dispatch, terminate)
        self._release(args, environment, dispatch, terminate)
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
                stream_arn=args.storage.table.stream_arn,
                failure_queue_arn=self.failure_queue.arn,
                log_group_arn=logs,
                bucket_arn=args.storage.bucket.arn,
            ),
            reserved_concurrency=args.settings.launcher_reserved_concurrency,
            timeout_seconds=launcher_module.TIMEOUT_SECONDS,
        )
        self.launcher = launcher.function
        self.launcher_logs = launcher.log_group
        self.stream_mapping = aws.lambda_.EventSourceMapping(
            f"{name}-launcher-stream",
            event_source_arn=args.storage.table.stream_arn,
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
        self, args: ComputeArgs, environment: pulumi.Output[dict[str, str]], dispatch: list[iam.Statement],
        terminate: iam.Statement,
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
            lambda logs: iam.release_function_policy(
                dispatch=dispatch, terminate=terminate, table_arn=args.storage.table.arn, log_group_arn=logs
            ),
            reserved_concurrency=NO_RESERVATION,
            timeout_seconds=release_module.TIMEOUT_SECONDS,
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
                table_arn=args.storage.table.arn,
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
            settings=args.settings,
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


BURSTABLE_FAMILIES = frozenset({"t2", "t3", "t3a", "t4g"})
"""The burstable instance families (EC2's InstanceFamilyCreditSpecification lists exactly these); t3, t3a and t4g
launch in `unlimited` credit mode unless told otherwise (RunInstances' CreditSpecification reference)."""


def credit_specification(instance_type: str) -> aws.ec2.LaunchTemplateCreditSpecificationArgs | None:
    """`standard` CPU credits for a burstable type: a busy VM is slowed to its baseline when its credits run out,
    instead of being billed for surplus credits as in `unlimited` mode; None for other types, which earn no
    credits."""
    if instance_type.split(".", 1)[0] not in BURSTABLE_FAMILIES:
        return None
    return aws.ec2.LaunchTemplateCreditSpecificationArgs(cpu_credits="standard")


def rate_expression(minutes: int) -> str:
    """EventBridge's schedule syntax, which wants the singular for one: `rate(1 minute)`, `rate(5 minutes)`."""
    return f"rate({minutes} minute{'' if minutes == 1 else 's'})"


def user_data_base64(
    bucket: pulumi.Input[str], table: pulumi.Input[str], timeout_minutes: int
) -> pulumi.Output[str]:
    """Base64 of the worker package's rendered user-data (a launch template wants it encoded)."""
    return pulumi.Output.all(bucket, table).apply(
        lambda names: base64.b64encode(
            render_user_data(bucket=names[0], table=names[1], timeout_minutes=timeout_minutes).encode("utf-8")
        ).decode("ascii")
    )
