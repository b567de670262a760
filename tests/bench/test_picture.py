"""The benchmark picture, drawn from a committed run: every panel's legend leaves its data readable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.figures import Figure
from bench.picture import render

QUOTED_RUN = Path(__file__).parents[2] / "bench-results" / "20261207T043725Z.json"


@pytest.fixture(scope="module")
def picture() -> Iterator[Any]:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    report = json.loads(QUOTED_RUN.read_text(encoding="utf-8"))
    fig = render([Figure(**f) for f in report["figures"]], "test")
    fig.canvas.draw()
    yield fig
    plt.close(fig)


def bars(ax: Any, renderer: Any) -> list[Any]:
    """Where the panel's bars are drawn, in display coordinates."""
    return [patch.get_window_extent(renderer) for patch in ax.patches if patch.get_height() > 0]


def points(ax: Any) -> list[tuple[float, float]]:
    """Where the panel's plotted points (line markers) are drawn, in display coordinates."""
    return [tuple(ax.transData.transform(xy)) for line in ax.lines if line.get_marker() not in (None, "None", "")
            for xy in line.get_xydata()]


@pytest.mark.parametrize("panel", range(6))
def test_no_legend_covers_a_bar_or_a_point(picture: Any, panel: int) -> None:
    ax = picture.axes[panel]
    renderer = picture.canvas.get_renderer()
    legend = ax.get_legend()
    assert legend is not None, f"{ax.get_title()}: no legend"
    box = legend.get_window_extent(renderer)
    drawn_bars, drawn_points = bars(ax, renderer), points(ax)
    assert drawn_bars or drawn_points, f"{ax.get_title()}: nothing drawn"
    covered = [b for b in drawn_bars if box.overlaps(b)] + [p for p in drawn_points if box.contains(*p)]
    assert covered == [], (f"{ax.get_title()}: the legend covers {len(covered)} of "
                           f"{len(drawn_bars) + len(drawn_points)} bars/points")
