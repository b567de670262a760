"""This stack's worker VMs as EC2 reports them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def describe_instances(ec2: Any, filters: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every instance matching `filters`, over all DescribeInstances pages."""
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            yield from reservation["Instances"]


def tags(instance: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
