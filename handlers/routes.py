"""The HTTP API's routes: one table used by the Pulumi Api component, the handlers and local mode."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    """Name of the handler module (and Lambda function) serving the route."""

    @property
    def key(self) -> str:
        """API Gateway route key, e.g. `GET /api/jobs/{id}`."""
        return f"{self.method} {self.path}"


ROUTES = (
    Route("POST", "/api/uploads", "upload"),
    Route("POST", "/api/jobs", "jobs"),
    Route("GET", "/api/jobs", "jobs"),
    Route("GET", "/api/jobs/{id}", "jobs"),
    Route("GET", "/api/health", "jobs"),
)

HTTP_FUNCTIONS = tuple(sorted({route.function for route in ROUTES}))
