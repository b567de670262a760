"""`python -m bench [--quick] [--url https://<site> --email <user>]`: run the figures, print the table, write
`bench-results/<timestamp>.json` and the picture (`docs/bench.png` for a full local run)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import api, coldstart, pipeline, throughput
from bench.children import REPO_ROOT, ChildFailedError
from bench.figures import Figure, Target, table
from bench.picture import draw
from bench.plan import BenchError, Plan, plan_for
from bench.probe import NETWORK_LIMIT_MIB

RESULTS_DIR = REPO_ROOT / "bench-results"
PICTURE = REPO_ROOT / "docs" / "bench.png"
SPEEDUP_TARGET = 10.0
"""From 1 GiB on, the worker at least this many times faster than the plain streaming copy."""
SPEEDUP_FROM_MIB = 1024
IMPORT_TARGET = 1.2
"""A handler's import at most this many times bare `import boto3`."""


def machine() -> dict[str, Any]:
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return {"nproc": os.cpu_count(), "memory_gib": round(pages * page_size / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average": os.getloadavg()}


def worker_targets(figures: Sequence[Figure]) -> list[Target]:
    def worker(kind: str) -> list[Figure]:
        return [f for f in figures if f.params.get("kind") == kind and f.params.get("who") == "worker"]

    found = [Target(f"{f.name}, most of its runs (MiB)", f.max, NETWORK_LIMIT_MIB) for f in worker("network")]
    found += [Target(f"plain copy time / worker time, {f.params['size_mib']} MiB", 1 / f.ratio if f.ratio else 0.0,
                     SPEEDUP_TARGET, at_most=False)
              for f in worker("time") if f.params["size_mib"] >= SPEEDUP_FROM_MIB]
    rss = sorted(worker("rss"), key=lambda f: f.params["size_mib"])
    if len(rss) > 2:  # the two largest inputs, both copied inside S3: the worker's memory must not grow between them
        found.append(Target(f"worker peak RSS at {rss[-1].params['size_mib']} MiB / at {rss[-2].params['size_mib']} "
                            "MiB (flat)", rss[-1].median / rss[-2].median, 1.2))
    return found


def import_targets(figures: Sequence[Figure]) -> list[Target]:
    return [Target(f"{f.name} / bare import boto3", f.ratio or 0.0, IMPORT_TARGET)
            for f in figures if f.params.get("kind") == "import"]


def run(plan: Plan, notes: list[str], progress: bool = True) -> tuple[list[Figure], list[Target]]:
    """Every group of the plan; what went wrong without stopping the run (unexpected answers) goes to `notes`."""
    figures: list[Figure] = []
    targets: list[Target] = []
    for group in plan.groups:
        began = time.monotonic()
        if progress:
            print(f"bench: {group}...", file=sys.stderr, flush=True)
        if group == "worker":
            found = throughput.measure(plan)
            targets += worker_targets(found)
        elif group == "coldstart":
            found = coldstart.measure(plan)
            targets += import_targets(found)
        elif group == "api":
            found, api_targets = api.measure(plan, notes)
            targets += api_targets
        else:
            found = pipeline.measure(plan)
        figures += found
        if progress:
            print(f"bench: {group} took {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    return figures, targets


def results(plan: Plan, figures: Sequence[Figure], targets: Sequence[Target], notes: Sequence[str],
            seconds: float) -> dict[str, Any]:
    return {
        "plan": plan.name,
        "stack": plan.remote.url if plan.remote else "local",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "machine": machine(),
        "figures": [f.to_json() for f in figures],
        "targets": [t.to_json() for t in targets],
        "notes": list(notes),
    }


def write(report: Mapping[str, Any], results_dir: Path, stamp: str) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{stamp}.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="filepipe's figures, each beside its baseline.")
    parser.add_argument("--quick", action="store_true", help="small inputs and few runs (under two minutes)")
    parser.add_argument("--url", default=os.environ.get("BENCH_URL"),
                        help="a deployed stack's site (https://...): API and pipeline figures only")
    parser.add_argument("--email", default=os.environ.get("BENCH_EMAIL"),
                        help="a user of that stack; the password comes from BENCH_PASSWORD")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    parser.add_argument("--picture", type=Path, help=f"default: {PICTURE} for a full local run, else next to the JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    args = parse_args(argv)
    try:
        plan = plan_for(args.quick, args.url, args.email, env)
    except BenchError as err:
        print(f"make bench: {err}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("filepipe").setLevel(logging.WARNING)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    print(f"filepipe bench ({plan.name}) against {plan.remote.url if plan.remote else 'a local stack'}: "
          f"{', '.join(plan.groups)}", flush=True)
    began = time.monotonic()
    notes: list[str] = []
    try:
        figures, targets = run(plan, notes)
    except (BenchError, ChildFailedError) as err:
        print(f"make bench: {err}", file=sys.stderr)
        return 1
    report = results(plan, figures, targets, notes, time.monotonic() - began)
    print(table(figures, targets))
    for note in notes:
        print(f"note: {note}")
    path = write(report, args.results, stamp)
    picture = args.picture or (PICTURE if plan.name == "full" and plan.remote is None else path.with_suffix(".png"))
    draw(figures, picture, f"filepipe bench ({plan.name}, {report['stack']}, {report['machine']['nproc']} cores)")
    print(f"\nwrote {path} and {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
