"""The job model: states and transitions, the conditional write that moves a job, key layout and ids."""

from __future__ import annotations

import re
import string

import pytest
from botocore.exceptions import ClientError

from handlers import jobmodel
from handlers.jobmodel import ALLOWED_TRANSITIONS, DEADLINES, FINAL_STATES, TRANSITIONS, Actor, Status, new_id
from tests.handlers.conftest import Stack

S = Status
A = Actor
ALLOWED = {
    (S.PENDING, S.QUEUED): {A.LAUNCHER, A.SWEEPER},
    (S.QUEUED, S.LAUNCHING): {A.LAUNCHER},
    (S.LAUNCHING, S.QUEUED): {A.LAUNCHER},
    (S.LAUNCHING, S.RUNNING): {A.WORKER},
    (S.LAUNCHING, S.FAILED): {A.LAUNCHER, A.SWEEPER},
    (S.RUNNING, S.SUCCEEDED): {A.WORKER},
    (S.RUNNING, S.FAILED): {A.WORKER, A.SWEEPER},
    (S.PENDING, S.CANCELLED): {A.USER},
    (S.QUEUED, S.CANCELLED): {A.USER},
    (S.LAUNCHING, S.CANCELLED): {A.USER},
    (S.RUNNING, S.CANCELLED): {A.USER},
}
FORBIDDEN = [(a, b) for a in Status for b in Status if (a, b) not in ALLOWED]


def transition(ddb: object, table: str, job_id: str, to: Status, *, expected: list[Status], **kw: object) -> object:
    """`jobmodel.transition` by an actor allowed every move from `expected` to `to`."""
    actors = set.intersection(*(ALLOWED.get((state, to), set()) for state in expected)) or {A.LAUNCHER}
    return jobmodel.transition(ddb, table, job_id, to, expected=expected, by=min(actors), **kw)


def test_allowed_transitions_are_exactly_the_designed_ones() -> None:
    """Any edge added or lost here changes what duplicates and late writers can do to a job."""
    assert {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets} == set(ALLOWED)
    assert {(t.source, t.target): set(t.by) for t in TRANSITIONS} == ALLOWED, "who may make each move"


def test_every_non_final_state_has_a_sweeper_deadline() -> None:
    """A state without one could hold a job forever once a message or a VM is lost."""
    assert set(DEADLINES) == set(Status) - FINAL_STATES
    assert DEADLINES[S.RUNNING].limit(15) > DEADLINES[S.RUNNING].limit(5), "RUNNING's deadline follows the timeout"


@pytest.mark.parametrize(("move", "intruder"), [
    ((S.LAUNCHING, S.RUNNING), A.LAUNCHER), ((S.RUNNING, S.SUCCEEDED), A.SWEEPER), ((S.QUEUED, S.LAUNCHING), A.WORKER),
    ((S.RUNNING, S.CANCELLED), A.SWEEPER), ((S.RUNNING, S.FAILED), A.USER), ((S.QUEUED, S.LAUNCHING), A.USER),
])
def test_a_move_by_the_wrong_actor_is_refused_before_writing(
    stack: Stack, move: tuple[Status, Status], intruder: Actor
) -> None:
    job_id = save(stack, move[0])
    before = stack.raw_item(job_id)
    with pytest.raises(ValueError, match="may not move"):
        jobmodel.transition(ddb(stack), stack.table, job_id, move[1], expected=[move[0]], by=intruder)
    assert stack.raw_item(job_id) == before


def test_final_states_have_no_way_out_and_nothing_returns_to_pending() -> None:
    assert {S.SUCCEEDED, S.FAILED, S.CANCELLED} == FINAL_STATES
    assert all(not ALLOWED_TRANSITIONS[state] for state in FINAL_STATES)
    assert all(S.PENDING not in targets for targets in ALLOWED_TRANSITIONS.values())
    assert all(state not in ALLOWED_TRANSITIONS[state] for state in Status)


def test_every_state_is_reachable_from_pending() -> None:
    seen, todo = {S.PENDING}, [S.PENDING]
    while todo:
        for nxt in ALLOWED_TRANSITIONS[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    assert seen == set(Status)


def save(stack: Stack, status: Status) -> str:
    job_id = new_id()
    stack.put_item(id=job_id, status=status.value, created_at="2030-01-01T00:00:00.000Z",
                   updated_at="2030-01-01T00:00:00.000Z", input_text="hi")
    return job_id


def ddb(stack: Stack) -> object:
    return stack.client("dynamodb")


@pytest.mark.parametrize(("start", "to"), list(ALLOWED))
def test_transition_moves_a_job_from_the_expected_state(stack: Stack, start: Status, to: Status) -> None:
    job_id = save(stack, start)
    moved = transition(ddb(stack), stack.table, job_id, to, expected=[start], attrs={"instance_id": "i-1"})
    assert moved is not None
    assert moved["status"] == to.value and moved["instance_id"] == "i-1" and moved["input_text"] == "hi"
    assert moved["updated_at"] != "2030-01-01T00:00:00.000Z", "every transition stamps updated_at"
    assert jobmodel.from_dynamodb(stack.raw_item(job_id)) == moved


@pytest.mark.parametrize(("start", "to"), FORBIDDEN)
def test_forbidden_transitions_are_refused_before_writing(stack: Stack, start: Status, to: Status) -> None:
    """Backwards moves and moves out of SUCCEEDED/FAILED are programming errors: refused, nothing written."""
    job_id = save(stack, start)
    before = stack.raw_item(job_id)
    with pytest.raises(ValueError, match="may not move"):
        transition(ddb(stack), stack.table, job_id, to, expected=[start])
    assert stack.raw_item(job_id) == before


def test_duplicate_delivery_moves_the_job_once(stack: Stack) -> None:
    """Two launchers racing on one record: the second conditional write fails and reports None."""
    job_id = save(stack, S.PENDING)
    first = transition(ddb(stack), stack.table, job_id, S.QUEUED, expected=[S.PENDING])
    saved = stack.raw_item(job_id)
    second = transition(ddb(stack), stack.table, job_id, S.QUEUED, expected=[S.PENDING], attrs={"x": "y"})
    assert first is not None and second is None
    assert stack.raw_item(job_id) == saved


@pytest.mark.parametrize("now", [S.RUNNING, S.SUCCEEDED, S.FAILED])
def test_late_writer_cannot_move_a_job_backwards(stack: Stack, now: Status) -> None:
    """A stale launcher expecting QUEUED cannot pull a job that has moved on back to LAUNCHING."""
    job_id = save(stack, now)
    before = stack.raw_item(job_id)
    assert transition(ddb(stack), stack.table, job_id, S.LAUNCHING, expected=[S.QUEUED]) is None
    assert stack.raw_item(job_id) == before


def test_late_failure_cannot_overwrite_success(stack: Stack) -> None:
    job_id = save(stack, S.SUCCEEDED)
    before = stack.raw_item(job_id)
    assert transition(ddb(stack), stack.table, job_id, S.FAILED, expected=[S.RUNNING], attrs={"error": "x"}) is None
    assert stack.raw_item(job_id) == before


def test_any_of_several_expected_states(stack: Stack) -> None:
    job_id = save(stack, S.RUNNING)
    moved = transition(ddb(stack), stack.table, job_id, S.FAILED, expected=[S.LAUNCHING, S.RUNNING])
    assert moved is not None and moved["status"] == "FAILED"


def test_reserved_word_attributes_are_written(stack: Stack) -> None:
    """`error` and friends are DynamoDB reserved words: they must go through name placeholders."""
    job_id = save(stack, S.RUNNING)
    attrs = {"error": "The input file is gone.", "name": "x", "size": "1"}
    moved = transition(ddb(stack), stack.table, job_id, S.FAILED, expected=[S.RUNNING], attrs=attrs)
    assert moved is not None and {k: moved[k] for k in attrs} == attrs


@pytest.mark.parametrize(("start", "to"), list(ALLOWED))
def test_every_move_stamps_when_its_phase_began(stack: Stack, start: Status, to: Status) -> None:
    """Wait and run times are read from these stamps: each move writes its target's, at the time of `updated_at`,
    and leaves the earlier phases' stamps alone."""
    job_id = save(stack, start)
    before = jobmodel.from_dynamodb(stack.raw_item(job_id))
    moved = transition(ddb(stack), stack.table, job_id, to, expected=[start])
    assert moved is not None
    phase = jobmodel.PHASE_STARTED[to]
    assert moved[phase] == moved["updated_at"] != before.get(phase)
    assert moved["created_at"] == before["created_at"]


def test_a_caller_cannot_write_the_phase_stamp_itself(stack: Stack) -> None:
    job_id = save(stack, S.RUNNING)
    with pytest.raises(ValueError, match="finished_at is stamped by the move"):
        transition(ddb(stack), stack.table, job_id, S.FAILED, expected=[S.RUNNING], attrs={"finished_at": "x"})


def test_every_state_has_a_phase_stamp_and_the_api_returns_them() -> None:
    assert set(jobmodel.PHASE_STARTED) == set(Status)
    assert set(jobmodel.PHASE_STARTED.values()) <= set(jobmodel.PUBLIC_FIELDS)


def test_only_the_owner_named_moves_the_job(stack: Stack) -> None:
    """A move on a user's request names the user: another user's job is left as it was, in the same write."""
    job_id = save(stack, S.RUNNING)
    stack.client("dynamodb").update_item(TableName=stack.table, Key={"id": {"S": job_id}},
                                         UpdateExpression="SET #o = :o", ExpressionAttributeNames={"#o": "owner"},
                                         ExpressionAttributeValues={":o": {"S": "ana"}})
    before = stack.raw_item(job_id)
    assert jobmodel.transition(ddb(stack), stack.table, job_id, S.CANCELLED, expected=[S.RUNNING], by=A.USER,
                               owner="bob") is None
    assert stack.raw_item(job_id) == before
    moved = jobmodel.transition(ddb(stack), stack.table, job_id, S.CANCELLED, expected=[S.RUNNING], by=A.USER,
                                owner="ana")
    assert moved is not None and moved["status"] == "CANCELLED" and moved["finished_at"] == moved["updated_at"]


def test_missing_job_is_not_created(stack: Stack) -> None:
    """An update on a missing id would create a stub item without the condition; it must return None instead."""
    job_id = new_id()
    assert transition(ddb(stack), stack.table, job_id, S.QUEUED, expected=[S.PENDING]) is None
    assert stack.raw_item(job_id) is None


def test_other_dynamodb_errors_propagate(stack: Stack) -> None:
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        transition(ddb(stack), "no-such-table", new_id(), S.QUEUED, expected=[S.PENDING])


@pytest.mark.parametrize(
    ("input_key", "output"),
    [
        ("inputs/U/notes.txt", "notes.out.txt"),
        ("inputs/U/README", "README.out"),
        ("inputs/U/archive.tar.gz", "archive.tar.out.gz"),
        ("inputs/U/a.b.c.d", "a.b.c.out.d"),
        ("inputs/U/photo.JPEG", "photo.out.JPEG"),
        ("inputs/U/_x", "_x.out"),
        ("notes.txt", "notes.out.txt"),
    ],
)
def test_output_key(input_key: str, output: str) -> None:
    job_id = new_id()
    assert jobmodel.output_key(job_id, input_key) == f"outputs/{job_id}/{output}"


def test_log_sits_next_to_the_output() -> None:
    job_id = new_id()
    assert jobmodel.log_key(job_id).rsplit("/", 1)[0] == jobmodel.output_key(job_id, "a.txt").rsplit("/", 1)[0]


def test_new_id_is_a_nanoid() -> None:
    ids = [new_id() for _ in range(1000)]
    assert all(len(i) == 21 for i in ids)
    assert len(set(ids)) == len(ids)
    assert set(jobmodel.ID_ALPHABET) == set(string.ascii_letters + string.digits + "_-")
    assert len(jobmodel.ID_ALPHABET) == 64
    used = set("".join(ids))
    assert used == set(jobmodel.ID_ALPHABET), "every one of the 64 characters is drawn (126 bits of entropy)"
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{21}", i) and jobmodel.is_id(i) for i in ids)


@pytest.mark.parametrize("value", ["a" * 20, "a" * 22, "a" * 20 + ".", "a" * 20 + "/", "", None, 5, ["a" * 21]])
def test_is_id_refuses_non_ids(value: object) -> None:
    assert not jobmodel.is_id(value)


def test_utc_now_is_iso_utc_with_milliseconds() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", jobmodel.utc_now())


def test_split_s3_path() -> None:
    assert jobmodel.split_s3_path("bucket/outputs/x/a.out.txt") == ("bucket", "outputs/x/a.out.txt")
    for bad in ("bucket", "bucket/", "/key", ""):
        with pytest.raises(ValueError):
            jobmodel.split_s3_path(bad)


def test_public_view_drops_internal_attributes_and_keeps_order() -> None:
    item = {"list_key": "job", "status": "PENDING", "id": "x", "secret": "s", "error": "e"}
    assert list(jobmodel.to_public(item).items()) == [("id", "x"), ("status", "PENDING"), ("error", "e")]


def test_the_cancellable_states_are_read_from_the_transitions() -> None:
    """Regression: the API listed the states a user may cancel from by hand, beside the transition table; every
    unfinished state (and no other) can be cancelled, as the README promises."""
    cancellable = jobmodel.CANCELLABLE_STATES
    assert cancellable == {source for (source, target), by in ALLOWED.items() if target == S.CANCELLED and A.USER in by}
    assert cancellable == frozenset(Status) - FINAL_STATES
    assert jobmodel.RETRYABLE_STATES <= FINAL_STATES
