"""The HTTP API's route table, collected from the routers that declare each route next to its action.

The Pulumi Api component, local mode and the OpenAPI checks all read this one table.
"""

from __future__ import annotations

from typing import Any

from handlers import jobs, manage, upload
from handlers.apigw import Route, Router

ROUTERS: dict[str, Router[Any]] = {
    router.function: router for router in (upload.router, jobs.router, manage.router)
}
"""Lambda function (handler module) name -> its router."""
ROUTES: tuple[Route[Any], ...] = tuple(route for router in ROUTERS.values() for route in router.routes)
HTTP_FUNCTIONS = tuple(sorted(ROUTERS))
