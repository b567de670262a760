"""Tokens for the authorizer's bad-input cases: signed by the emulator's own key (so only the claim under test is
wrong), by another key, or not at all.

The emulator signs every pool's tokens with the key pair it ships (`kid` "dummy"); tests load its private half to
sign claims a real pool would never issue (expired, not yet valid, another issuer or audience).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.utilities.utils import load_resource

EMULATOR_KID = "dummy"


def emulator_key() -> Any:
    """The emulator's RSA private key, as PyJWT takes it."""
    return jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json")).key


def claims(issuer: str, client_id: str, sub: str, **changes: Any) -> dict[str, Any]:
    """An access token's claims as Cognito issues them, with `changes` applied (None removes a claim)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": issuer, "sub": sub, "client_id": client_id, "token_use": "access", "iat": now, "auth_time": now,
        "exp": now + 3600, "jti": str(uuid.uuid4()), "username": sub, "scope": "aws.cognito.signin.user.admin",
    }
    payload.update(changes)
    return {name: value for name, value in payload.items() if value is not None}


def signed(payload: dict[str, Any], key: Any = None, algorithm: str = "RS256") -> str:
    return jwt.encode(payload, key if key is not None else emulator_key(), algorithm=algorithm,
                      headers={"kid": EMULATOR_KID})


def other_rsa_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def hs256_with_public_key(payload: dict[str, Any]) -> str:
    """The classic confusion attack: HMAC-signed with the issuer's *public* key as the secret."""
    public = emulator_key().public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": EMULATOR_KID}
    return _unsigned_parts(header, payload) + "." + _b64(_hmac(public, _unsigned_parts(header, payload)))


def unsigned(payload: dict[str, Any]) -> str:
    """`alg: none` and no signature."""
    return _unsigned_parts({"alg": "none", "typ": "JWT", "kid": EMULATOR_KID}, payload) + "."


def with_payload(token: str, **changes: Any) -> str:
    """`token` with its payload changed and its signature kept (so the signature no longer matches)."""
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(changes)
    return f"{header}.{_b64(json.dumps(data).encode())}.{signature}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsigned_parts(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())


def _hmac(secret: bytes, message: str) -> bytes:
    return hmac.new(secret, message.encode(), hashlib.sha256).digest()
