"""The suite's charts: SVG files written next to its JSON (pygal, a development requirement).

* ``<stem>-fanout.svg`` — posts per second of each transport in the fan-out
  figure, CPU per post beside it;
* ``<stem>-scale.svg`` — broadcast time against the bound N / R as N grows.

A figure that was not measured in the run gets no chart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pygal
from pygal.style import CleanStyle

Figure = dict[str, Any]


def write(figures: list[Figure], json_path: Path) -> list[Path]:
    """Write every chart the figures allow; returns the files written."""
    by_name = {figure["figure"]: figure for figure in figures}
    written = []
    for name, draw in (("fanout", fanout_chart), ("scale", scale_chart)):
        if name in by_name:
            path = json_path.with_name(f"{json_path.stem}-{name}.svg")
            path.write_bytes(draw(by_name[name]).render())
            written.append(path)
    return written


def fanout_chart(figure: Figure) -> Any:
    rows = figure["rows"]
    chart = pygal.Bar(
        style=CleanStyle, title=figure["title"], y_title="posts per second",
        secondary_range=(0, max(row["cpu_ms_per_post"] for row in rows) * 1.2),
        legend_at_bottom=True, print_values=True, width=900, height=500,
    )
    chart.x_labels = [row["variant"] for row in rows]
    chart.add("posts/s", [row["posts_per_s"] for row in rows])
    chart.add("CPU ms per post", [row["cpu_ms_per_post"] for row in rows], secondary=True)
    return chart


def scale_chart(figure: Figure) -> Any:
    rows = figure["rows"]
    chart = pygal.XY(
        style=CleanStyle, title=figure["title"], x_title="connections (N)",
        y_title="seconds", legend_at_bottom=True, dots_size=4, width=900, height=500,
    )
    chart.add("broadcast time", [(row["connections"], row["seconds"]) for row in rows])
    chart.add("bound N / R", [(row["connections"], row["bound_s"]) for row in rows])
    chart.add("1.25 x bound", [(row["connections"], row["bound_s"] * 1.25) for row in rows])
    return chart
