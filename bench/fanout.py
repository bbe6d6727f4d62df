"""Fan-out throughput over TLS: the lean transport, botocore, the boto3 ceiling, the naive loop.

Every variant posts the same rendered frame to the same connection ids through
the same local HTTPS management endpoint (:mod:`harness.mgmt_server`, its own
process, trusted through ``AWS_CA_BUNDLE`` as a deployment would):

* ``lean`` — the real code path: :class:`chalicelib.delivery.Delivery` over a
  real Chalice ``websocket_api`` whose session is
  :class:`chalicelib.management.ManagementSession` with the ``lean`` transport
  (botocore's SigV4, ``http.client`` keep-alive connections);
* ``botocore`` — the same with ``MANAGEMENT_TRANSPORT=botocore`` (the code
  path before the lean transport);
* ``ceiling`` — a bare boto3 client with ``max_pool_connections=N`` driven by
  ``ThreadPoolExecutor(N)``: the threaded boto3 loop, the fastest anything
  that sends through boto3 gets;
* ``naive`` — the tutorial design: one boto3 client with default settings,
  ``post_to_connection`` for one target after another.

Registry reads are left out on purpose (they are :mod:`bench.reads`' figure),
so the times here are the delivery loop alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from chalice.app import Chalice

from chalicelib import protocol
from chalicelib.delivery import WORKERS, Delivery
from chalicelib.invocation import Deadline
from chalicelib.management import ManagementSession
from harness.mgmt_server import ManagementServer, calibrate

ROOT = Path(__file__).resolve().parent.parent
STAGE = "bench"
REGION = "us-east-1"
WARMUP_POSTS = 2 * WORKERS


@dataclass(frozen=True)
class Run:
    """One timed delivery of a frame to every target."""

    variant: str
    targets: int
    delivered: int
    seconds: float
    cpu_seconds: float  # this process, all threads: what the machine's load cannot inflate much

    @property
    def per_second(self) -> float:
        return self.targets / self.seconds if self.seconds else 0.0

    def row(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "targets": self.targets,
            "delivered": self.delivered,
            "seconds": round(self.seconds, 3),
            "posts_per_s": round(self.per_second, 1),
            "cpu_ms_per_post": round(self.cpu_seconds / self.targets * 1000, 3),
        }


def connection_ids(count: int, prefix: str = "c") -> list[str]:
    """API Gateway-like connection ids, distinct per run."""
    return [f"{prefix}{index:06d}=" for index in range(count)]


def frame() -> str:
    """Rendered once, as the app does, and posted as is to every target."""
    return protocol.broadcast("bench", "x" * 64, "2026-01-01T00:00:00.000Z")


def chalice_delivery(
    server: ManagementServer, transport: str = "lean", workers: int = WORKERS
) -> Delivery:
    """``Delivery`` over a real Chalice ``websocket_api`` pointed at the local server.

    Chalice builds ``https://{domain}/{stage}``, which is the server's URL;
    the server's certificate is trusted through ``AWS_CA_BUNDLE``.
    """
    app = Chalice(app_name="switchboard-bench")
    app.experimental_feature_flags.update(["WEBSOCKETS"])
    app.websocket_api.session = ManagementSession(
        pool_size=workers, transport=transport, region_name=REGION
    )
    delivery = Delivery(app.websocket_api, workers=workers)
    delivery.ensure_endpoint(lambda: server.url(STAGE))
    return delivery


def naive_client(server: ManagementServer, **config: Any) -> Any:
    """The tutorial's client: botocore defaults unless told otherwise."""
    return boto3.session.Session().client(
        "apigatewaymanagementapi", endpoint_url=server.url(STAGE), region_name=REGION,
        config=Config(**config) if config else None,
    )


def naive_loop(client: Any, targets: Sequence[str], text: str) -> int:
    """One post after another; an error skips the target, as tutorials do."""
    delivered = 0
    for connection_id in targets:
        try:
            client.post_to_connection(ConnectionId=connection_id, Data=text)
            delivered += 1
        except ClientError:
            continue
    return delivered


def ceiling_loop(client: Any, pool: ThreadPoolExecutor, targets: Sequence[str], text: str) -> int:
    def post(connection_id: str) -> int:
        client.post_to_connection(ConnectionId=connection_id, Data=text)
        return 1

    return sum(pool.map(post, targets))


def timed(variant: str, targets: Sequence[str], send: Callable[[], int]) -> Run:
    started, cpu_started = time.perf_counter(), time.process_time()
    delivered = send()
    return Run(
        variant, len(targets), delivered,
        time.perf_counter() - started, time.process_time() - cpu_started,
    )


def ours(transport: str) -> Callable[[ManagementServer, Sequence[str], str], Run]:
    def run(server: ManagementServer, targets: Sequence[str], text: str) -> Run:
        delivery = chalice_delivery(server, transport)
        delivery.post_all(connection_ids(WARMUP_POSTS, "w"), text, Deadline.after(30))
        return timed(transport, targets, lambda: delivery.post_all(
            targets, text, Deadline.after(600)
        ).delivered)

    run.__name__ = transport
    return run


lean, botocore_transport = ours("lean"), ours("botocore")


def naive(server: ManagementServer, targets: Sequence[str], text: str) -> Run:
    client = naive_client(server)
    naive_loop(client, connection_ids(WORKERS, "w"), text)
    return timed("naive", targets, lambda: naive_loop(client, targets, text))


def ceiling(server: ManagementServer, targets: Sequence[str], text: str) -> Run:
    client = naive_client(server, max_pool_connections=WORKERS)
    with ThreadPoolExecutor(WORKERS) as pool:
        ceiling_loop(client, pool, connection_ids(WARMUP_POSTS, "w"), text)
        return timed("ceiling", targets, lambda: ceiling_loop(client, pool, targets, text))


def measure(
    server: ManagementServer, count: int, delay: float, repeats: int,
    progress: Callable[[str], Any] = lambda _: None,
) -> dict[str, Any]:
    """The fan-out figure, every post checked by the server: exactly once, or the run fails.

    ``lean``, ``botocore`` and ``ceiling`` are CPU-bound, so they alternate
    ``repeats`` times and their medians are compared: load from elsewhere on a
    shared machine hits all alike. ``naive`` is bound by latency, not CPU, and
    runs once.
    """
    text = frame()
    server_alone = calibrate(server, delay, 2 * WORKERS)
    runs: dict[str, list[Run]] = {"lean": [], "botocore": [], "ceiling": [], "naive": []}
    schedule: list[Callable[[ManagementServer, Sequence[str], str], Run]] = [
        lean, botocore_transport, ceiling
    ] * repeats
    schedule.insert(1, naive)
    exactly_once = True
    for number, variant in enumerate(schedule, 1):
        server.configure(delay=delay)
        run = variant(server, connection_ids(count), text)
        stats = server.stats()
        accepted = stats["connections"] - _warm_targets(run.variant)
        if run.delivered != accepted or run.delivered != count:
            raise AssertionError(f"{run} but the server accepted {accepted}")
        exactly_once = exactly_once and stats["duplicates"] == 0
        runs[run.variant].append(run)
        progress(f"fanout {number}/{len(schedule)}: {run.variant} "
                 f"{run.per_second:.0f} posts/s")
    median = {name: _median(found) for name, found in runs.items()}
    return {
        "figure": "fanout",
        "title": f"Fan-out over TLS to {count} connections, {delay * 1000:g} ms per post, "
                 f"{WORKERS} threads (median of {repeats} for lean, botocore and ceiling)",
        "rows": [run.row() | {"runs": len(runs[run.variant])} for run in median.values()],
        "server_alone": server_alone,
        "note": (
            f"The management endpoint alone (raw asyncio TLS client, {2 * WORKERS} posts in "
            f"flight): {server_alone['mean_ms']} ms per post, "
            f"{server_alone['posts_per_s']:g} posts/s."
        ),
        "ratios": {
            "lean_vs_ceiling": median["lean"].per_second / median["ceiling"].per_second,
            "lean_vs_naive": median["lean"].per_second / median["naive"].per_second,
            "lean_vs_botocore": median["lean"].per_second / median["botocore"].per_second,
            "ceiling_cpu_vs_lean_cpu": median["ceiling"].cpu_seconds / median["lean"].cpu_seconds,
            # What this machine, right now, allows any design that sends through boto3.
            "ceiling_vs_naive": median["ceiling"].per_second / median["naive"].per_second,
        },
        "targets": {"lean_vs_ceiling": 2.5, "lean_vs_naive": 25.0},
        "checks": {
            "all_delivered": all(
                run.delivered == count for found in runs.values() for run in found
            ),
            "exactly_once": exactly_once,
        },
    }


def _median(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]


def _warm_targets(variant: str) -> int:
    return WORKERS if variant == "naive" else WARMUP_POSTS
