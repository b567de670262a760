"""`docs/bench.png`: pipeline latency per phase, API latency, and against input size the worker's time, bytes
through the VM, CPU time and peak RSS, each beside the plain streaming copy's.

Drawn from a run's figures (their `group` and `params`), so a saved JSON can be drawn again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.figures import Figure
from bench.probe import NETWORK_LIMIT_MIB

DPI = 90
LEGEND_SHARE = 0.35
"""The top share of the API panel (and of the log-scale panels against size) kept free for the legend."""
LOG_KINDS = ("time", "cpu", "network")
"""Figures against size that span orders of magnitude (the worker's and the plain copy's): drawn on a log scale."""


def select(figures: Sequence[Figure], group: str, **params: Any) -> list[Figure]:
    return [f for f in figures if f.group == group and all(f.params.get(k) == v for k, v in params.items())]


def draw(figures: Sequence[Figure], path: Path, title: str) -> None:
    import matplotlib.pyplot as plt  # noqa: PLC0415 (only the picture needs it, and it is slow to import)

    fig = render(figures, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)  # at the figure's own DPI
    plt.close(fig)


def render(figures: Sequence[Figure], title: str) -> Any:
    """The picture's matplotlib figure (six panels), not yet saved."""
    import matplotlib  # noqa: PLC0415 (only the picture needs it, and it is slow to import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(3, 2, figsize=(13, 13), dpi=DPI)
    phases(axes[0][0], figures)
    api(axes[0][1], figures)
    against_size(axes[1][0], figures, "time", "seconds", "Time of the copy (median)")
    against_size(axes[1][1], figures, "network", "MiB sent + received", "Bytes through the VM (median)")
    against_size(axes[2][0], figures, "cpu", "seconds", "CPU time of the copying process: the VM's work (median)")
    against_size(axes[2][1], figures, "rss", "MiB", "Peak RSS of the process (median)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def phases(ax: Any, figures: Sequence[Figure]) -> None:
    """One horizontal bar per configuration, its median phases stacked in order."""
    shown = [f for f in select(figures, "pipeline") if f.params.get("phase") not in (None, "total")]
    labels = list(dict.fromkeys(str(f.params["label"]) for f in shown))
    names = list(dict.fromkeys(str(f.params["phase"]) for f in shown))
    for name in names:
        lefts = [sum(f.median for f in shown if f.params["label"] == label and names.index(f.params["phase"]) <
                     names.index(name)) for label in labels]
        widths = [next((f.median for f in shown if f.params == {"label": label, "phase": name}), 0.0)
                  for label in labels]
        ax.barh(labels, widths, left=lefts, label=name)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (median per phase)")
    ax.set_title("Pipeline: submit → SUCCEEDED by phase")
    ax.legend(fontsize="small")


def against_size(ax: Any, figures: Sequence[Figure], kind: str, unit: str, title: str) -> None:
    for who, label in (("worker", "worker (write_output: copied inside S3 from 5 MiB)"),
                       ("copy", "plain boto3 streaming copy")):
        points = sorted(select(figures, "worker", kind=kind, who=who), key=lambda f: f.params["size_mib"])
        ax.plot([f.params["size_mib"] for f in points], [f.median for f in points], marker="o", label=label)
    floors = [f.baseline for f in select(figures, "worker", kind=kind, who="worker") if f.baseline]
    if kind == "rss" and floors:
        ax.axhline(floors[0], linestyle="--", color="grey", label="Python + boto3 + a client")
    if kind == "network":
        ax.axhline(NETWORK_LIMIT_MIB, linestyle="--", color="grey", label="target: at most 6 MiB + the text")
    if kind in LOG_KINDS:
        ax.set_yscale("log")
        leave_room_above(ax, LEGEND_SHARE)
    else:
        ax.set_ylim(0, ax.get_ylim()[1] / (1 - LEGEND_SHARE))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("input size (MiB)")
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left")


def api(ax: Any, figures: Sequence[Figure]) -> None:
    """p50 and p99 of each route, from 1 client and from many; on a local stack, the queueing floor at many."""
    shown = [f for f in select(figures, "api") if "percentile" in f.params]
    routes = list(dict.fromkeys(str(f.params["route"]) for f in shown))
    series = sorted({(int(f.params["clients"]), int(f.params["percentile"])) for f in shown
                     if f.params["percentile"] in (50, 99)})
    width = 0.8 / max(1, len(series))
    for i, (clients, p) in enumerate(series):
        values = [next((f.median for f in shown if f.params == {"route": r, "clients": clients, "percentile": p}),
                       0.0) for r in routes]
        ax.bar([x + i * width for x in range(len(routes))], values, width, label=f"p{p}, {clients} client(s)")
    floors = {str(f.params["route"]): f for f in select(figures, "api", kind="floor")}
    if floors:
        many = max(clients for clients, _ in series)
        beside = series.index((many, 50))  # the floor bounds the mean: drawn on the p50 bar at many clients
        ax.scatter([x + beside * width for x, r in enumerate(routes) if r in floors],
                   [floors[r].median for r in routes if r in floors], marker="_", s=600, color="black", zorder=3,
                   label=f"queueing floor, {many} clients (CPU per request x clients / cores)")
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(routes))], routes, rotation=20,
                  fontsize="small")
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.set_title("API latency per route")
    leave_room_above(ax, LEGEND_SHARE)
    ax.legend(fontsize="small", loc="upper left")


def leave_room_above(ax: Any, share: float) -> None:
    """Raise a log axis' top so that its data stay in the bottom `1 - share` of the panel."""
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top * (top / bottom) ** (share / (1 - share)))
