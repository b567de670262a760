"""Network: the worker VMs' isolated network. Private subnets in two availability zones with no route out of the
VPC, S3 and DynamoDB reached through gateway endpoints only, and a security group with no ingress."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam
from stackspec.network import SUBNET_CIDRS, VPC_CIDR

HTTPS = 443


@dataclass
class NetworkArgs:
    bucket_arn: pulumi.Input[str]
    """The data bucket, the only one besides the AL2023 package repositories the S3 endpoint lets VMs reach."""
    table_arn: pulumi.Input[str]
    """The jobs table, the only one the DynamoDB endpoint lets VMs reach."""
    instance_type: str
    """The worker VMs' type: the subnets go in zones that offer it."""


class Network(pulumi.ComponentResource):
    """Where worker VMs run: `subnets` (one per zone) and `security_group`, with no way out but to S3 and DynamoDB.

    Compute makes it under its own name, so the children keep the names (and, by their alias, the URNs) they had as
    Compute's own children: turning the network into a component replaces nothing in a deployed stack.
    """

    vpc: aws.ec2.Vpc
    route_table: aws.ec2.RouteTable
    subnets: list[aws.ec2.Subnet]
    s3_endpoint: aws.ec2.VpcEndpoint
    dynamodb_endpoint: aws.ec2.VpcEndpoint
    security_group: aws.ec2.SecurityGroup

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("filepipe:network:Network", name, None, opts)
        former_parent = opts.parent if opts is not None else None
        child = pulumi.ResourceOptions(
            parent=self, aliases=[pulumi.Alias(parent=former_parent)] if former_parent is not None else None
        )
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self._region = aws.get_region_output(opts=invoke).region
        partition = aws.get_partition_output(opts=invoke).partition
        zones = self._subnet_zones(args.instance_type)
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
        self.s3_endpoint = self._gateway_endpoint(
            name, "s3", iam.s3_endpoint_policy(partition, self._region, args.bucket_arn), child)
        self.dynamodb_endpoint = self._gateway_endpoint(
            name, "dynamodb", iam.dynamodb_endpoint_policy(args.table_arn), child)
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
        self.register_outputs({
            "vpc_id": self.vpc.id,
            "subnet_ids": [subnet.id for subnet in self.subnets],
            "security_group_id": self.security_group.id,
        })

    def _gateway_endpoint(
        self, name: str, service: str, policy: pulumi.Input[str], child: pulumi.ResourceOptions
    ) -> aws.ec2.VpcEndpoint:
        """A gateway endpoint of `service` (s3, dynamodb) on the private route table, limited by `policy`."""
        return aws.ec2.VpcEndpoint(
            f"{name}-{service}",
            vpc_id=self.vpc.id,
            service_name=pulumi.Output.format("com.amazonaws.{0}.{1}", self._region, service),
            vpc_endpoint_type="Gateway",
            route_table_ids=[self.route_table.id],
            policy=policy,
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
