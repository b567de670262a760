"""`make invite` (deploy/invite.py): an operator's AdminCreateUser on the stack's pool, against moto; the pool id
comes from the stack's output (here injected) or `--pool-id`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from deploy import invite
from stackspec.userpool import user_pool_definition

REGION = "eu-west-1"


@pytest.fixture
def pool() -> Iterator[tuple[Any, str]]:
    with mock_aws():
        cognito = boto3.client("cognito-idp", region_name=REGION)
        pool_id = cognito.create_user_pool(**user_pool_definition("invite-test", allow_self_sign_up=False))[
            "UserPool"]["Id"]
        yield cognito, pool_id


def test_the_stacks_pool_gets_a_verified_user(pool: tuple[Any, str], capsys: pytest.CaptureFixture[str]) -> None:
    cognito, pool_id = pool
    asked: list[tuple[str, str]] = []

    def output(stack: str, name: str) -> str:
        asked.append((stack, name))
        return pool_id

    assert invite.main(["--email", "ada@example.com", "--stack", "prod"], output=output) == 0
    assert asked == [("prod", "userPoolId")]
    user = cognito.admin_get_user(UserPoolId=pool_id, Username="ada@example.com")
    attributes = {a["Name"]: a["Value"] for a in user["UserAttributes"]}
    assert (attributes["email"], attributes["email_verified"]) == ("ada@example.com", "true")
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD", "a temporary password, changed at the first sign-in"
    assert "Invited ada@example.com" in capsys.readouterr().out


def test_an_existing_account_or_a_bad_email_is_a_clear_refusal(
        pool: tuple[Any, str], capsys: pytest.CaptureFixture[str]) -> None:
    _, pool_id = pool
    assert invite.main(["--email", "bob@example.com", "--pool-id", pool_id]) == 0
    assert invite.main(["--email", "bob@example.com", "--pool-id", pool_id]) == 1
    assert "bob@example.com already has an account" in capsys.readouterr().err
    assert invite.main(["--email", "", "--pool-id", pool_id]) == 1
    assert "EMAIL must be one email address" in capsys.readouterr().err
    assert invite.main(["--email", "c@example.com", "--stack", ""]) == 1
    assert "say which stack" in capsys.readouterr().err
