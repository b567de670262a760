"""EC2 "terminated" events -> the VM's slot is given back and the queue moves on.

A function of its own, apart from the launcher: EventBridge delivers the state changes of every instance in the
account and region (an event carries no tags, so the rule cannot pick this stack's VMs), and a busy account's VM
churn must not take the launcher's concurrency while new jobs wait on the stream. Most events name a VM of no slot:
one strongly consistent read of the slot items and done. Only a freed slot dispatches (`dispatch.dispatch_logged`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from handlers import capacity, dispatch
from handlers.services import LauncherServices, deadline_of, launcher_services

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = dispatch.TIMEOUT_SECONDS


def handle(event: Mapping[str, Any], services: LauncherServices, deadline: float | None = None) -> dict[str, Any]:
    """EC2 Instance State-change Notification: a terminated VM of this stack gives its slot back, and queued jobs
    start in it."""
    detail = event.get("detail") or {}
    instance_id, state = detail.get("instance-id"), detail.get("state")
    if state != "terminated" or not isinstance(instance_id, str):
        return {"released": None}
    config = services.config
    slot = capacity.release_instance(services.ddb, config.table, instance_id, config.max_concurrent_vms)
    if slot is not None:
        log.info("VM terminated: slot free", extra={"instance_id": instance_id, "slot": slot})
        dispatch.dispatch_logged(services, deadline=deadline)
    return {"released": slot}


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    return handle(event, launcher_services(), deadline_of(context))
