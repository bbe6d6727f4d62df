"""Reading CloudWatch Embedded Metric Format documents the way CloudWatch does.

A document is a JSON object on a line of its own, whose ``_aws`` member lists
metric directives: a namespace, dimension sets and metric definitions. Each
metric of a directive is recorded once per dimension set, with the values the
document holds under its name and the dimensions' values under theirs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Point:
    """One metric under one dimension set, as CloudWatch extracts it from a document."""

    namespace: str
    name: str
    unit: str
    dimensions: tuple[tuple[str, str], ...]
    values: tuple[float, ...]


def documents(output: str) -> list[dict[str, Any]]:
    """The EMF documents among the lines a function printed."""
    found = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            if isinstance(document, dict) and "_aws" in document:
                found.append(document)
    return found


def points(output: str) -> list[Point]:
    extracted = []
    for document in documents(output):
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                raw = document[metric["Name"]]
                values = tuple(float(v) for v in (raw if isinstance(raw, list) else [raw]))
                for dimension_set in directive["Dimensions"]:
                    dimensions = tuple(sorted((name, document[name]) for name in dimension_set))
                    extracted.append(Point(directive["Namespace"], metric["Name"],
                                           metric.get("Unit", "None"), dimensions, values))
    return extracted


def total(extracted: list[Point], name: str, **dimensions: str) -> float:
    """The sum CloudWatch would show for ``name`` under exactly these dimensions
    (``service`` is implied)."""
    wanted = {"service": "switchboard", **dimensions}
    return sum(
        sum(point.values) for point in extracted
        if point.name == name and dict(point.dimensions) == wanted
    )
