"""The job record: states, allowed transitions, key layout and the conditional write that moves a job.

The worker ships as one file and keeps its own copy of the parts it needs;
`tests/runtime/test_worker_contract.py` checks that the copy agrees with this module.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError


class Status(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    LAUNCHING = "LAUNCHING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Actor(StrEnum):
    """The code that moves jobs: `handlers/launcher.py`, `handlers/sweeper.py`, `worker/worker.py`, and the API on
    the job owner's request (`handlers/manage.py`)."""

    LAUNCHER = "launcher"
    SWEEPER = "sweeper"
    WORKER = "worker"
    USER = "user"


@dataclass(frozen=True)
class Transition:
    source: Status
    target: Status
    by: frozenset[Actor]
    why: str


TRANSITIONS: tuple[Transition, ...] = (
    Transition(Status.PENDING, Status.QUEUED, frozenset({Actor.LAUNCHER, Actor.SWEEPER}),
               "the launcher queues every new job; the sweeper one whose stream record was lost"),
    Transition(Status.QUEUED, Status.LAUNCHING, frozenset({Actor.LAUNCHER}),
               "claimed before RunInstances, oldest first, while a VM slot is free"),
    Transition(Status.LAUNCHING, Status.QUEUED, frozenset({Actor.LAUNCHER}),
               "no free slot, or RunInstances kept failing in a way that may heal"),
    Transition(Status.LAUNCHING, Status.RUNNING, frozenset({Actor.WORKER}), "the worker started on its VM"),
    Transition(Status.LAUNCHING, Status.FAILED, frozenset({Actor.LAUNCHER, Actor.SWEEPER}),
               "RunInstances refused for good, or the VM never appeared"),
    Transition(Status.RUNNING, Status.SUCCEEDED, frozenset({Actor.WORKER}), "the output is written"),
    Transition(Status.RUNNING, Status.FAILED, frozenset({Actor.WORKER, Actor.SWEEPER}),
               "the job failed with a reason, or its VM is gone or overdue"),
    *(Transition(state, Status.CANCELLED, frozenset({Actor.USER}),
                 "its owner cancelled it; the launcher terminates its VM, if it has one")
      for state in (Status.PENDING, Status.QUEUED, Status.LAUNCHING, Status.RUNNING)),
)
"""Every allowed move of a job, and the code allowed to make it. Each is a conditional write from `source`."""

PHASE_STARTED: Mapping[Status, str] = {
    Status.PENDING: "created_at",
    Status.QUEUED: "queued_at",
    Status.LAUNCHING: "launching_at",
    Status.RUNNING: "started_at",
    Status.SUCCEEDED: "finished_at",
    Status.FAILED: "finished_at",
    Status.CANCELLED: "finished_at",
}
"""The attribute recording when a job last entered each state, written by the move itself (`created_at` by
`new_job`), so wait and run times never depend on a caller remembering to stamp them."""

FINAL_STATES = frozenset(Status) - {t.source for t in TRANSITIONS}
CANCELLABLE_STATES: tuple[Status, ...] = tuple(
    state for state in Status
    if any(t.source == state and t.target == Status.CANCELLED and Actor.USER in t.by for t in TRANSITIONS))
"""The states its owner may cancel a job from (`POST /api/jobs/<id>/cancel`), in the model's order."""
RETRYABLE_STATES: tuple[Status, ...] = (Status.FAILED, Status.CANCELLED)
"""The states from which its owner may retry a job (`POST /api/jobs/<id>/retry`): it ended without an output."""
ALLOWED_TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    state: frozenset(t.target for t in TRANSITIONS if t.source == state) for state in Status
}


@dataclass(frozen=True)
class Deadline:
    """How long a job may stay in a non-final state before the sweeper acts on it, and what it does."""

    after: timedelta
    plus_job_timeout: bool
    action: str

    def limit(self, job_timeout_minutes: int) -> timedelta:
        return self.after + (timedelta(minutes=job_timeout_minutes) if self.plus_job_timeout else timedelta(0))


DEADLINES: Mapping[Status, Deadline] = {
    Status.PENDING: Deadline(timedelta(minutes=2), False,
                             "queued: the launcher queues a new job within seconds, so its stream record was lost"),
    Status.QUEUED: Deadline(timedelta(minutes=30), False,
                            "started oldest first at every sweep while a VM slot is free (a wait for a slot has no "
                            "time limit: a slot frees when a VM ends, and VMs are bounded by the job timeout); a job "
                            "whose launches AWS has refused for a quota or capacity this long since the first refusal "
                            "fails, naming what to raise"),
    Status.LAUNCHING: Deadline(timedelta(minutes=10), False,
                               "failed when its VM never appeared (AWS usually needs well under a minute)"),
    Status.RUNNING: Deadline(timedelta(minutes=2), True,
                             "VM terminated and job failed: past the job timeout plus time for the in-VM watchdog "
                             "to power off"),
}
"""The sweeper's deadline for every non-final state (measured from `updated_at`; RUNNING from the VM's launch)."""
VANISHED_GRACE = timedelta(seconds=60)
"""A RUNNING job's VM must be gone this long before the job is failed (DescribeInstances is eventually consistent)."""


INPUT_PREFIX = "inputs/"
OUTPUT_PREFIX = "outputs/"
JOB_ID_TAG = "JobId"
"""EC2 tag carrying the job id; read by the VM through instance metadata tags (no `/` or spaces allowed)."""

STACK_TAG = "FilepipeStack"
"""Tag on every worker VM naming its stack, so the sweeper and IAM conditions recognise this stack's instances."""

UNCLAIMED_UPLOAD_TAG = ("filepipe-upload", "unclaimed")
"""The object tag every upload carries from its POST (the presigned policy sets it) until its job is created (the
launcher removes it when it queues the job); the data bucket's lifecycle removes uploads still tagged after
`UNCLAIMED_UPLOAD_DAYS`: files that never became a job."""
UNCLAIMED_UPLOAD_DAYS = 1


def unclaimed_upload_tagging() -> str:
    """The POST's `tagging` field: S3's Tagging XML with `UNCLAIMED_UPLOAD_TAG`."""
    key, value = UNCLAIMED_UPLOAD_TAG
    return f"<Tagging><TagSet><Tag><Key>{key}</Key><Value>{value}</Value></Tag></TagSet></Tagging>"


VM_ALIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
"""EC2 instance states in which a VM still exists, and so still counts against the VM cap."""

EXPIRES_AT = "expires_at"
"""A finished job's expiry (epoch seconds, a number) that the jobs table's TTL reads when the stack keeps records for
a limited time."""
RETRIED_AS = "retried_as"
"""On a FAILED or CANCELLED job that its owner retried: the id of the new job made from it (`handlers/manage.py`),
set in the same transaction that creates the new job, so a repeated retry finds it instead of making another."""
OWNER_INDEX = "by-owner"
"""Global secondary index listing each user's jobs newest first: hash key `owner` (Cognito `sub`), range key
`created_at`."""
STATUS_INDEX = "by-status"
"""Global secondary index of jobs by state: hash key `status`, range key `created_at` (oldest first)."""

ID_ALPHABET = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ID_LENGTH = 21


def new_id() -> str:
    """A nanoid: 21 characters from the URL-safe alphabet, from the OS's CSPRNG (about 126 bits)."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def is_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == ID_LENGTH and all(c in ID_ALPHABET for c in value)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_job(job_id: str, input_text: str, input_file_path: str, owner: str) -> dict[str, str]:
    """A job's item as it is first saved: PENDING."""
    now = utc_now()
    return {
        "id": job_id,
        "owner": owner,
        "input_text": input_text,
        "input_file_path": input_file_path,
        "status": Status.PENDING.value,
        "created_at": now,
        "updated_at": now,
    }


def output_key(job_id: str, input_key: str) -> str:
    """`outputs/<id>/<stem>.out<suffix>`: `notes.txt` -> `notes.out.txt`, `README` -> `README.out`."""
    name = PurePosixPath(input_key).name
    path = PurePosixPath(name)
    return f"{OUTPUT_PREFIX}{job_id}/{path.stem}.out{path.suffix}"


def log_key(job_id: str) -> str:
    return f"{OUTPUT_PREFIX}{job_id}/worker.log"


def split_s3_path(path: str) -> tuple[str, str]:
    """`<bucket>/<key>` -> (bucket, key)."""
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise ValueError(f"not a <bucket>/<key> path: {path!r}")
    return bucket, key


def update_if(ddb: Any, **update: Any) -> dict[str, Any] | None:
    """`UpdateItem` with a `ConditionExpression`: its response, or None when the condition did not hold."""
    try:
        return dict(ddb.update_item(**update))
    except ClientError as err:
        if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return None
        raise


def transition(
    ddb: Any,
    table: str,
    job_id: str,
    to: Status,
    *,
    expected: Iterable[Status],
    by: Actor,
    attrs: Mapping[str, str] | None = None,
    owner: str | None = None,
) -> dict[str, Any] | None:
    """Move a job to `to` only if it is now in one of `expected` (and, with `owner`, belongs to that user); return
    the new item, or None if it was not.

    The condition makes every transition safe against duplicate deliveries and late writers: a job never moves
    backwards and two launchers cannot both move it out of PENDING. The move stamps `PHASE_STARTED[to]` with the
    same time as `updated_at`. `owner` is for moves on a user's request: another user's job is not moved, in the
    same write.
    """
    expected = [Status(s) for s in expected]
    for state in expected:
        check_transition(state, to, by)
    if PHASE_STARTED[to] in (attrs or {}):
        raise ValueError(f"{PHASE_STARTED[to]} is stamped by the move itself")
    names = {"#status": "status", "#updated": "updated_at", "#phase": PHASE_STARTED[to]}
    values: dict[str, Any] = {":to": {"S": to.value}, ":now": {"S": utc_now()}}
    sets = ["#status = :to", "#updated = :now", "#phase = :now"]
    for i, (name, value) in enumerate((attrs or {}).items()):
        names[f"#a{i}"] = name
        values[f":a{i}"] = {"S": value}
        sets.append(f"#a{i} = :a{i}")
    allowed = []
    for i, state in enumerate(expected):
        values[f":e{i}"] = {"S": state.value}
        allowed.append(f":e{i}")
    condition = f"attribute_exists(id) AND #status IN ({', '.join(allowed)})"
    if owner is not None:
        names["#owner"], values[":owner"] = "owner", {"S": owner}
        condition += " AND #owner = :owner"
    result = update_if(
        ddb,
        TableName=table,
        Key={"id": {"S": job_id}},
        UpdateExpression="SET " + ", ".join(sets),
        ConditionExpression=condition,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
        ReturnValues="ALL_NEW",
    )
    return None if result is None else from_dynamodb(result["Attributes"])


JOB_FINISHED_EVENT = "job_finished"
"""`event` of the one log line per finished job (`finished_fields`); components/monitoring.py counts it."""


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one phase stamp to another, to the millisecond; None if either is missing."""
    if not start or not end:
        return None
    elapsed = datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(start.replace("Z", "+00:00"))
    return round(elapsed.total_seconds(), 3)


def finished_fields(job: Mapping[str, str]) -> dict[str, Any]:
    """The `job_finished` log fields of a final job: id, status, and, when it got that far, how long it waited
    (created -> started on its VM) and ran (started -> finished), as numbers."""
    fields: dict[str, Any] = {"event": JOB_FINISHED_EVENT, "job_id": job.get("id"), "status": job.get("status")}
    waited = seconds_between(job.get("created_at"), job.get(PHASE_STARTED[Status.RUNNING]))
    ran = seconds_between(job.get(PHASE_STARTED[Status.RUNNING]), job.get(PHASE_STARTED[Status.SUCCEEDED]))
    if waited is not None:
        fields["wait_seconds"] = waited
    if ran is not None:
        fields["run_seconds"] = ran
    return fields


def check_transition(source: Status, target: Status, by: Actor) -> None:
    """Raise ValueError unless `by` may move a job from `source` to `target`."""
    if not any(t.source == source and t.target == target and by in t.by for t in TRANSITIONS):
        raise ValueError(f"the {by.value} may not move a job {source.value} -> {target.value}")


def read_job(ddb: Any, table: str, job_id: str) -> dict[str, str] | None:
    """The job's item, read strongly consistent; None when there is none."""
    found = ddb.get_item(TableName=table, Key={"id": {"S": job_id}}, ConsistentRead=True).get("Item")
    return from_dynamodb(found) if found else None


def set_attributes(ddb: Any, table: str, job_id: str, attrs: Mapping[str, str]) -> dict[str, str] | None:
    """Record facts about an existing job (e.g. its instance id) without touching its status; return the item as it
    is after the write (its status may have moved meanwhile: a cancel), or None when the job no longer exists."""
    names = {f"#a{i}": name for i, name in enumerate(attrs)}
    values = {f":a{i}": {"S": value} for i, value in enumerate(attrs.values())}
    result = update_if(
        ddb,
        TableName=table,
        Key={"id": {"S": job_id}},
        UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(attrs))),
        ConditionExpression="attribute_exists(id)",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
        ReturnValues="ALL_NEW",
    )
    return None if result is None else from_dynamodb(result["Attributes"])


def from_dynamodb(item: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Flatten a low-level item whose attributes are all strings."""
    return {name: value["S"] for name, value in item.items() if "S" in value}


def status_query(table: str, status: Status) -> dict[str, Any]:
    """Query arguments for the jobs in `status`, through the status index."""
    return {
        "TableName": table,
        "IndexName": STATUS_INDEX,
        "KeyConditionExpression": "#status = :status",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":status": {"S": status.value}},
    }


def jobs_in_state(ddb: Any, table: str, status: Status, limit: int = 100) -> list[dict[str, str]]:
    """Up to `limit` jobs now in `status`, oldest first (eventually consistent, like every index query)."""
    jobs: list[dict[str, str]] = []
    query = status_query(table, status) | {"ScanIndexForward": True}
    while len(jobs) < limit:
        page = ddb.query(**query, Limit=limit - len(jobs))
        jobs.extend(from_dynamodb(item) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return jobs


def count_in_state(ddb: Any, table: str, status: Status) -> int:
    """How many jobs are now in `status` (eventually consistent): a count query, no items read out."""
    query = status_query(table, status) | {"Select": "COUNT"}
    count = 0
    while True:
        page = ddb.query(**query)
        count += int(page.get("Count", 0))
        if "LastEvaluatedKey" not in page:
            return count
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def table_definition(table: str) -> dict[str, Any]:
    """The jobs table as CreateTable arguments: `id` hash key, on-demand, NEW_IMAGE stream, and the two indexes this
    module queries. The Storage component and local provisioning both create the table from this."""
    return {
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "owner", "AttributeType": "S"},
            {"AttributeName": "created_at", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": OWNER_INDEX,
                "KeySchema": [
                    {"AttributeName": "owner", "KeyType": "HASH"},
                    {"AttributeName": "created_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": STATUS_INDEX,
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "created_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    }


QUEUE_REASON = "queue_reason"
"""Why a job went back to the queue after AWS refused its VM for now (the launcher writes it); shown while QUEUED."""


PUBLIC_FIELDS = (
    "id", "status", "input_text", "input_file_path", "created_at", "queued_at", "launching_at", "started_at",
    "finished_at", "updated_at", "instance_id", "output_file_path", "error", "log_path", RETRIED_AS, QUEUE_REASON,
)


def to_public(item: Mapping[str, str]) -> dict[str, str]:
    """The job as the API returns it: known fields only, in a stable order; a queue reason only while it waits."""
    shown = [name for name in PUBLIC_FIELDS if name != QUEUE_REASON or item.get("status") == Status.QUEUED]
    return {name: item[name] for name in shown if name in item}


STATE_DETAIL: Mapping[Status, str] = {
    Status.PENDING: "Saved. A VM will be launched for it shortly.",
    Status.QUEUED: "Waiting for a free VM slot.",
    Status.LAUNCHING: "Starting a VM for this job.",
    Status.RUNNING: "Processing on its VM.",
    Status.CANCELLED: "Stopped at your request.",
}
"""The sentence the page shows under a job in each state; none for SUCCEEDED and FAILED, whose rows show the output
or the reason instead."""


def public_states() -> list[dict[str, Any]]:
    """Every state as the page learns it from `config.json`, in the model's order: its name and label, the sentence
    shown under a job in it, and whether a job in it is final (never polled again), cancellable and retryable."""
    return [
        {
            "name": state.value,
            "label": state.value.capitalize(),
            "detail": STATE_DETAIL.get(state, ""),
            "final": state in FINAL_STATES,
            "cancellable": state in CANCELLABLE_STATES,
            "retryable": state in RETRYABLE_STATES,
        }
        for state in Status
    ]
