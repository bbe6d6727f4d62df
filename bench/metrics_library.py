"""The metrics library's cold-start cost: Powertools beside aws-embedded-metrics.

Each sample is a fresh interpreter with Lambda's environment that imports what
every Chalice app imports (boto3, ``chalice.app``), then the library, and
writes one EMF document to standard output — the work a cold function adds
for its first metrics. ``app+first flush`` is the real path: ``import app``
(the Lambda init) then :func:`chalicelib.metrics.flush` of one recorded value,
which imports Powertools on that first flush; it is compared with ``import app``
alone. Runs alternate between variants, so
drifting machine load hits all alike; medians are reported, with the size on
disk of each library and what it requires (what the deployment package carries).

Powertools' Logger and BatchProcessor are measured the same way (one event line;
a batch of one record): the candidates to replace ``chalicelib.logs`` and the worker's
partial batch response.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from bench.coldstart import ENVIRONMENT

ROOT = Path(__file__).resolve().parent.parent
BASE = "import boto3, chalice.app\n"
VARIANTS = {
    "baseline": BASE,
    "powertools": BASE + (
        "from aws_lambda_powertools.metrics import EphemeralMetrics\n"
        "m = EphemeralMetrics(namespace='Bench', default_dimensions={'service': 'bench'})\n"
        "m.add_metric(name='Frames', unit='Count', value=1)\n"
        "m.flush_metrics()\n"
    ),
    "aws-embedded-metrics": BASE + (
        "import asyncio\n"
        "from aws_embedded_metrics.logger.metrics_logger_factory import create_metrics_logger\n"
        "m = create_metrics_logger()\n"
        "m.set_namespace('Bench')\n"
        "m.put_metric('Frames', 1, 'Count')\n"
        "asyncio.run(m.flush())\n"
    ),
    "powertools Logger": BASE + (
        "from aws_lambda_powertools import Logger\n"
        "Logger(service='bench').info({'route': '$connect', 'outcome': 'ok'})\n"
    ),
    "powertools BatchProcessor": BASE + (
        "from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType\n"
        "from aws_lambda_powertools.utilities.batch import process_partial_response\n"
        "record = {'messageId': '1', 'receiptHandle': 'r', 'body': 'x', 'attributes': {},\n"
        "          'messageAttributes': {}, 'md5OfBody': '', 'eventSource': 'aws:sqs',\n"
        "          'eventSourceARN': 'arn:aws:sqs:us-east-1:1:q', 'awsRegion': 'us-east-1'}\n"
        "process_partial_response({'Records': [record]}, lambda record: None,\n"
        "                         BatchProcessor(EventType.SQS), None)\n"
    ),
    "app": "import app\n",
    "app+first flush": (
        "import app\n"
        "from chalicelib import metrics\n"
        "metrics.record(metrics.DISCONNECTS)\n"
        "metrics.flush()\n"
    ),
}
ADDED_TO = {"powertools": "baseline", "aws-embedded-metrics": "baseline",
            "powertools Logger": "baseline", "powertools BatchProcessor": "baseline",
            "app+first flush": "app"}
"""What each variant adds to: a library to what every Chalice app imports, our
first flush to ``import app`` (the Lambda init)."""
LIBRARIES = {"powertools": "aws-lambda-powertools", "aws-embedded-metrics": "aws-embedded-metrics"}
# Lambda's environment (both libraries then write to standard output, as on Lambda).
LAMBDA = {**ENVIRONMENT, "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_EXECUTION_ENV":
          "AWS_Lambda_python3.11", "POWERTOOLS_METRICS_NAMESPACE": "Bench"}


def seconds(code: str) -> float:
    probe = f"import time\nstarted = time.perf_counter()\n{code}" \
            "print(time.perf_counter() - started)\n"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=LAMBDA,
                            capture_output=True, text=True, timeout=60, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def closure_bytes(distribution: str) -> int:
    """Bytes on disk of a distribution and everything it requires (no extras)."""
    seen: set[str] = set()
    pending = [distribution]
    total = 0
    while pending:
        name = pending.pop().lower()
        if name in seen:
            continue
        seen.add(name)
        dist = metadata.distribution(name)
        total += sum(f.size or 0 for f in dist.files or [])
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return total


def measure(runs: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for code in VARIANTS.values():
        seconds(code)  # bytecode caches, as a deployed package has them
    for _ in range(runs):
        for name, code in VARIANTS.items():
            samples[name].append(seconds(code))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    rows = []
    for name, values in samples.items():
        library = LIBRARIES.get(name)
        rows.append({
            "variant": name,
            "median_ms": round(medians[name] * 1000, 1),
            "added_ms": round((medians[name] - medians[ADDED_TO[name]]) * 1000, 1)
            if name in ADDED_TO else "-",
            "min_ms": round(min(values) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
            "ships_mb": round(closure_bytes(library) / 1e6, 1) if library else "-",
        })
    return {
        "figure": "metrics",
        "title": f"Metrics library: import and first EMF document in a fresh interpreter, "
                 f"median of {runs}",
        "rows": rows,
        "ratios": {
            "powertools_vs_baseline": medians["powertools"] / medians["baseline"],
            "embedded_metrics_vs_baseline": medians["aws-embedded-metrics"] / medians["baseline"],
            "first_flush_vs_app": medians["app+first flush"] / medians["app"],
        },
        "lower_is_better": ["powertools_vs_baseline", "embedded_metrics_vs_baseline",
                            "first_flush_vs_app"],
    }
