"""Local mode's stand-in for the HTTP API's JWT authorizer: the same checks, by a well-kept library (PyJWT).

API Gateway's JWT authorizer takes the `Authorization` header (with or without a `Bearer ` prefix), finds the
signing key in the issuer's JWKS by the token's `kid`, requires RS256, and checks `iss`, `exp`, `nbf` and `iat`, and
`aud` — or `client_id` when the token has no `aud` (Cognito's access tokens) — against the configured audience. So a
Cognito ID token and an access token of the app client both pass; anything else is 401 before any function runs.
It does not ask Cognito whether the token was revoked: a token stays valid until it expires.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import jwt

log = logging.getLogger("filepipe.local")

ALGORITHMS = ["RS256"]
REQUIRED_CLAIMS = ["iss", "sub", "exp", "iat"]


def jwks_url(endpoint_url: str, user_pool_id: str) -> str:
    """Where the emulator serves a pool's signing keys (on AWS: `<issuer>/.well-known/jwks.json`)."""
    return f"{endpoint_url}/{user_pool_id}/.well-known/jwks.json"


class Unauthorized(Exception):  # noqa: N818 (named after the response it becomes)
    """The request carries no token the authorizer accepts."""


class JwtAuthorizer:
    def __init__(self, jwks_url: str, issuer: str, audience: str) -> None:
        self.issuer = issuer
        self.audience = audience
        self._keys = jwt.PyJWKClient(jwks_url, cache_keys=True, timeout=5)

    def claims(self, authorization: str | None) -> dict[str, str]:
        """The token's claims as API Gateway passes them on (`requestContext.authorizer.jwt.claims`)."""
        token = bearer_token(authorization)
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            payload = jwt.decode(
                token, key.key, algorithms=ALGORITHMS, issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS, "verify_aud": False},
            )
        except jwt.PyJWTError as err:
            log.info("authorizer: token refused (%s)", type(err).__name__)
            raise Unauthorized from None
        if not audience_matches(payload, self.audience):
            log.info("authorizer: token refused (another audience)")
            raise Unauthorized
        return {name: claim_value(value) for name, value in payload.items()}


def bearer_token(authorization: str | None) -> str:
    if not authorization or not authorization.strip():
        raise Unauthorized
    token = authorization.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise Unauthorized
    return token


def audience_matches(payload: Mapping[str, Any], audience: str) -> bool:
    """`aud` (a string or a list) when present, else `client_id`."""
    if "aud" in payload:
        aud = payload["aud"]
        return aud == audience or (isinstance(aud, list) and audience in aud)
    return payload.get("client_id") == audience


def claim_value(value: Any) -> str:
    """API Gateway hands claims to the function as strings (a list as `[a b]`)."""
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    return value if isinstance(value, str) else str(value)
