"""The `next` cursor of `GET /api/jobs`: the index position to continue from, opaque to the client.

A cursor names its owner, and a cursor of another user is refused as not found: paging can never leave the caller's
own partition of the `by-owner` index.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from handlers.apigw import ApiError

KEY_FIELDS = ("id", "owner", "created_at")
"""The `by-owner` index's LastEvaluatedKey: the table key, and the index's hash and range keys."""
MAX_CURSOR_CHARS = 512
CURSOR_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_CURSOR_CHARS}}}")
"""Unpadded base64url, as `encode` writes it."""


def encode(last_key: dict[str, Any]) -> str:
    flat = {name: last_key[name]["S"] for name in KEY_FIELDS}
    return base64.urlsafe_b64encode(json.dumps(flat, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(cursor: str, owner: str) -> dict[str, dict[str, str]]:
    """The ExclusiveStartKey for `cursor`: 400 when it is not even shaped like one (the documented pattern), 404 when
    it is not one of the caller's (another user's, or one we never issued)."""
    if not CURSOR_PATTERN.fullmatch(cursor):
        raise ApiError(400, "invalid_cursor", "next must be a cursor from a previous page of GET /api/jobs.")
    not_found = ApiError(404, "cursor_not_found", "No listing of your jobs has this cursor.")
    try:
        flat = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise not_found from None
    if not isinstance(flat, dict) or set(flat) != set(KEY_FIELDS) or not all(isinstance(v, str) for v in flat.values()):
        raise not_found
    if flat["owner"] != owner:
        raise not_found
    return {name: {"S": flat[name]} for name in KEY_FIELDS}
