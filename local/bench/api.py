"""API latency of each route, p50 / p95 / p99, from 1 client and from many at once, against `GET /api/health`
(the floor of the server: routing and the HTTP layer, no authorizer, no AWS call).

Each round sends every route its requests from 1 client, then from `api_clients` clients at once; a percentile's
min / median / max are over the rounds. On a deployed stack `POST /api/jobs` is left out (each would start a VM);
the pipeline figures time its submissions there.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from local.bench.children import run_child
from local.bench.figures import Figure, Target, figure, percentile
from local.bench.plan import Plan
from local.bench.stacks import Stack, local_stack, remote_stack
from local.client import ApiClient, access_token

GROUP = "api"
HEALTH = "GET /api/health"
PERCENTILES = (50, 95, 99)
TARGET_FACTOR = 10.0
"""No route's p99 at many clients above this many times its p50 at one client."""


def stack_for(plan: Plan) -> AbstractContextManager[Stack]:
    return remote_stack(plan.remote) if plan.remote else local_stack(launch=False)


def client_tokens(stack: Stack, clients: int) -> list[str]:
    """One user per client on a local stack (many clients are many users; one user's submissions all update one
    counter item, whose concurrent transactions moto's server answers with 500s); the one user of a deployed
    stack for all."""
    if stack.pipeline is None:
        return [stack.token]
    users = [stack.pipeline.create_user(f"bench-client-{i}@example.com") for i in range(1, clients)]
    return [stack.token, *(access_token(stack.url, user.email, user.password) for user in users)]


class Requests:
    """One user's requests of each route; `POST /api/jobs` gets a fresh uploaded key each time (one upload, one
    job), `GET /api/jobs/{id}` reads a job of that user."""

    def __init__(self, url: str, token: str, with_jobs: bool) -> None:
        self.token = token
        self.client = ApiClient(url, token)
        self.with_jobs = with_jobs
        listed = self.client.get("/api/jobs").json().get("jobs", [])
        self.job_id = listed[0]["id"] if listed else self.client.submit("bench.txt", b"bench", "bench")["id"]

    def routes(self) -> list[str]:
        names = [HEALTH, "POST /api/uploads", "GET /api/jobs/{id}", "GET /api/jobs"]
        return [*names, "POST /api/jobs"] if self.with_jobs else names

    def make(self, route: str) -> dict[str, Any]:
        if route == HEALTH:
            return {"method": "GET", "path": "/api/health", "expect": 200}
        if route == "POST /api/uploads":
            return {"method": "POST", "path": "/api/uploads", "json": {"filename": "b.txt", "size": 5}, "expect": 201}
        if route == "GET /api/jobs/{id}":
            return {"method": "GET", "path": f"/api/jobs/{self.job_id}", "expect": 200}
        if route == "GET /api/jobs":
            return {"method": "GET", "path": "/api/jobs", "expect": 200}
        key = self.client.upload("bench.txt", b"bench")
        return {"method": "POST", "path": "/api/jobs", "json": {"input_text": "bench", "key": key}, "expect": 201}


def run_round(stack: Stack, users: Sequence[Requests], clients: int, per_client: int,
              notes: list[str]) -> dict[str, list[float]]:
    """Latencies per route; an answer other than the expected one is counted in `notes`."""
    mine = [users[i % len(users)] for i in range(clients)]
    phases = [{"route": route, "clients": [{"token": made.token, "requests": [made.make(route) for _ in
                                                                             range(per_client)]} for made in mine]}
              for route in users[0].routes()]
    with tempfile.TemporaryDirectory() as scratch:
        spec = Path(scratch) / "spec.json"
        spec.write_text(json.dumps({"url": stack.url, "phases": phases}), encoding="utf-8")
        run = run_child([sys.executable, "-m", "local.bench.apiload", str(spec)])
    answered = json.loads(run.stdout)
    for route, wrong in answered["unexpected"].items():
        if wrong:
            notes.append(f"{route}, {clients} client(s): {len(wrong)} of {clients * per_client} answers unexpected, "
                         f"e.g. {wrong[0]}")
    return {route: [float(ms) for ms in values] for route, values in answered["latencies"].items()}


def measure(plan: Plan, notes: list[str]) -> tuple[list[Figure], list[Target]]:
    levels = (1, plan.api_clients)
    rounds: dict[int, list[dict[str, list[float]]]] = {level: [] for level in levels}
    with stack_for(plan) as stack:
        users = [Requests(stack.url, token, with_jobs=plan.remote is None)
                 for token in client_tokens(stack, plan.api_clients)]
        for _ in range(plan.api_rounds):
            rounds[1].append(run_round(stack, users, 1, plan.api_requests, notes))
            rounds[plan.api_clients].append(run_round(stack, users, plan.api_clients, plan.requests_per_client,
                                                      notes))
    routes = users[0].routes()
    return route_figures(routes, rounds), targets(routes, rounds, plan.api_clients)


def per_round(rounds: Sequence[dict[str, list[float]]], route: str, p: int) -> list[float]:
    return [percentile(r[route], p / 100) for r in rounds]


def route_figures(routes: Sequence[str], rounds: dict[int, list[dict[str, list[float]]]]) -> list[Figure]:
    figures = []
    for route in routes:
        for clients, results in rounds.items():
            for p in PERCENTILES:
                baseline = None if route == HEALTH else per_round(results, HEALTH, p)
                figures.append(figure(f"{route} p{p}, {clients} client{'s' if clients > 1 else ''}", "ms",
                                      per_round(results, route, p), baseline, group=GROUP, route=route,
                                      clients=clients, percentile=p))
    return figures


def targets(routes: Sequence[str], rounds: dict[int, list[dict[str, list[float]]]], many: int) -> list[Target]:
    """p99 at `many` clients over p50 at one client, each the median over the rounds."""
    found = []
    for route in routes:
        one = statistics.median(per_round(rounds[1], route, 50))
        loaded = statistics.median(per_round(rounds[many], route, 99))
        found.append(Target(f"{route}: p99 at {many} clients / p50 at 1 client", loaded / one, TARGET_FACTOR))
    return found
