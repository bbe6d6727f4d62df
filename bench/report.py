"""The suite's output: a Markdown table per figure, a summary of ratios, and JSON.

Every figure is a dict with ``title``, ``rows``, ``ratios`` and optionally
``targets`` (a ratio's threshold: at least, or at most when the ratio is
listed in ``lower_is_better``) and ``checks`` (exact counts that must hold).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

Figure = dict[str, Any]


def machine() -> dict[str, Any]:
    """What the numbers were measured on; load matters on a shared machine."""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()} ({_os_name()})",
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }


def target_met(figure: Figure, name: str, value: float) -> bool | None:
    threshold = figure.get("targets", {}).get(name)
    if threshold is None:
        return None
    if name in figure.get("lower_is_better", []):
        return bool(value <= threshold)
    return bool(value >= threshold)


def render(figures: list[Figure], described: dict[str, Any]) -> str:
    parts = [_machine_line(described)]
    for figure in figures:
        note = f"\n\n{figure['note']}" if figure.get("note") else ""
        parts.append(f"### {figure['title']}\n\n{_table(figure['rows'])}{note}")
    parts.append("### Ratios and targets\n\n" + _summary(figures))
    return "\n\n".join(parts) + "\n"


def write_json(path: Path, figures: list[Figure], described: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": described, "figures": figures}, indent=2) + "\n")


def _summary(figures: list[Figure]) -> str:
    rows = []
    for figure in figures:
        for name, value in figure.get("ratios", {}).items():
            met = target_met(figure, name, value)
            threshold = figure.get("targets", {}).get(name)
            bound = "≤" if name in figure.get("lower_is_better", []) else "≥"
            rows.append({
                "figure": figure["figure"],
                "measure": name,
                "value": f"{value:.2f}x",
                "target": "-" if threshold is None else f"{bound} {threshold}x",
                "met": "-" if met is None else ("yes" if met else "NO"),
            })
        for name, ok in figure.get("checks", {}).items():
            rows.append({"figure": figure["figure"], "measure": name, "value": str(ok),
                         "target": "True", "met": "yes" if ok else "NO"})
    return _table(rows)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(column, "")) for column in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {count}" for key, count in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _machine_line(described: dict[str, Any]) -> str:
    return (
        f"Measured {described['date']} on {described['cpu']}, {described['cores']} cores, "
        f"{described['memory_gib']} GiB, Python {described['python']}, {described['os']}; "
        f"load average at start {described['load_average_at_start']}."
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float | None:
    try:
        first = Path("/proc/meminfo").read_text().splitlines()[0]
    except OSError:
        return None
    return round(int(first.split()[1]) / 1024**2, 1)


def _os_name() -> str:
    try:
        release = platform.freedesktop_os_release()
    except OSError:
        return "unknown distribution"
    return release.get("PRETTY_NAME", "unknown distribution")
