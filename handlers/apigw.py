"""HTTP API (payload format 2.0) plumbing: JSON bodies in, JSON responses and contract-shaped errors out.

The strictness policy, the same on every route: a request body must be one JSON object sent as
`application/json` (UTF-8), with no duplicate or unknown fields; query parameters a route does not declare are
refused too. A mistake is a 4xx `{"error": {"code", "message"}}`, never silently ignored and never a 5xx.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from handlers.services import API_CALLS, CallLimits, function_timeout_seconds

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
"""Every request body of the API is a small JSON object; anything larger is refused before parsing (the floor of
`body_limit`)."""
JSON_BYTES_PER_CHAR = 12
"""The most JSON can spend on one character: a `\\uXXXX\\uXXXX` surrogate pair, as `json.dumps` escapes emoji."""
BODY_SLACK_BYTES = 4 * 1024
"""Room for the other fields of a request (key, filename, content type) next to the text."""

Event = Mapping[str, Any]
Response = dict[str, Any]
S = TypeVar("S")
"""The services (config and clients) a router's actions receive."""


class ApiError(Exception):
    """A client mistake (4xx) or a known server condition, rendered as `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def body_limit(max_text_length: int) -> int:
    """The API's request body limit: 16 KiB, or more when needed so a text at the cap always fits, however encoded.

    One limit for every route (both handlers call this with the same stack setting), so the API has one number.
    """
    return max(MAX_BODY_BYTES, JSON_BYTES_PER_CHAR * max_text_length + BODY_SLACK_BYTES)


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store", **(headers or {})},
        "body": json.dumps(body),
    }


def no_content_response() -> Response:
    """204: done, nothing to say (no body, so no content type)."""
    return {"statusCode": 204, "headers": {"cache-control": "no-store"}, "body": ""}


def error_response(error: ApiError) -> Response:
    return json_response(error.status, {"error": {"code": error.code, "message": error.message}}, error.headers)


UNAUTHORIZED = {"message": "Unauthorized"}
"""API Gateway's JWT authorizer's answer to a request without a valid token; the router answers the same."""


def claimed_sub(event: Event) -> str | None:
    """The `sub` claim the JWT authorizer verified, never anything the client sent."""
    context = event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and sub else None


def caller(event: Event) -> str:
    """The signed-in user's id, for routes the router has already checked (API Gateway refuses a request without a
    valid token before the function runs; the router's check is the second line, for a route wired without the
    authorizer by mistake)."""
    sub = claimed_sub(event)
    if sub is None:
        raise RuntimeError("an action that needs the caller is served on a public route")
    return sub


def route_key(event: Event) -> str:
    return str(event.get("routeKey", ""))


def _check_content_type(event: Event) -> None:
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    media_type, *params = headers.get("content-type", "").split(";")
    if media_type.strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the request body as JSON (content-type: application/json).")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in {"utf-8", "utf8"}:
            raise ApiError(415, "unsupported_media_type", "Send the JSON body in UTF-8 (charset=utf-8).")


def _body_bytes(event: Event, max_bytes: int) -> bytes:
    raw = event.get("body") or ""
    too_large = ApiError(413, "body_too_large", f"The request body is larger than {max_bytes} bytes.")
    if event.get("isBase64Encoded"):
        if len(raw) > (max_bytes + 2) // 3 * 4:  # refuse before decoding what cannot fit anyway
            raise too_large
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "invalid_json", "The request body is not valid base64.") from None
    else:
        data = raw.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        raise too_large
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`{"key": "a", "key": "b"}` is ambiguous (parsers disagree on which wins): refuse it."""
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate field {name!r}")
        result[name] = value
    return result


def _no_constant(name: str) -> Any:
    """`NaN`, `Infinity` and `-Infinity` are not JSON, though Python's parser accepts them."""
    raise ValueError(f"{name} is not JSON")


def json_body(
    event: Event, *, allowed: frozenset[str], required: tuple[str, ...] = (), max_bytes: int = MAX_BODY_BYTES
) -> dict[str, Any]:
    """Parse the request body as one JSON object with every `required` field; unknown fields are refused so typos do
    not pass silently."""
    _check_content_type(event)
    data = _body_bytes(event, max_bytes)
    try:
        # Strict UTF-8: no BOM, no UTF-16/32 guessing (json.loads would guess from bytes), no lone surrogates.
        body = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8, bad JSON, duplicate fields, NaN and integers longer than Python's digit
        # limit; RecursionError deep nesting. All are the client's mistake, never a 500.
        message = "The request body is not valid JSON (UTF-8, no duplicate fields)."
        raise ApiError(400, "invalid_json", message) from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, "unknown_field", f"Unknown field(s): {', '.join(unknown)}.")
    for name in required:
        if name not in body:
            raise ApiError(400, "missing_field", f"{name} is required.")
    return body


def no_body(event: Event) -> None:
    """A route that takes no body: a request with none, or with an empty JSON object (what a client that always
    sends JSON sends), passes; any other body is refused as `json_body` refuses it (an unknown field, bad JSON, not
    JSON), so a client that thinks it can send options learns it cannot."""
    if event.get("body"):
        json_body(event, allowed=frozenset())


def query_parameters(event: Event, *, allowed: frozenset[str] = frozenset()) -> dict[str, str]:
    """The query string as API Gateway gives it (repeated names joined by commas); undeclared names are refused."""
    params = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ApiError(400, "unknown_parameter", f"Unknown query parameter(s): {', '.join(unknown)}.")
    return params


@dataclass(frozen=True)
class Route(Generic[S]):
    """One route of the HTTP API: its key, the Lambda function serving it, and the function's action for it."""

    method: str
    path: str
    function: str
    """Name of the handler module (and Lambda function) serving the route."""
    action: Callable[[Event, S], Response]
    query: frozenset[str] = frozenset()
    """Query parameters the route accepts; any other is refused before the action runs."""
    public: bool = False
    """Served without a signed-in user (no JWT authorizer); every other route needs one."""

    @property
    def key(self) -> str:
        """API Gateway route key, e.g. `GET /api/jobs/{id}`."""
        return f"{self.method} {self.path}"


class Router(Generic[S]):
    """The routes one Lambda function serves, each declared next to its action (Powertools' resolver shape):

        router = Router[ApiServices]("jobs", aws_calls=2)

        @router.route("GET", "/api/jobs/{id}")
        def get_job(event, services): ...

    `handlers.routes` collects every router's routes into the one table that the Pulumi program, local mode and the
    OpenAPI checks read.
    """

    def __init__(self, function: str, *, aws_calls: int, call_limits: CallLimits = API_CALLS) -> None:
        """`aws_calls`: the most AWS calls one request to this function makes one after another, each bounded by
        `call_limits` (its clients' timeouts and attempts); its Lambda timeout is sized from both
        (`timeout_seconds`)."""
        self.function = function
        self.aws_calls = aws_calls
        self.call_limits = call_limits
        self.routes: list[Route[S]] = []

    @property
    def timeout_seconds(self) -> int:
        """The function's Lambda timeout: its slowest request path with every call at its worst."""
        return function_timeout_seconds(self.call_limits, self.aws_calls)

    def route(
        self, method: str, path: str, *, query: frozenset[str] = frozenset(), public: bool = False
    ) -> Callable[[Callable[[Event, S], Response]], Callable[[Event, S], Response]]:
        def register(action: Callable[[Event, S], Response]) -> Callable[[Event, S], Response]:
            self.routes.append(Route(method, path, self.function, action, query, public))
            return action
        return register

    def resolve(self, event: Event, services: S) -> Response:
        """Call the action for the event's route key, turning ApiError into its response.

        Query parameters the route does not declare are refused before its action runs. Unexpected exceptions
        propagate: the platform logs them and answers 500, which is right for a server fault.
        """
        key = route_key(event)
        route = next((r for r in self.routes if r.key == key), None)
        try:
            if route is None:
                raise ApiError(404, "not_found", f"No route for {key or 'this request'}.")
            if not route.public and claimed_sub(event) is None:
                return json_response(401, UNAUTHORIZED)
            query_parameters(event, allowed=route.query)
            return route.action(event, services)
        except ApiError as error:
            # The route key and the error code only: the message may quote what the client sent (an unknown field
            # or parameter name), which must never reach a log line.
            log.info("request refused", extra={"route": route.key if route else None, "error_code": error.code,
                                               "http_status": error.status})
            return error_response(error)
