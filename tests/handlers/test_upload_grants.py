"""Upload grants per user (handlers/grants.py): `POST /api/uploads` beyond the hourly allowance is a 429 with
Retry-After, as the job quota answers; a refused request costs nothing; a new hour starts afresh. (Under
concurrency: tests/local/test_emulator.py and tests/local/test_accounts.py.)"""

from __future__ import annotations

import pytest

from handlers import grants, upload
from handlers.config import ApiConfig
from tests.handlers.conftest import OTHER_USER, USER, Stack, api_event, call

ROUTE = "POST /api/uploads"
LIMIT = ApiConfig.from_env().upload_grants_per_hour
HOUR = grants.WINDOW_SECONDS


def ask(user: str = USER, filename: str = "notes.txt") -> tuple[int, dict, dict]:
    reply = call(upload.handler, api_event(ROUTE, {"filename": filename, "size": 5}, user=user))
    return reply.status, reply.body, reply.headers


def test_grants_beyond_the_hourly_allowance_are_refused_with_retry_after(stack: Stack) -> None:
    """Regression: one user could ask for any number of grants (60 in 0.2 s), each good for a file of maxFileMb."""
    assert [ask()[0] for _ in range(LIMIT)] == [201] * LIMIT
    status, body, headers = ask()
    assert (status, body["error"]["code"]) == (429, "too_many_uploads")
    assert 0 < int(headers["retry-after"]) <= HOUR
    assert str(LIMIT) in body["error"]["message"]
    assert ask(OTHER_USER)[0] == 201, "another user's allowance is their own"


def test_a_refused_request_costs_no_grant(stack: Stack) -> None:
    for _ in range(LIMIT):
        assert ask(filename="a/b.txt")[0] == 400
    assert ask()[0] == 201


def test_a_new_hour_starts_afresh(stack: Stack) -> None:
    ddb, start = stack.client("dynamodb"), 1_800_000_000 // HOUR * HOUR
    assert [grants.take_grant(ddb, stack.table, USER, 2, now=start + s) for s in (1, 2)] == [1, 2]
    with pytest.raises(grants.TooManyGrantsError) as spent:
        grants.take_grant(ddb, stack.table, USER, 2, now=start + 600)
    assert spent.value.retry_after == HOUR - 600
    assert grants.take_grant(ddb, stack.table, USER, 2, now=start + HOUR) == 1
    assert grants.take_grant(ddb, stack.table, USER, 2, now=start + HOUR + 1) == 2
