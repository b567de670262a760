"""What one benchmark run measures, and where: the full and quick plans, and a local or a deployed stack."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from stackspec.settings import StackSettings

PASSWORD_VARIABLE = "BENCH_PASSWORD"
ALL_GROUPS = ("worker", "coldstart", "api", "pipeline")
REMOTE_GROUPS = ("api", "pipeline")
"""Against a deployed stack only what goes over HTTP: the worker and the handlers run inside AWS there."""
MAX_WORKER_RUNS = 15
"""The most copies of each kind a small input gets (`Plan.worker_mib_per_size`)."""


class BenchError(Exception):
    """A benchmark that cannot start, with a sentence saying what to do."""


@dataclass(frozen=True)
class Remote:
    """A deployed stack: its site URL and a user of its pool."""

    url: str
    email: str
    password: str


@dataclass(frozen=True)
class Plan:
    name: str
    worker_sizes_mib: tuple[int, ...]
    worker_runs: int
    """Runs of each copy at every input size; more for small inputs (`worker_mib_per_size`)."""
    coldstart_runs: int
    api_requests: int
    """Requests per route and round from one client; from `api_clients` clients, twice as many in all."""
    api_rounds: int
    api_clients: int
    single_job_runs: int
    burst_jobs: int
    worker_mib_per_size: int = 0
    """At least this many MiB copied per size and kind of copy: a copy of a quarter of a second is at the mercy of
    the machine's noise, so a small input gets more runs (up to `MAX_WORKER_RUNS`)."""
    default_cap: int = StackSettings().max_concurrent_vms
    groups: tuple[str, ...] = ALL_GROUPS
    remote: Remote | None = None

    @property
    def burst_caps(self) -> tuple[int, ...]:
        """A cap above the burst (every job gets a VM at once) and the default cap (jobs queue for a place)."""
        return (self.burst_jobs + 5, self.default_cap)

    def worker_runs_for(self, size_mib: int) -> int:
        return max(self.worker_runs, min(MAX_WORKER_RUNS, -(-self.worker_mib_per_size // size_mib)))

    @property
    def requests_per_client(self) -> int:
        return max(2, self.api_requests // self.api_clients * 2)


FULL = Plan(name="full", worker_sizes_mib=(16, 256, 1024, 4096), worker_runs=3, worker_mib_per_size=256,
            coldstart_runs=20, api_requests=100, api_rounds=3, api_clients=20, single_job_runs=3, burst_jobs=20)
QUICK = Plan(name="quick", worker_sizes_mib=(16, 256, 1024), worker_runs=1, coldstart_runs=2, api_requests=6,
             api_rounds=2, api_clients=20, single_job_runs=1, burst_jobs=6)
"""One copy of each kind per size: the 1 GiB plain copy alone took 12 to 16 s here."""


def plan_for(quick: bool, url: str | None, email: str | None, env: Mapping[str, str]) -> Plan:
    """The plan for the command line: local (every group) or, with `url`, the HTTP groups against that stack."""
    plan = QUICK if quick else FULL
    if not url:
        return plan
    if not url.startswith("https://"):
        raise BenchError(f"BENCH_URL must be the site's https:// address (the stack's siteUrl output), not {url!r}.")
    if not email:
        raise BenchError("BENCH_EMAIL is not set: give the email of a user of that stack "
                         "(make bench BENCH_URL=... BENCH_EMAIL=you@example.com).")
    password = env.get(PASSWORD_VARIABLE, "")
    if not password:
        raise BenchError(f"{PASSWORD_VARIABLE} is not set: export the password of {email} in the environment "
                         f"(it is never taken on the command line), then run make bench again.")
    return replace(plan, groups=REMOTE_GROUPS, remote=Remote(url.rstrip("/"), email, password))
