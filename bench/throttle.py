"""429 injection: what survives when API Gateway throttles a fifth of the posts.

The local management endpoint answers a seeded 20 % of posts (retries
included) with 429 ``LimitExceededException``. Compared, on the same targets:

* ``ours`` — ``Delivery.post_all``: full-jitter backoff per target, bounded by
  attempts and by the invocation's deadline, on the worker pool;
* ``naive`` — the tutorial loop with a fail-fast client (one attempt, as a
  client tuned for latency is): every throttled post is lost;
* ``naive+botocore-retry`` — the same loop with botocore's default retry mode
  (``standard``: 3 attempts, jittered backoff with a 1 s base): it retries 429
  but sleeps up to seconds per retry inside a sequential loop, so one throttled
  target delays every target after it, and a target throttled 3 times is lost.

The server counts distinct connections it accepted a post for; ``lost`` is
targets minus that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.fanout import (
    WARMUP_POSTS,
    Run,
    chalice_delivery,
    connection_ids,
    frame,
    naive_client,
    naive_loop,
    timed,
)
from chalicelib.invocation import Deadline
from harness.mgmt_server import ManagementServer

THROTTLE_RATIO = 0.2
DEADLINE_SECONDS = 25.0  # what a Lambda with a 29 s integration timeout has left




def ours(server: ManagementServer, targets: Sequence[str], text: str, delay: float) -> Run:
    delivery = chalice_delivery(server)
    delivery.post_all(connection_ids(WARMUP_POSTS, "w"), text, Deadline.after(30))
    return _throttled_run(server, delay, "ours", targets, lambda: delivery.post_all(
        targets, text, Deadline.after(DEADLINE_SECONDS)
    ).delivered)


def naive_fail_fast(
    server: ManagementServer, targets: Sequence[str], text: str, delay: float
) -> Run:
    client = naive_client(server, retries={"total_max_attempts": 1})
    naive_loop(client, connection_ids(4, "w"), text)
    return _throttled_run(
        server, delay, "naive", targets, lambda: naive_loop(client, targets, text)
    )


def naive_botocore_retry(
    server: ManagementServer, targets: Sequence[str], text: str, delay: float
) -> Run:
    client = naive_client(server)
    naive_loop(client, connection_ids(4, "w"), text)
    return _throttled_run(
        server, delay, "naive+botocore-retry", targets, lambda: naive_loop(client, targets, text)
    )


def _throttled_run(
    server: ManagementServer, delay: float, variant: str, targets: Sequence[str],
    send: Callable[[], int],
) -> Run:
    """Reset the server's counters after warm-up, then time the fan-out under 429s."""
    server.configure(delay=delay, throttle_ratio=THROTTLE_RATIO, seed=len(variant))
    return timed(variant, targets, send)


def measure(
    server: ManagementServer, count: int, delay: float, retry_sample: int
) -> dict[str, Any]:
    """The 429 figure; botocore's retrying loop gets only ``retry_sample`` targets.

    Its backoff sleeps up to seconds per retry inside a sequential loop,
    so a full-size run would take minutes; its time is compared per target.
    """
    text = frame()
    rows: list[dict[str, Any]] = []
    plan = ((ours, count), (naive_fail_fast, count), (naive_botocore_retry, retry_sample))
    for variant, size in plan:
        server.configure(delay=delay)
        run = variant(server, connection_ids(size), text, delay)
        stats = server.stats()
        rows.append(run.row() | {
            "ms_per_target": round(run.seconds / run.targets * 1000, 2),
            "throttled_posts": stats["throttled"],
            "lost": run.targets - stats["connections"],
            "duplicates": stats["duplicates"],
        })
    cell = {row["variant"]: row for row in rows}
    return {
        "figure": "throttle",
        "title": f"{THROTTLE_RATIO:.0%} of posts answered 429, {count} connections "
                 f"(botocore-retry: {retry_sample}), {delay * 1000:g} ms per post",
        "rows": rows,
        "ratios": {
            "ours_vs_naive_delivered":
                cell["ours"]["delivered"] / max(1, cell["naive"]["delivered"]),
            "naive_vs_ours_seconds": cell["naive"]["seconds"] / cell["ours"]["seconds"],
            "naive_retry_vs_ours_ms_per_target":
                cell["naive+botocore-retry"]["ms_per_target"] / cell["ours"]["ms_per_target"],
        },
        "checks": {"ours_lost_zero": cell["ours"]["lost"] == 0},
    }
