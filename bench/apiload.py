"""The client side of the API figures, in its own process so that the clients' Python does not compete with the
local server's for one interpreter lock.

    python -m bench.apiload <spec.json>

The spec: `{"url", "phases": [{"route", "clients": [{"token", "requests": [request, ...]}, ...]}]}`, a request
being `{"method", "path", "json"?, "expect"}`. Each phase runs its clients at once, one thread and HTTP session each,
every client sending its requests one after the other. Prints `{"latencies": {route: [milliseconds, ...]},
"unexpected": {route: [answer, ...]}, "cpu_seconds": {route: seconds}}`: an answer that was not the expected status
is timed and also listed; `cpu_seconds` is this process's CPU time over the phase (its start-up left out).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from bench.cpu import own_cpu_seconds


def run_client(url: str, token: str, requests_: list[dict[str, Any]], out: list[float], errors: list[str]) -> None:
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    for request in requests_:
        began = time.perf_counter()
        answer = session.request(request["method"], url + request["path"], json=request.get("json"), timeout=60)
        out.append(1000 * (time.perf_counter() - began))
        if answer.status_code != request["expect"]:
            errors.append(f"{request['method']} {request['path']}: HTTP {answer.status_code} {answer.text[:200]}")


def run_phase(url: str, phase: dict[str, Any], errors: list[str]) -> list[float]:
    latencies: list[list[float]] = [[] for _ in phase["clients"]]
    threads = [threading.Thread(target=run_client, args=(url, client["token"], client["requests"], out, errors))
               for client, out in zip(phase["clients"], latencies, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [ms for client in latencies for ms in client]


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    latencies: dict[str, list[float]] = {}
    unexpected: dict[str, list[str]] = {}
    cpu_seconds: dict[str, float] = {}
    for phase in spec["phases"]:
        route = phase["route"]
        unexpected[route] = []
        began = own_cpu_seconds()
        latencies[route] = run_phase(spec["url"], phase, unexpected[route])
        cpu_seconds[route] = own_cpu_seconds() - began
    print(json.dumps({"latencies": latencies, "unexpected": unexpected, "cpu_seconds": cpu_seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
