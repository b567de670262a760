"""The worker VMs' network layout, shared by the Compute component and local provisioning (no Pulumi import)."""

from __future__ import annotations

VPC_CIDR = "10.42.0.0/16"
SUBNET_CIDRS = ("10.42.0.0/20", "10.42.16.0/20")
"""One private subnet in each of two availability zones, 4091 addresses each: a subnet's free addresses cap the VMs
that can run in it (and moto never frees a terminated instance's address, so a long local run needs many)."""
