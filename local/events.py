"""The EventBridge events local mode delivers, shaped as AWS sends them to a Lambda target."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

ACCOUNT = "123456789012"
"""moto's default account id."""


def instance_state_change(instance_id: str, state: str, region: str) -> dict[str, Any]:
    """An "EC2 Instance State-change Notification" for one instance."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{ACCOUNT}:instance/{instance_id}"],
        "detail": {"instance-id": instance_id, "state": state},
    }
