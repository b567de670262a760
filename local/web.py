"""The local stand-in for CloudFront + the HTTP API: `frontend/` files, `/config.json`, and `/api/*` -> handlers.

Each `/api/*` request becomes an HTTP API payload format 2.0 event for the same handler function the Lambda runs,
and the handler's response is returned as API Gateway would return it. Routing comes from `handlers.routes.ROUTES`,
the table the Pulumi Api component builds its routes from; werkzeug does the HTTP parsing and serving.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import send_from_directory
from werkzeug.wrappers import Request, Response

from handlers.apigw import Route
from local.authorizer import JwtAuthorizer, Unauthorized
from local.events import LOCAL_ACCOUNT_ID
from stackspec.headers import api_security_headers, security_headers
from stackspec.settings import API_PREFIX

log = logging.getLogger("filepipe.local")

Handler = Callable[[Mapping[str, Any], Any], Mapping[str, Any]]
TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded)|[^;]*\+(json|xml))", re.I)
HEALTH_ROUTE_KEY = "GET /api/health"
READ_CHUNK_BYTES = 64 * 1024
PAYLOAD_LIMIT_BYTES = 10 * 1024 * 1024
"""API Gateway's HTTP API payload quota (10 MB, "Quotas for configuring and running an HTTP API"): a larger body
never reaches a Lambda. Refused here from its Content-Length (or, streamed, once the limit is passed) before it is
read; smaller bodies go to the handler, which applies the API's own, much smaller body limit as on AWS."""
OPENAPI_PATH = f"{API_PREFIX}/openapi.json"
OPENAPI_FILE = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
"""The API's OpenAPI document, served at OPENAPI_PATH in local mode only (not a route of the HTTP API)."""


def rule_path(route_path: str) -> str:
    """API Gateway `/api/jobs/{id}` -> werkzeug `/api/jobs/<id>` (one path segment, as `{id}` matches)."""
    return re.sub(r"\{(\w+)\}", r"<\1>", route_path)


def http_api_event(request: Request, route: Route, path_parameters: Mapping[str, str], data: bytes) -> dict[str, Any]:
    """The HTTP API payload 2.0 event API Gateway would give the Lambda for this request (body `data`)."""
    headers: dict[str, str] = {}
    for header, value in request.headers.items():
        name = header.lower()
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": request.path,
        "rawQueryString": request.query_string.decode("latin-1"),
        "headers": headers,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": "local",
            "domainName": request.host,
            "domainPrefix": request.host.split(".")[0],
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route.key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if request.args:
        event["queryStringParameters"] = {key: ",".join(request.args.getlist(key)) for key in request.args}
    if request.cookies:
        event["cookies"] = [f"{name}={value}" for name, value in request.cookies.items()]
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if data:
        if TEXT_TYPES.match(request.content_type or ""):
            try:
                event["body"] = data.decode("utf-8")
            except UnicodeDecodeError:
                event["body"], event["isBase64Encoded"] = base64.b64encode(data).decode("ascii"), True
        else:
            event["body"], event["isBase64Encoded"] = base64.b64encode(data).decode("ascii"), True
    return event


def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is longer than `limit`: refused from its Content-Length without reading,
    or, streamed (chunked), once `limit + 1` bytes have arrived, so at most `limit` bytes are ever held.

    (Not werkzeug's `max_content_length`: on a chunked body its reader stops at the limit and returns the body
    truncated, without an error.)"""
    if request.content_length is not None and request.content_length > limit:
        return None
    data = bytearray()
    while len(data) <= limit:
        chunk = request.stream.read(min(READ_CHUNK_BYTES, limit + 1 - len(data)))
        if not chunk:
            return bytes(data)
        data += chunk
    return None


def to_response(result: Mapping[str, Any]) -> Response:
    """A Lambda proxy result (format 2.0) as the HTTP response API Gateway sends."""
    if "statusCode" not in result:  # HTTP API infers a 200 JSON response from a bare value
        return Response(json.dumps(result), 200, content_type="application/json")
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    response = Response(data, int(result["statusCode"]))
    response.headers.clear()
    for name, value in (result.get("headers") or {}).items():
        response.headers[name] = str(value)
    for cookie in result.get("cookies") or []:
        response.headers.add("Set-Cookie", cookie)
    if data:  # a 204 carries no body, so no content type
        response.headers.setdefault("Content-Type", "application/json")
    return response


def unauthorized() -> Response:
    """What API Gateway's JWT authorizer answers (an HTTP API cannot customise it)."""
    return Response(json.dumps({"message": "Unauthorized"}), 401, content_type="application/json")


def api_error(status: int, code: str, message: str) -> Response:
    """The contract's error shape, for requests that never reach a handler."""
    body = json.dumps({"error": {"code": code, "message": message}})
    return Response(body, status, content_type="application/json", headers={"Cache-Control": "no-store"})


def server_refusal(status: int) -> Response:
    """What the HTTP server refuses before any application code runs (http.server's checks on the request line and
    headers), in the contract's shape rather than http.server's HTML page; see `local.serving`."""
    if status == 414:
        return api_error(414, "uri_too_long", "The request line is too long.")
    if status == 431:
        return api_error(431, "headers_too_large", "A request header is too long, or there are too many.")
    return api_error(400, "bad_request", "The request is not valid HTTP/1.1.")


def internal_error() -> Response:
    """A Lambda crash or a fault of this server: API Gateway answers 500 (the traceback goes to the logs)."""
    return api_error(500, "internal_error", "The server failed to answer; try again later.")


def is_api(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def raw_path(request: Request) -> str:
    """The path as the client sent it. werkzeug's server collapses leading slashes (`//api/jobs` reaches the app as
    `/api/jobs`) but keeps the request target in `RAW_URI`."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
    return str(raw).split("?", 1)[0]


def has_empty_segment(request: Request) -> bool:
    """`//api/jobs`, `/api//jobs`: API Gateway matches no route for a path with an empty segment (404)."""
    return "//" in raw_path(request)


class LocalWebApp:
    """WSGI application: static site, `config.json`, and the API routes mapped to handler functions."""

    def __init__(
        self,
        *,
        routes: Iterable[Route],
        handlers: Mapping[str, Handler],
        frontend_dir: Path,
        site_config: Mapping[str, Any],
        emulator_health: Callable[[], dict[str, Any]] | None = None,
        authorizer: JwtAuthorizer | None = None,
        payload_limit: int = PAYLOAD_LIMIT_BYTES,
        connect_sources: Sequence[str] = (),
    ) -> None:
        """`connect_sources`: the origins besides the site the page may connect to (the emulator, which receives
        the presigned POST), for the CSP's `connect-src`."""
        self.routes = tuple(routes)
        self.handlers = dict(handlers)
        self.frontend_dir = Path(frontend_dir)
        self.site_config = dict(site_config)
        self.emulator_health = emulator_health
        self.authorizer = authorizer
        self.payload_limit = payload_limit
        self.connect_sources = tuple(connect_sources)
        # Strict: `/api/jobs/` is not `/api/jobs` (API Gateway answers 404 to the trailing slash).
        self.url_map = Map(
            [Rule(rule_path(r.path), methods=[r.method], endpoint=r) for r in self.routes],
            strict_slashes=True, merge_slashes=False,
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Exception:  # never werkzeug's HTML error page
            log.exception("local web server failed on %s %s", request.method, request.path)
            response = internal_error() if is_api(request.path) else Response("Internal Server Error", 500)
        return response(environ, start_response)

    @staticmethod
    def server_refusal(status: int) -> Response:
        """Called by `local.serving`'s request handler for what http.server refuses itself."""
        return server_refusal(status)

    def dispatch(self, request: Request) -> Response:
        if is_api(request.path):
            response = self.api(request) if not has_empty_segment(request) else api_error(
                404, "not_found", f"No API route for {request.method} {raw_path(request)}.")
            response.headers.update(api_security_headers(https=request.is_secure))
            return response
        if has_empty_segment(request):
            return self.not_found(raw_path(request))
        return self.static(request)

    def api(self, request: Request) -> Response:
        if request.path == OPENAPI_PATH:
            return self.openapi(request)
        matched = self.match(request)
        if isinstance(matched, Response):
            return matched
        route, params = matched
        data = read_body(request, self.payload_limit)
        if data is None:
            return api_error(413, "body_too_large", f"The request body is larger than {self.payload_limit} bytes.")
        event = http_api_event(request, route, params, data)
        if not route.public and self.authorizer is not None:
            try:
                claims = self.authorizer.claims(request.headers.get("Authorization"))
            except Unauthorized:
                return unauthorized()
            event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
        return self.invoke(route, event)

    def match(self, request: Request) -> tuple[Route[Any], Mapping[str, str]] | Response:
        """The route and path parameters of an `/api/` request, or the 404/405 API Gateway would answer."""
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            route, params = adapter.match(method=request.method)
        except MethodNotAllowed as error:
            allowed = ", ".join(sorted(m for m in error.valid_methods or [] if m != "HEAD"))
            response = api_error(405, "method_not_allowed", f"{request.method} is not allowed here; use {allowed}.")
            response.headers["Allow"] = allowed
            return response
        except HTTPException:
            return api_error(404, "not_found", f"No API route for {request.method} {request.path}.")
        return route, params

    def invoke(self, route: Route[Any], event: dict[str, Any]) -> Response:
        try:
            result = self.handlers[route.function](event, None)
        except Exception:  # a Lambda crash: API Gateway answers 500 and the traceback goes to the logs
            log.exception("handler %s raised on %s", route.function, route.key)
            return internal_error()
        response = to_response(result)
        if route.key == HEALTH_ROUTE_KEY and response.status_code == 200 and self.emulator_health is not None:
            response = self.with_emulator_health(response)
        return response

    def openapi(self, request: Request) -> Response:
        if request.method not in {"GET", "HEAD"}:
            response = api_error(405, "method_not_allowed", f"{request.method} is not allowed here; use GET.")
            response.headers["Allow"] = "GET"
            return response
        return Response(OPENAPI_FILE.read_bytes(), content_type="application/json",
                        headers={"Cache-Control": "no-cache"})

    def with_emulator_health(self, response: Response) -> Response:
        """Local mode's health (a 200 of the handler) also reports the emulator; 503 when it does not answer.
        Refusals (`?x=1` is a 400) are left in the contract's error shape."""
        emulator = self.emulator_health() if self.emulator_health else {}
        try:
            body = json.loads(response.get_data())
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {"handler": body}
        body["emulator"] = emulator
        status = response.status_code if emulator.get("up") else 503
        if not emulator.get("up"):
            body["status"] = "degraded"
        response.set_data(json.dumps(body))
        response.status_code = status
        return response

    def not_found(self, path: str) -> Response:
        response = Response(f"Not found: {path}", 404, content_type="text/plain")
        response.headers.update(security_headers(self.connect_sources, https=False))
        return response

    def static(self, request: Request) -> Response:
        """A site file, with the security headers CloudFront's response headers policy adds on AWS."""
        response = self.site_file(request)
        response.headers.update(security_headers(self.connect_sources, https=request.is_secure))
        return response

    def site_file(self, request: Request) -> Response:
        if request.method not in {"GET", "HEAD"}:
            return Response("Method Not Allowed", 405, headers={"Allow": "GET, HEAD"})
        if request.path == "/config.json":
            return Response(json.dumps(self.site_config), content_type="application/json",
                            headers={"Cache-Control": "no-store"})
        path = request.path.lstrip("/")
        if path == "" or path.endswith("/"):
            path += "index.html"
        try:
            response = send_from_directory(self.frontend_dir, path, request.environ)
        except NotFound:
            return Response(f"Not found: /{path}", 404, content_type="text/plain")
        response.headers["Cache-Control"] = "no-cache"
        return response
