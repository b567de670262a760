"""What starts the launcher: the jobs table's stream (filtered, batched, retried) and EC2's VM-terminated events.

Read by the Compute component, which configures them on AWS, and by local mode, which delivers the same events; this
module must not import Pulumi.
"""

from __future__ import annotations

from typing import Any

INSERT_FILTER: dict[str, Any] = {"eventName": ["INSERT"]}
"""Stream records of new jobs."""
LAUNCHER_EVENT_FILTERS: tuple[dict[str, Any], ...] = (INSERT_FILTER,)
"""Stream records the launcher receives: new jobs only (Lambda drops every other record before invoking; local mode
applies the same patterns). A job's end needs no record: its VM slot is freed by the VM's termination event."""
INSTANCE_TERMINATED_PATTERN: dict[str, Any] = {
    "source": ["aws.ec2"],
    "detail-type": ["EC2 Instance State-change Notification"],
    "detail": {"state": ["terminated"]},
}
"""EventBridge pattern of the events that bring a terminated VM's id to the launcher, which frees its slot."""
STREAM_BATCH_SIZE = 10
"""Most stream records per launcher invocation."""
STREAM_MAX_RETRIES = 5
"""Retries of a failed stream record before it goes to the on-failure queue (Lambda's default is unbounded)."""
