"""The benchmark picture, drawn from a committed run: every panel's legend leaves its data readable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.bench.figures import Figure
from local.bench.picture import render

QUOTED_RUN = Path(__file__).parents[2] / "bench-results" / "20261129T144602Z.json"


@pytest.fixture(scope="module")
def picture() -> Iterator[Any]:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    report = json.loads(QUOTED_RUN.read_text(encoding="utf-8"))
    fig = render([Figure(**f) for f in report["figures"]], "test")
    fig.canvas.draw()
    yield fig
    plt.close(fig)


def data_boxes(ax: Any, renderer: Any) -> list[Any]:
    """Where the panel's data are drawn, in display coordinates: each bar, each plotted point."""
    bars = [patch.get_window_extent(renderer) for patch in ax.patches if patch.get_height() > 0]
    points = [ax.transData.transform(xy) for line in ax.lines if line.get_marker() not in (None, "None", "")
              for xy in line.get_xydata()]
    return bars + [(x, y) for x, y in points]


def overlaps(legend_box: Any, data: Any) -> bool:
    if isinstance(data, tuple):
        return bool(legend_box.contains(*data))
    return bool(legend_box.overlaps(data))


@pytest.mark.parametrize("panel", range(4))
def test_no_legend_covers_a_bar_or_a_point(picture: Any, panel: int) -> None:
    ax = picture.axes[panel]
    renderer = picture.canvas.get_renderer()
    legend = ax.get_legend()
    assert legend is not None, f"{ax.get_title()}: no legend"
    box = legend.get_window_extent(renderer)
    data = data_boxes(ax, renderer)
    assert data, f"{ax.get_title()}: nothing drawn"
    covered = [d for d in data if overlaps(box, d)]
    assert covered == [], f"{ax.get_title()}: the legend covers {len(covered)} of {len(data)} bars/points"
