"""The events local mode delivers, shaped as AWS sends them to a Lambda target, and the account they name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

LOCAL_ACCOUNT_ID = "123456789012"
"""moto's default account id: the account every local resource and event names."""


def _eventbridge_event(source: str, detail_type: str, region: str, resource: str, detail: dict[str, Any], *,
                       now: datetime | None = None) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": LOCAL_ACCOUNT_ID,
        "time": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [resource],
        "detail": detail,
    }


def instance_state_change(instance_id: str, state: str, region: str) -> dict[str, Any]:
    """An "EC2 Instance State-change Notification" for one instance."""
    return _eventbridge_event("aws.ec2", "EC2 Instance State-change Notification", region,
                              f"arn:aws:ec2:{region}:{LOCAL_ACCOUNT_ID}:instance/{instance_id}",
                              {"instance-id": instance_id, "state": state})


def scheduled_event(rule: str, region: str, now: datetime | None = None) -> dict[str, Any]:
    """The event an EventBridge schedule sends its Lambda target."""
    return _eventbridge_event("aws.events", "Scheduled Event", region,
                              f"arn:aws:events:{region}:{LOCAL_ACCOUNT_ID}:rule/{rule}", {}, now=now)
