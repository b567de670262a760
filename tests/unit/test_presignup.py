"""The pre sign-up trigger (handlers/presignup.py): self sign-up only at the allowed domains; invitations pass."""

from __future__ import annotations

from typing import Any

import pytest

from handlers import presignup


def event(email: str, source: str = "PreSignUp_SignUp") -> dict[str, Any]:
    """A Cognito PreSignUp event as the trigger receives it (the fields it reads)."""
    return {"version": "1", "triggerSource": source, "userName": email,
            "request": {"userAttributes": {"email": email}}, "response": {}}


@pytest.mark.parametrize("email", ["ada@example.org", "Ada@EXAMPLE.ORG", "bob@example.net"])
def test_an_allowed_domain_signs_up(email: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(presignup.ENV_ALLOWED_EMAIL_DOMAINS, "example.org,example.net")
    assert presignup.handler(event(email), None) == event(email)


@pytest.mark.parametrize("email", ["eve@evil.example", "eve@sub.example.org", "eve@example.org.evil.example",
                                   "example.org@evil.example", ""])
def test_any_other_domain_is_refused(email: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(presignup.ENV_ALLOWED_EMAIL_DOMAINS, "example.org,example.net")
    with pytest.raises(presignup.DomainNotAllowedError, match=r"example\.org, example\.net only"):
        presignup.handler(event(email), None)


def test_an_operators_invitation_and_an_open_stack_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(presignup.ENV_ALLOWED_EMAIL_DOMAINS, "example.org")
    assert presignup.handler(event("guest@elsewhere.example", "PreSignUp_AdminCreateUser"), None)
    monkeypatch.setenv(presignup.ENV_ALLOWED_EMAIL_DOMAINS, "")
    assert presignup.handler(event("anyone@anywhere.example"), None)
