"""HTTP API (payload format 2.0) plumbing: JSON bodies in, JSON responses and contract-shaped errors out."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
"""Every request body of the API is a small JSON object; anything larger is refused before parsing."""

Event = Mapping[str, Any]
Response = dict[str, Any]


class ApiError(Exception):
    """A client mistake (4xx) or a known server condition, rendered as `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_response(status: int, body: Any) -> Response:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store"},
        "body": json.dumps(body),
    }


def error_response(error: ApiError) -> Response:
    return json_response(error.status, {"error": {"code": error.code, "message": error.message}})


def route_key(event: Event) -> str:
    return str(event.get("routeKey", ""))


def json_body(event: Event, *, allowed: frozenset[str]) -> dict[str, Any]:
    """Parse the request body as one JSON object; unknown fields are refused so typos do not pass silently."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = str(headers.get("content-type", "")).split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the request body as JSON (content-type: application/json).")
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "invalid_json", "The request body is not valid base64.") from None
    else:
        data = raw.encode("utf-8")
    if len(data) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8, bad JSON and integers longer than Python's digit limit; RecursionError deep
        # nesting. All are the client's mistake, never a 500.
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, "unknown_field", f"Unknown field(s): {', '.join(unknown)}.")
    return body


def dispatch(event: Event, routes: Mapping[str, Callable[[Event], Response]]) -> Response:
    """Call the function for the event's route key, turning ApiError into its response.

    Unexpected exceptions propagate: the platform logs them and answers 500, which is right for a server fault.
    """
    action = routes.get(route_key(event))
    try:
        if action is None:
            raise ApiError(404, "not_found", f"No route for {route_key(event) or 'this request'}.")
        return action(event)
    except ApiError as error:
        log.info("refused %s: %s %s", route_key(event), error.code, error.message)
        return error_response(error)
