"""What starts the launcher (the jobs table's stream: filtered, batched, retried) and the slot release function
(EC2's VM-terminated events).

Read by the Compute component, which configures them on AWS, and by local mode, which delivers the same events; this
module must not import Pulumi.
"""

from __future__ import annotations

from typing import Any

from handlers.jobmodel import FINAL_STATES
from handlers.quota import HOLDS_QUOTA, HOLDS_QUOTA_VALUE

NEW_JOB_FILTER: dict[str, Any] = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"status": {"S": ["PENDING"]}}}}
"""Stream records of new jobs (every job is created PENDING; VM slots and per-user counters have no status)."""
FINISHED_HOLDING_QUOTA_FILTER: dict[str, Any] = {
    "eventName": ["MODIFY"],
    "dynamodb": {"NewImage": {
        "status": {"S": sorted(state.value for state in FINAL_STATES)},
        HOLDS_QUOTA: {"S": [HOLDS_QUOTA_VALUE]},
    }},
}
"""Stream records of jobs that just finished and still count against their owner's quota."""
LAUNCHER_EVENT_FILTERS: tuple[dict[str, Any], ...] = (NEW_JOB_FILTER, FINISHED_HOLDING_QUOTA_FILTER)
"""Stream records the launcher receives (Lambda drops every other record before invoking; local mode applies the
same patterns). A job's VM slot needs no record: it is freed by the VM's termination event."""
INSTANCE_TERMINATED_PATTERN: dict[str, Any] = {
    "source": ["aws.ec2"],
    "detail-type": ["EC2 Instance State-change Notification"],
    "detail": {"state": ["terminated"]},
}
"""EventBridge pattern of the events that bring a terminated VM's id to the slot release function
(`handlers.release`), which frees its slot."""
STREAM_BATCH_SIZE = 10
"""Most stream records per launcher invocation."""
STREAM_MAX_RETRIES = 5
"""Retries of a failed stream record before it goes to the on-failure queue (Lambda's default is unbounded)."""
