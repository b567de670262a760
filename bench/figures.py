"""A figure: min / median / max of repeated samples, beside the median of its baseline measured in the same run."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

FIELDS = ("name", "unit", "min", "median", "max", "baseline", "ratio")
"""The keys every figure of the JSON has (`group` and `params` come on top, for the picture)."""


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    min: float
    median: float
    max: float
    baseline: float | None
    """The median of the baseline's samples; None for a figure that splits another (a pipeline phase)."""
    ratio: float | None
    """median / baseline."""
    group: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    """What the picture plots the figure against (input size, phase, clients)."""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "params": dict(self.params)}


def figure(name: str, unit: str, samples: Sequence[float], baseline: Sequence[float] | float | None, *,
           group: str, **params: Any) -> Figure:
    """Summarise `samples` against `baseline` (samples of it, or one value already summarised)."""
    if not samples:
        raise ValueError(f"no samples for {name!r}")
    middle = statistics.median(samples)
    if baseline is None:
        base = None
    elif isinstance(baseline, int | float):
        base = float(baseline)
    else:
        base = statistics.median(baseline)
    ratio = middle / base if base else None
    return Figure(name=name, unit=unit, min=min(samples), median=middle, max=max(samples), baseline=base,
                  ratio=ratio, group=group, params=params)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True)
class Target:
    """One of the issue's targets, checked against this run's figures."""

    name: str
    value: float
    limit: float
    at_most: bool = True
    """True: value <= limit meets it; False: value >= limit does."""

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def to_json(self) -> dict[str, Any]:
        value = None if math.isnan(self.value) else self.value  # JSON has no NaN: an unmeasured value is null
        return {"name": self.name, "value": value, "limit": self.limit, "met": self.met}


def number(value: float | None, unit: str = "") -> str:
    """A figure as the table prints it: three significant digits, or whole numbers from 100 up."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.0f}{unit}" if abs(value) >= 100 else f"{value:.3g}{unit}"


def table(figures: Sequence[Figure], targets: Sequence[Target]) -> str:
    width = max((len(f.name) for f in figures), default=10)
    header = f"{'figure':<{width}}  {'unit':<5} {'min':>8} {'median':>8} {'max':>8} {'baseline':>9} {'ratio':>7}"
    lines = [header, "-" * len(header)]
    lines += [f"{f.name:<{width}}  {f.unit:<5} {number(f.min):>8} {number(f.median):>8} {number(f.max):>8} "
              f"{number(f.baseline):>9} {number(f.ratio, 'x'):>7}" for f in figures]
    if targets:
        lines += ["", "targets:"]
        lines += [f"  {'met   ' if t.met else 'MISSED'} {t.name}: {t.value:.3g} ({'<=' if t.at_most else '>='} "
                  f"{t.limit:.3g})" for t in targets]
    return "\n".join(lines)
