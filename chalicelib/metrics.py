"""CloudWatch metrics in Embedded Metric Format: the only code that names a metric.

:data:`METRICS` declares every metric the functions emit — its name, unit,
the dimension sets it is recorded under and what it means. The deployment
templates' alarms and dashboards are checked against this table
(``tests/deploy/test_observability.py``), so no alarm can watch a metric the
code does not emit.

Handlers record into the container's :data:`RECORDER` while they work, from
any thread (a fan-out posts on a pool). ``app.py``'s middleware calls
:func:`flush` when each invocation ends, however it ends: it prints one EMF
document per dimension set to standard output, where Lambda hands it to
CloudWatch Logs and CloudWatch turns it into metrics — no API call, no IAM
permission. Powertools for AWS Lambda writes the documents (its
``EphemeralMetrics``); it is imported by the first flush that has something
to write, so ``import app`` (the Lambda init) does not pay for it.

The namespace is the stage's ``POWERTOOLS_METRICS_NAMESPACE``
(``Switchboard/<stage>`` in ``.chalice/config.json``), and every metric carries
the dimension ``service`` (``POWERTOOLS_SERVICE_NAME``, ``switchboard``).
``POWERTOOLS_METRICS_DISABLED=true`` turns the output off (``make run`` does,
to keep the terminal readable). Dimension values come from fixed vocabularies —
action names, error codes, refusal reasons — never from client input, so the
number of metrics (each one billed) stays bounded.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger("switchboard.metrics")

COUNT = "Count"
MILLISECONDS = "Milliseconds"
NAMESPACE_VARIABLE = "POWERTOOLS_METRICS_NAMESPACE"
SERVICE_VARIABLE = "POWERTOOLS_SERVICE_NAME"
DEFAULT_NAMESPACE = "Switchboard"
DEFAULT_SERVICE = "switchboard"
SERVICE_DIMENSION = "service"


@dataclass(frozen=True)
class Metric:
    """One metric: its name, unit and the dimension sets it is recorded under."""

    name: str
    unit: str
    description: str
    dimensions: tuple[tuple[str, ...], ...] = ((),)
    """Dimension sets beside ``service``; ``()`` is ``service`` alone. A value is
    recorded under every set at once, so an alarm can watch the total while a
    dashboard breaks it down."""

    @property
    def dimension_names(self) -> frozenset[str]:
        return frozenset(name for group in self.dimensions for name in group)


CONNECTS_ACCEPTED = Metric(
    "ConnectsAccepted", COUNT, "handshakes $connect accepted (a retried $connect included)"
)
CONNECTS_REFUSED = Metric(
    "ConnectsRefused", COUNT,
    "handshakes $connect refused, in total and by Reason: missing_token, token_too_long, "
    "expired, bad_signature, invalid_token, invalid_claims, revoked, id_clash, registration_failed",
    ((), ("Reason",)),
)
DISCONNECTS = Metric("Disconnects", COUNT, "$disconnect events handled")
FRAMES = Metric(
    "Frames", COUNT,
    "client frames answered, by Outcome (ok or the error code) and by Action and Outcome "
    "(Action is 'unparsed' for a frame whose action could not be read)",
    (("Outcome",), ("Action", "Outcome")),
)
POSTS_DELIVERED = Metric("PostsDelivered", COUNT, "posts API Gateway accepted")
POSTS_GONE = Metric("PostsGone", COUNT, "posts answered 410: the connection had gone")
POSTS_FAILED = Metric(
    "PostsFailed", COUNT, "posts that failed for good (after retries, or at the deadline)"
)
POSTS_THROTTLED = Metric(
    "PostsThrottled", COUNT, "posts answered 429 (or another throttling error) and retried"
)
FANOUT_DURATION = Metric(
    "FanoutDuration", MILLISECONDS, "time one fan-out spent posting to its inline targets"
)
TARGETS_QUEUED = Metric(
    "TargetsQueued", COUNT, "targets handed to the fan-out queue for the worker"
)
WORKER_BATCH_FAILURES = Metric(
    "WorkerBatchFailures", COUNT,
    "queue records the worker reported failed (they come back; after 5 receives, the DLQ)",
)
HISTORY_WRITES = Metric("HistoryWrites", COUNT, "messages stored in a room's or user's stream")
UNREADABLE_ITEMS = Metric(
    "UnreadableItems", COUNT,
    "stored items a read skipped because they could not be decoded (invalid Unicode, "
    "missing attributes); each is logged with its key",
)

METRICS: tuple[Metric, ...] = (
    CONNECTS_ACCEPTED,
    CONNECTS_REFUSED,
    DISCONNECTS,
    FRAMES,
    POSTS_DELIVERED,
    POSTS_GONE,
    POSTS_FAILED,
    POSTS_THROTTLED,
    FANOUT_DURATION,
    TARGETS_QUEUED,
    WORKER_BATCH_FAILURES,
    HISTORY_WRITES,
    UNREADABLE_ITEMS,
)
"""Every metric the functions emit; the templates are checked against it."""

UNPARSED_ACTION = "unparsed"
"""The Action dimension of a frame whose action could not be read."""
OK = "ok"
"""The Outcome dimension of a frame answered without an error."""


def namespace(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(NAMESPACE_VARIABLE, "").strip() or DEFAULT_NAMESPACE


def service(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(SERVICE_VARIABLE, "").strip() or DEFAULT_SERVICE


_Key = tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, str], ...]]
"""A document's dimension sets and dimension values."""


class Recorder:
    """What one invocation measured so far, grouped into EMF documents; thread-safe.

    Counts are summed (one value per metric and document); other units keep
    every value, so CloudWatch has the distribution (percentiles).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._documents: dict[_Key, dict[Metric, list[float]]] = {}

    def record(self, metric: Metric, value: float = 1, **dimensions: str) -> None:
        """Add a value; ``dimensions`` names exactly the metric's dimensions."""
        if set(dimensions) != metric.dimension_names:
            raise ValueError(
                f"{metric.name} takes the dimensions {sorted(metric.dimension_names)}, "
                f"not {sorted(dimensions)}"
            )
        key = (metric.dimensions, tuple(sorted(dimensions.items())))
        with self._lock:
            values = self._documents.setdefault(key, {}).setdefault(metric, [])
            if metric.unit == COUNT and values:
                values[0] += value
            else:
                values.append(float(value))

    def take(self) -> dict[_Key, dict[Metric, list[float]]]:
        """Everything recorded so far, which the recorder then forgets."""
        with self._lock:
            documents, self._documents = self._documents, {}
        return documents


RECORDER = Recorder()
"""The container's recorder; :func:`flush` empties it at the end of every invocation."""


def record(metric: Metric, value: float = 1, **dimensions: str) -> None:
    """Record into the container's recorder."""
    RECORDER.record(metric, value, **dimensions)


def flush(recorder: Recorder = RECORDER) -> None:
    """Print what was recorded as EMF documents; never raises.

    A metric that cannot be written must not turn a handled event into a
    failed one: the failure is logged (with its class only) and the values dropped.
    """
    documents = recorder.take()
    if not documents:
        return
    try:
        from aws_lambda_powertools.metrics import EphemeralMetrics

        ns, svc = namespace(), service()
        for (dimension_sets, values), metrics in documents.items():
            emf = EphemeralMetrics(namespace=ns, default_dimensions={SERVICE_DIMENSION: svc})
            dimensions = dict(values)
            first, *others = dimension_sets
            for name in first:
                emf.add_dimension(name, dimensions[name])
            for group in others:
                emf.add_dimensions(**{name: dimensions[name] for name in group})
            for metric, recorded in metrics.items():
                for value in recorded:
                    emf.add_metric(name=metric.name, unit=metric.unit, value=value)
            emf.flush_metrics()
    except Exception as error:
        logger.error("metrics could not be written (%s)", type(error).__name__)
