"""The `next` cursor of `GET /api/jobs`: the index position to continue from, opaque to the client.

A cursor names its owner, and a cursor of another user is refused as not found: paging can never leave the caller's
own partition of the `by-owner` index.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from handlers.apigw import ApiError

KEY_FIELDS = ("id", "owner", "created_at")
"""The `by-owner` index's LastEvaluatedKey: the table key, and the index's hash and range keys."""
MAX_CURSOR_CHARS = 512


def encode(last_key: dict[str, Any]) -> str:
    flat = {name: last_key[name]["S"] for name in KEY_FIELDS}
    return base64.urlsafe_b64encode(json.dumps(flat, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(cursor: str, owner: str) -> dict[str, dict[str, str]]:
    """The ExclusiveStartKey for `cursor`: 400 when it is not one we issued, 404 when it is another user's."""
    invalid = ApiError(400, "invalid_cursor", "next must be a cursor from a previous page of GET /api/jobs.")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        flat = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(flat, dict) or set(flat) != set(KEY_FIELDS) or not all(isinstance(v, str) for v in flat.values()):
        raise invalid
    if flat["owner"] != owner:
        raise ApiError(404, "cursor_not_found", "This cursor does not belong to a listing of your jobs.")
    return {name: {"S": flat[name]} for name in KEY_FIELDS}
