"""Cognito pre sign-up trigger: self sign-up only with an email in one of the stack's `allowedEmailDomains`.

Cognito calls it before it creates a user; an exception refuses the sign-up, and Cognito answers the client
UserLambdaValidationException "PreSignUp failed with error <message>.". Accounts an operator creates
(`PreSignUp_AdminCreateUser`, `make invite`) are the operator's choice and pass. It makes no AWS call; local mode
runs the same function on the emulator's SignUp (`local.emulator`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

ENV_ALLOWED_EMAIL_DOMAINS = "ALLOWED_EMAIL_DOMAINS"
"""Comma-separated domains, lower case; empty: any domain."""
SELF_SIGN_UP = "PreSignUp_SignUp"


class DomainNotAllowedError(Exception):
    """The email's domain is not one the stack accepts for self sign-up."""


def email_domain(email: str) -> str:
    """`Ada@Example.COM` -> `example.com` (the part after the last `@`)."""
    return email.rpartition("@")[2].strip().lower()


def check_email(email: str, allowed: Sequence[str]) -> None:
    """Refuse an email whose domain is not exactly one of `allowed` (a subdomain is another domain)."""
    if allowed and email_domain(email) not in {domain.lower() for domain in allowed}:
        raise DomainNotAllowedError(f"Sign-up is open to addresses at {', '.join(allowed)} only")


def allowed_domains(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    return tuple(d.strip().lower() for d in env.get(ENV_ALLOWED_EMAIL_DOMAINS, "").split(",") if d.strip())


def check_event(event: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """A PreSignUp event: a self sign-up's email is checked; any other source passes."""
    if event.get("triggerSource") != SELF_SIGN_UP:
        return
    email = str((event.get("request") or {}).get("userAttributes", {}).get("email") or event.get("userName") or "")
    check_email(email, allowed)


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Return the event unchanged to let the sign-up go on (no auto-confirmation); raise to refuse it."""
    check_event(event, allowed_domains())
    return event
