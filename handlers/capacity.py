"""VM slots: at most `max_concurrent_vms` worker VMs alive at once, held as lease items in the jobs table.

Slot `n` is the item `id = "slot#<n>"`. A job may start its VM only while it holds a slot, and a slot is taken with
a conditional write (`attribute_not_exists(holder)`), so two launchers racing for the last slot cannot both win: the
cap holds with no check-then-act window. The slot records its VM's instance id and is given back when that VM is
terminated (EC2's state-change event reaches the launcher), not when the job ends: a VM powering off still counts.
A launch that fails gives its slot back at once, and the sweeper frees slots whose holder is gone or over with no VM.

Slot items carry no `status` or `list_key`, so they never appear in the job indexes, and their ids are not nanoids,
so the API and the launcher never take them for jobs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from handlers import jobmodel

SLOT_PREFIX = "slot#"


def slot_id(slot: int) -> str:
    return f"{SLOT_PREFIX}{slot}"


def acquire(ddb: Any, table: str, job_id: str, max_slots: int) -> int | None:
    """Take a free slot for `job_id`; None when all `max_slots` are held."""
    order = list(range(max_slots))
    random.shuffle(order)  # spread concurrent launchers over the slots instead of all fighting for slot 0
    for slot in order:
        taken = jobmodel.update_if(
            ddb,
            TableName=table,
            Key={"id": {"S": slot_id(slot)}},
            UpdateExpression="SET holder = :job, held_at = :now",
            ConditionExpression="attribute_not_exists(holder)",
            ExpressionAttributeValues={":job": {"S": job_id}, ":now": {"S": jobmodel.utc_now()}},
        )
        if taken is not None:
            return slot
    return None


def release(ddb: Any, table: str, job_id: str, slot: int) -> bool:
    """Give slot `slot` back if `job_id` still holds it; False when it did not (already released, or reused)."""
    return jobmodel.update_if(
        ddb,
        TableName=table,
        Key={"id": {"S": slot_id(slot)}},
        UpdateExpression="REMOVE holder, held_at, instance_id",
        ConditionExpression="holder = :job",
        ExpressionAttributeValues={":job": {"S": job_id}},
    ) is not None


def attach_instance(ddb: Any, table: str, job_id: str, slot: int, instance_id: str) -> bool:
    """Record the VM that uses the slot, so its termination can give the slot back."""
    return jobmodel.update_if(
        ddb,
        TableName=table,
        Key={"id": {"S": slot_id(slot)}},
        UpdateExpression="SET instance_id = :instance",
        ConditionExpression="holder = :job",
        ExpressionAttributeValues={":job": {"S": job_id}, ":instance": {"S": instance_id}},
    ) is not None


@dataclass(frozen=True)
class Lease:
    slot: int
    job_id: str
    instance_id: str | None


def leases(ddb: Any, table: str, max_slots: int) -> list[Lease]:
    """Every held slot, read strongly consistent."""
    keys = [{"id": {"S": slot_id(slot)}} for slot in range(max_slots)]
    held: list[Lease] = []
    for start in range(0, len(keys), 100):
        request = {table: {"Keys": keys[start:start + 100], "ConsistentRead": True}}
        while request:
            page = ddb.batch_get_item(RequestItems=request)
            for item in page["Responses"].get(table, []):
                if "holder" in item:
                    held.append(Lease(slot=int(item["id"]["S"].removeprefix(SLOT_PREFIX)), job_id=item["holder"]["S"],
                                      instance_id=item.get("instance_id", {}).get("S")))
            request = page.get("UnprocessedKeys") or {}
    return sorted(held, key=lambda lease: lease.slot)


def release_instance(ddb: Any, table: str, instance_id: str, max_slots: int) -> int | None:
    """Give back the slot of a terminated VM; return the slot, or None when no slot names that VM."""
    for lease in leases(ddb, table, max_slots):
        if lease.instance_id == instance_id and release(ddb, table, lease.job_id, lease.slot):
            return lease.slot
    return None


class SlotLease:
    """A slot taken for one job's launch, given back on leaving the `with` block unless `commit` recorded its VM.

        with SlotLease(ddb, table, job_id, max_slots) as lease:
            if lease.slot is None: ...        # every slot is held
            ...
            lease.commit(instance_id)         # the slot now follows the VM, freed when it is terminated
    """

    def __init__(self, ddb: Any, table: str, job_id: str, max_slots: int) -> None:
        self.ddb, self.table, self.job_id, self.max_slots = ddb, table, job_id, max_slots
        self.slot: int | None = None
        self.committed = False

    def __enter__(self) -> SlotLease:
        self.slot = acquire(self.ddb, self.table, self.job_id, self.max_slots)
        return self

    def commit(self, instance_id: str) -> None:
        if self.slot is None:
            raise RuntimeError("no slot to commit")
        self.committed = True  # the VM exists: its slot stays held even if recording its id fails
        attach_instance(self.ddb, self.table, self.job_id, self.slot, instance_id)

    def __exit__(self, *exc: object) -> None:
        if self.slot is not None and not self.committed:
            release(self.ddb, self.table, self.job_id, self.slot)
