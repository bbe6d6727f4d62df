"""Cold start: ``import app`` (the Lambda init) beside a minimal Chalice WebSocket app.

Each sample is a fresh interpreter that times only the import, so the
interpreter's own start-up (the same for both) does not dilute the ratio.
Runs alternate between the two apps, so drifting machine load hits both
alike, and the median is reported. Both get one untimed run first so their
bytecode caches exist, as they do in a deployed package.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APPS = {"ours": ROOT, "minimal": ROOT / "bench" / "minimal_app"}
PROBE = (
    "import time\n"
    "started = time.perf_counter()\n"
    "import app\n"
    "print(time.perf_counter() - started)\n"
)
# Lambda's environment for a Python function, minus anything the host adds.
ENVIRONMENT = {
    "PATH": "/usr/bin:/bin",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
}


def import_seconds(app_dir: Path) -> float:
    """Seconds one fresh interpreter spends importing the app in ``app_dir``."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=app_dir, env=ENVIRONMENT,
        capture_output=True, text=True, timeout=60, check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def measure(runs: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {name: [] for name in APPS}
    for path in APPS.values():
        import_seconds(path)
    for _ in range(runs):
        for name, path in APPS.items():
            samples[name].append(import_seconds(path))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "figure": "coldstart",
        "title": f"Cold start: import in a fresh interpreter, median of {runs}",
        "rows": [
            {
                "app": name,
                "median_ms": round(medians[name] * 1000, 1),
                "min_ms": round(min(samples[name]) * 1000, 1),
                "max_ms": round(max(samples[name]) * 1000, 1),
            }
            for name in APPS
        ],
        "ratios": {"ours_vs_minimal": medians["ours"] / medians["minimal"]},
        "targets": {"ours_vs_minimal": 1.25},
        "lower_is_better": ["ours_vs_minimal"],
    }
