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


class Actor(StrEnum):
    """The code that moves jobs: `handlers/launcher.py`, `handlers/sweeper.py` and `worker/worker.py`."""

    LAUNCHER = "launcher"
    SWEEPER = "sweeper"
    WORKER = "worker"


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
)
"""Every allowed move of a job, and the code allowed to make it. Each is a conditional write from `source`."""

FINAL_STATES = frozenset(Status) - {t.source for t in TRANSITIONS}
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
    Status.QUEUED: Deadline(timedelta(0), False,
                            "started oldest first at every sweep while a VM slot is free (the queue has no time limit: "
                            "a slot frees when a VM ends, and VMs are bounded by the job timeout)"),
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

VM_ALIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
"""EC2 instance states in which a VM still exists, and so still counts against the VM cap."""

EXPIRES_AT = "expires_at"
"""A finished job's expiry (epoch seconds, a number) that the jobs table's TTL reads when the stack keeps records for
a limited time."""
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


def new_job(
    job_id: str, input_text: str, input_file_path: str, owner: str, status: Status = Status.PENDING
) -> dict[str, str]:
    """A job's item as it is first saved (`status` other than PENDING only for tests that start mid-way)."""
    now = utc_now()
    return {
        "id": job_id,
        "owner": owner,
        "input_text": input_text,
        "input_file_path": input_file_path,
        "status": status.value,
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
) -> dict[str, Any] | None:
    """Move a job to `to` only if it is now in one of `expected`; return the new item, or None if it was not.

    The condition makes every transition safe against duplicate deliveries and late writers: a job never moves
    backwards and two launchers cannot both move it out of PENDING.
    """
    expected = [Status(s) for s in expected]
    for state in expected:
        check_transition(state, to, by)
    names = {"#status": "status", "#updated": "updated_at"}
    values: dict[str, Any] = {":to": {"S": to.value}, ":now": {"S": utc_now()}}
    sets = ["#status = :to", "#updated = :now"]
    for i, (name, value) in enumerate((attrs or {}).items()):
        names[f"#a{i}"] = name
        values[f":a{i}"] = {"S": value}
        sets.append(f"#a{i} = :a{i}")
    allowed = []
    for i, state in enumerate(expected):
        values[f":e{i}"] = {"S": state.value}
        allowed.append(f":e{i}")
    result = update_if(
        ddb,
        TableName=table,
        Key={"id": {"S": job_id}},
        UpdateExpression="SET " + ", ".join(sets),
        ConditionExpression=f"attribute_exists(id) AND #status IN ({', '.join(allowed)})",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
        ReturnValues="ALL_NEW",
    )
    return None if result is None else from_dynamodb(result["Attributes"])


def check_transition(source: Status, target: Status, by: Actor) -> None:
    """Raise ValueError unless `by` may move a job from `source` to `target`."""
    if not any(t.source == source and t.target == target and by in t.by for t in TRANSITIONS):
        raise ValueError(f"the {by.value} may not move a job {source.value} -> {target.value}")


def read_job(ddb: Any, table: str, job_id: str) -> dict[str, str] | None:
    """The job's item, read strongly consistent; None when there is none."""
    found = ddb.get_item(TableName=table, Key={"id": {"S": job_id}}, ConsistentRead=True).get("Item")
    return from_dynamodb(found) if found else None


def set_attributes(ddb: Any, table: str, job_id: str, attrs: Mapping[str, str]) -> None:
    """Record facts about an existing job (e.g. its instance id) without touching its status."""
    names = {f"#a{i}": name for i, name in enumerate(attrs)}
    values = {f":a{i}": {"S": value} for i, value in enumerate(attrs.values())}
    ddb.update_item(
        TableName=table,
        Key={"id": {"S": job_id}},
        UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(attrs))),
        ConditionExpression="attribute_exists(id)",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def from_dynamodb(item: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Flatten a low-level item whose attributes are all strings."""
    return {name: value["S"] for name, value in item.items() if "S" in value}


def jobs_in_state(ddb: Any, table: str, status: Status, limit: int = 100) -> list[dict[str, str]]:
    """Up to `limit` jobs now in `status`, oldest first (eventually consistent, like every index query)."""
    jobs: list[dict[str, str]] = []
    query: dict[str, Any] = {
        "TableName": table,
        "IndexName": STATUS_INDEX,
        "KeyConditionExpression": "#status = :status",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":status": {"S": status.value}},
        "ScanIndexForward": True,
    }
    while len(jobs) < limit:
        page = ddb.query(**query, Limit=limit - len(jobs))
        jobs.extend(from_dynamodb(item) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return jobs


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


PUBLIC_FIELDS = (
    "id", "status", "input_text", "input_file_path", "created_at", "updated_at", "instance_id", "started_at",
    "finished_at", "output_file_path", "error", "log_path",
)


def to_public(item: Mapping[str, str]) -> dict[str, str]:
    """The job as the API returns it: known fields only, in a stable order."""
    return {name: item[name] for name in PUBLIC_FIELDS if name in item}
