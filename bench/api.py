"""API latency of each route, p50 / p95 / p99, from 1 client and from many at once, against `GET /api/health`
(the floor of the server: routing and the HTTP layer, no authorizer; on AWS no AWS call, in local mode one
`HeadBucket` to report the emulator).

Each round sends every route its requests from 1 client, then from `api_clients` clients at once; a percentile's
min / median / max are over the rounds. On a local stack each route's CPU per request is measured too (server,
emulator and clients): with it, the least latency many closed-loop clients can see on this machine's cores. On a
deployed stack `POST /api/jobs` is left out (each would start a VM); the pipeline figures time its submissions there.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.children import run_child
from bench.cpu import StackCpu
from bench.figures import Figure, Target, figure, percentile
from bench.plan import Plan
from bench.stacks import Stack, local_stack, remote_stack
from local.client import ApiClient, access_token

GROUP = "api"
HEALTH = "GET /api/health"
PERCENTILES = (50, 95, 99)
TARGET_FACTOR = 10.0
"""No route's p99 at many clients above this many times its p50 at one client."""
CPU_TARGET_FACTOR = 1.2
"""No route's CPU per request at many clients above this many times its CPU per request at one client."""


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


@dataclass(frozen=True)
class Round:
    latencies: dict[str, list[float]]
    """Milliseconds of each request, per route."""
    cpu_ms: dict[str, float]
    """CPU milliseconds per request of each route: the local stack's busy CPU (server and emulator) plus the
    clients'; empty against a deployed stack, whose CPU is AWS's."""


def run_phase(url: str, phase: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        spec = Path(scratch) / "spec.json"
        spec.write_text(json.dumps({"url": url, "phases": [phase]}), encoding="utf-8")
        return json.loads(run_child([sys.executable, "-m", "bench.apiload", str(spec)]).stdout)


def run_round(stack: Stack, users: Sequence[Requests], clients: int, per_client: int, *, notes: list[str],
              meter: StackCpu | None) -> Round:
    """Each route in turn, its clients at once (one load process a route, so that the stack's CPU is read around
    each); an answer other than the expected one is counted in `notes`."""
    mine = [users[i % len(users)] for i in range(clients)]
    latencies: dict[str, list[float]] = {}
    cpu_ms: dict[str, float] = {}
    for route in users[0].routes():
        phase = {"route": route, "clients": [{"token": made.token, "requests": [made.make(route) for _ in
                                                                               range(per_client)]} for made in mine]}
        if meter is not None:
            meter.start()
        answered = run_phase(stack.url, phase)
        stack_seconds = meter.busy() if meter is not None else None
        latencies[route] = [float(ms) for ms in answered["latencies"][route]]
        wrong = answered["unexpected"][route]
        if wrong:
            notes.append(f"{route}, {clients} client(s): {len(wrong)} of {clients * per_client} answers unexpected, "
                         f"e.g. {wrong[0]}")
        if stack_seconds is not None:
            cpu_ms[route] = 1000 * (stack_seconds + answered["cpu_seconds"][route]) / len(latencies[route])
    return Round(latencies, cpu_ms)


def measure(plan: Plan, notes: list[str]) -> tuple[list[Figure], list[Target]]:
    levels = (1, plan.api_clients)
    rounds: dict[int, list[Round]] = {level: [] for level in levels}
    with stack_for(plan) as stack:
        users = [Requests(stack.url, token, with_jobs=plan.remote is None)
                 for token in client_tokens(stack, plan.api_clients)]
        meter = StackCpu(stack.pipeline.emulator_pid) if stack.pipeline is not None else None
        if meter is not None:
            meter.calibrate()
        for _ in range(plan.api_rounds):
            rounds[1].append(run_round(stack, users, 1, plan.api_requests, notes=notes, meter=meter))
            rounds[plan.api_clients].append(run_round(stack, users, plan.api_clients, plan.requests_per_client,
                                                      notes=notes, meter=meter))
    routes = users[0].routes()
    figures = route_figures(routes, rounds)
    found = targets(routes, rounds, plan.api_clients)
    if meter is not None:
        cores = os.cpu_count() or 1
        figures += cpu_figures(routes, rounds, plan.api_clients, cores)
        found += cpu_targets(routes, rounds, plan.api_clients)
        notes += floor_notes(routes, rounds, plan.api_clients, cores)
    return figures, found


def per_round(rounds: Sequence[Round], route: str, p: int) -> list[float]:
    return [percentile(r.latencies[route], p / 100) for r in rounds]


def route_figures(routes: Sequence[str], rounds: dict[int, list[Round]]) -> list[Figure]:
    figures = []
    for route in routes:
        for clients, results in rounds.items():
            for p in PERCENTILES:
                baseline = None if route == HEALTH else per_round(results, HEALTH, p)
                figures.append(figure(f"{route} p{p}, {clients} client{'s' if clients > 1 else ''}", "ms",
                                      per_round(results, route, p), baseline, group=GROUP, route=route,
                                      clients=clients, percentile=p))
    return figures


def targets(routes: Sequence[str], rounds: dict[int, list[Round]], many: int) -> list[Target]:
    """p99 at `many` clients over p50 at one client, each the median over the rounds."""
    found = []
    for route in routes:
        one = statistics.median(per_round(rounds[1], route, 50))
        loaded = statistics.median(per_round(rounds[many], route, 99))
        found.append(Target(f"{route}: p99 at {many} clients / p50 at 1 client", loaded / one, TARGET_FACTOR))
    return found


def cpu_per_request(rounds: Sequence[Round], route: str) -> list[float]:
    return [r.cpu_ms[route] for r in rounds]


def queueing_floor(cpu_ms: float, clients: int, cores: int) -> float:
    """The least mean latency `clients` closed-loop clients can see (Little's law): each sends its next request as
    soon as it has an answer, so `clients` requests are always in the system, and the stack answers at most
    `cores / cpu_ms` of them a millisecond; their mean time in it is then at least `clients * cpu_ms / cores`."""
    return clients * cpu_ms / cores


def cpu_figures(routes: Sequence[str], rounds: dict[int, list[Round]], many: int, cores: int) -> list[Figure]:
    """CPU per request at one client (against health's), at `many` (against the route's own at one client: what
    concurrency adds to each request's work), and the queueing floor at `many` on this machine's cores."""
    figures = []
    for route in routes:
        alone, loaded = cpu_per_request(rounds[1], route), cpu_per_request(rounds[many], route)
        figures.append(figure(f"{route} CPU per request, 1 client", "ms", alone,
                              None if route == HEALTH else cpu_per_request(rounds[1], HEALTH), group=GROUP,
                              route=route, clients=1, kind="cpu"))
        figures.append(figure(f"{route} CPU per request, {many} clients", "ms", loaded, alone, group=GROUP,
                              route=route, clients=many, kind="cpu"))
        figures.append(figure(f"{route} queueing floor, {many} clients ({cores} cores)", "ms",
                              [queueing_floor(ms, many, cores) for ms in loaded], None, group=GROUP, route=route,
                              clients=many, kind="floor"))
    return figures


def cpu_targets(routes: Sequence[str], rounds: dict[int, list[Round]], many: int) -> list[Target]:
    """Concurrency adds no work to a request (no lock spinning, no connection churn, nothing that grows with the
    requests in flight): CPU per request at `many` clients over that at one, each the median over the rounds.

    A one-client median of 0 (the stack's idle rate, subtracted from its busy CPU, ate the requests' work on a busy
    machine) leaves the ratio unmeasured: NaN, a target not met, rather than a run that dies dividing by zero."""
    targets = []
    for route in routes:
        alone = statistics.median(cpu_per_request(rounds[1], route))
        loaded = statistics.median(cpu_per_request(rounds[many], route))
        targets.append(Target(f"{route}: CPU per request at {many} clients / at 1 client",
                              loaded / alone if alone else math.nan, CPU_TARGET_FACTOR))
    return targets


def floor_notes(routes: Sequence[str], rounds: dict[int, list[Round]], many: int, cores: int) -> list[str]:
    """For each route: its p99 at `many` clients beside the target's limit and the queueing floor on these cores.
    With CPU per request unchanged by concurrency and one client's latency about its CPU per request, the floor is
    about `many / cores` times the one-client p50, so a limit of 10 times that p50 is out of reach below
    `many / 10` cores whatever the server does."""
    notes = []
    for route in routes:
        limit = TARGET_FACTOR * statistics.median(per_round(rounds[1], route, 50))
        loaded = statistics.median(per_round(rounds[many], route, 99))
        floor = queueing_floor(statistics.median(cpu_per_request(rounds[many], route)), many, cores)
        notes.append(f"{route}: p99 at {many} clients {loaded:.0f} ms, the target's limit {limit:.0f} ms, the "
                     f"queueing floor on {cores} cores {floor:.0f} ms (mean latency cannot be lower)")
    return notes
