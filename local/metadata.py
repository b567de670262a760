"""The instance metadata service (IMDSv2) of local VMs, plus the local "hypervisor" control the shims call.

Each VM reaches it at `http://127.0.0.1:<port>/<instance-id>` through `AWS_EC2_METADATA_SERVICE_ENDPOINT`, the
variable the user-data reads (and the AWS SDKs honour). As on EC2 with `HttpTokens=required`, every metadata read
needs a token from `PUT /latest/api/token`, and instance tags are served because the launch template enables them.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TOKEN_TTL = 21600


class InstanceDirectory(Protocol):
    def instance(self, instance_id: str) -> Mapping[str, Any] | None:
        """The instance as DescribeInstances returns it, while it runs on this host."""

    def shutdown(self, instance_id: str, when: str) -> bool:
        """Handle `shutdown` inside the VM: `now`, `+N` minutes, or `cancel`."""


def metadata_paths(instance: Mapping[str, Any], region: str) -> dict[str, str]:
    """The metadata categories the user-data and SDKs read."""
    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
    placement = instance.get("Placement", {})
    paths = {
        "instance-id": instance["InstanceId"],
        "instance-type": instance.get("InstanceType", ""),
        "ami-id": instance.get("ImageId", ""),
        "local-ipv4": instance.get("PrivateIpAddress", ""),
        "placement/region": region,
        "placement/availability-zone": placement.get("AvailabilityZone", ""),
        "tags/instance": "\n".join(sorted(tags)),
    }
    paths.update({f"tags/instance/{key}": value for key, value in tags.items()})
    return paths


def listing(paths: Iterable[str], prefix: str) -> str | None:
    """IMDS directory listing: the next path segment of every path under `prefix`."""
    base = prefix.rstrip("/") + "/" if prefix else ""
    children = sorted({p[len(base):].split("/")[0] + ("/" if "/" in p[len(base):] else "")
                       for p in paths if p.startswith(base)})
    return "\n".join(children) if children else None


class MetadataApp:
    """WSGI app: `/<instance-id>/latest/...` (IMDSv2) and `/<instance-id>/_host/shutdown` (the shutdown shim)."""

    def __init__(self, directory: InstanceDirectory, region: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self.region = region
        self.clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.url_map = Map([
            Rule("/<instance_id>/latest/api/token", methods=["PUT"], endpoint="token"),
            Rule("/<instance_id>/latest/meta-data/", methods=["GET"], endpoint="meta", defaults={"path": ""}),
            Rule("/<instance_id>/latest/meta-data/<path:path>", methods=["GET"], endpoint="meta"),
            Rule("/<instance_id>/_host/shutdown", methods=["POST"], endpoint="shutdown"),
        ])

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            endpoint, args = adapter.match()
        except Exception as error:  # werkzeug's NotFound / MethodNotAllowed are responses themselves
            return error(environ, start_response)  # type: ignore[operator]
        instance = self.directory.instance(args["instance_id"])
        if instance is None:
            response = Response("no such instance on this host", 404)
        else:
            response = getattr(self, endpoint)(request, instance, args)
        return response(environ, start_response)

    def token(self, request: Request, instance: Mapping[str, Any], args: Mapping[str, str]) -> Response:
        if request.headers.get("X-Forwarded-For"):
            return Response("Forbidden", 403)  # IMDSv2 refuses proxied token requests
        try:
            ttl = int(request.headers.get(TOKEN_TTL_HEADER, ""))
        except ValueError:
            return Response("Bad Request", 400)
        if not 1 <= ttl <= MAX_TOKEN_TTL:
            return Response("Bad Request", 400)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = (instance["InstanceId"], self.clock() + ttl)
        return Response(token, 200, content_type="text/plain", headers={TOKEN_TTL_HEADER: str(ttl)})

    def _authorized(self, request: Request, instance_id: str) -> bool:
        with self._lock:
            owner, expires = self._tokens.get(request.headers.get(TOKEN_HEADER, ""), ("", 0.0))
        return owner == instance_id and self.clock() < expires

    def meta(self, request: Request, instance: Mapping[str, Any], args: Mapping[str, str]) -> Response:
        if not self._authorized(request, instance["InstanceId"]):
            return Response("Unauthorized", 401)
        paths = metadata_paths(instance, self.region)
        path = args["path"].rstrip("/")
        value = paths.get(path) if not args["path"].endswith("/") else None
        if value is None:
            value = listing(paths, path)
        if value is None:
            return Response("Not Found", 404)
        return Response(value, 200, content_type="text/plain")

    def shutdown(self, request: Request, instance: Mapping[str, Any], args: Mapping[str, str]) -> Response:
        when = request.form.get("when", "now")
        if when not in {"now", "cancel"} and not (when.startswith("+") and when[1:].isdigit()):
            return Response(f"bad time {when!r}", 400)
        self.directory.shutdown(instance["InstanceId"], when)
        return Response("ok", 200)
