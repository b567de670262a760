"""Handler cold start: import of a Lambda module, then its first request (which builds its config and clients), in
a fresh process, against `import boto3` and one client made in a fresh process.

Timed inside the child from before the first import, so the interpreter's own start (the same for both) is left
out, as on Lambda, whose runtime is up before the function's module is imported.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from bench.children import run_child
from bench.figures import Figure, figure
from bench.plan import Plan
from local.emulator import REGION, aws_environment
from stackspec.settings import StackSettings, api_config, launcher_config

GROUP = "coldstart"
NO_ENDPOINT = "http://127.0.0.1:9"
"""Nothing listens there: the first requests below make no AWS call, and one that did would fail at once."""

UPLOAD_EVENT: dict[str, Any] = {
    "version": "2.0", "routeKey": "POST /api/uploads", "rawPath": "/api/uploads",
    "headers": {"content-type": "application/json"}, "isBase64Encoded": False,
    "body": json.dumps({"filename": "a.txt", "size": 0}),
    "requestContext": {"authorizer": {"jwt": {"claims": {"sub": "bench-user"}}}},
}
HANDLERS: dict[str, tuple[str, dict[str, Any], int]] = {
    "jobs": ("handlers.jobs", {"version": "2.0", "routeKey": "GET /api/health", "rawPath": "/api/health"}, 200),
    "upload": ("handlers.upload", UPLOAD_EVENT, 400),
    "launcher": ("handlers.launcher", {"Records": []}, 0),
}
"""Lambda module -> (module, its first event, the status code it must answer; 0: not an HTTP function). The upload's
first request is an empty file, refused by its checks: a granted upload is counted in DynamoDB (`handlers.grants`),
which no endpoint here answers; the refused one builds the same config and clients and makes no AWS call."""

HANDLER_CHILD = """
import json, sys, time
began = time.perf_counter()
import {module} as handler_module
imported = time.perf_counter()
answer = handler_module.handler(json.loads(sys.argv[1]), None)
done = time.perf_counter()
if {status} and answer.get("statusCode") != {status}:
    sys.exit("unexpected answer: " + json.dumps(answer))
print(json.dumps({{"import": imported - began, "cold": done - began}}))
"""
FLOOR_CHILD = """
import json, time
began = time.perf_counter()
import boto3
imported = time.perf_counter()
boto3.client("s3")
done = time.perf_counter()
print(json.dumps({"import": imported - began, "cold": done - began}))
"""


def child_env() -> dict[str, str]:
    """The handlers' Lambda environment for a stack that exists nowhere (names only), with fake credentials."""
    settings = StackSettings()
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **aws_environment(NO_ENDPOINT, REGION),
        **api_config("coldstart-bucket", "coldstart-table", settings).to_env(),
        **launcher_config("coldstart-table", "lt-coldstart", ["subnet-coldstart"], stack_tag="coldstart",
                          settings=settings).to_env(),
    }


def timings(code: str, env: Mapping[str, str], *args: str) -> dict[str, float]:
    run = run_child([sys.executable, "-c", code, *args], env)
    return {k: float(v) for k, v in json.loads(run.stdout.strip().splitlines()[-1]).items()}


def measure(plan: Plan) -> list[Figure]:
    env = child_env()
    floors: list[dict[str, float]] = []
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in HANDLERS}
    for _ in range(plan.coldstart_runs):  # interleaved: noise falls on handlers and floor alike
        floors.append(timings(FLOOR_CHILD, env))
        for name, (module, event, status) in HANDLERS.items():
            samples[name].append(timings(HANDLER_CHILD.format(module=module, status=status), env, json.dumps(event)))
    floor_import = [1000 * f["import"] for f in floors]
    floor_cold = [1000 * f["cold"] for f in floors]
    figures = [figure("bare import boto3 + s3 client", "ms", floor_cold, None, group=GROUP, kind="floor")]
    for name, runs in samples.items():
        figures += [
            figure(f"{name} handler import", "ms", [1000 * r["import"] for r in runs], floor_import, group=GROUP,
                   kind="import", handler=name),
            figure(f"{name} handler import + first request", "ms", [1000 * r["cold"] for r in runs], floor_cold,
                   group=GROUP, kind="cold", handler=name),
        ]
    return figures
