"""Fan-out throughput: Switchboard's delivery beside the naive loop and the boto3 ceiling.

All three post the same rendered frame to the same connection ids through the
same local management endpoint (:mod:`bench.mgmt_server`):

* ``ours`` — the real code path: :class:`chalicelib.delivery.Delivery` over a
  real Chalice ``websocket_api``, whose session comes from
  :func:`chalicelib.aws.management_session` (pool sized to the workers);
* ``naive`` — the tutorial design: one boto3 client with default settings,
  ``post_to_connection`` for one target after another;
* ``ceiling`` — a bare boto3 client with ``max_pool_connections=N`` driven by
  ``ThreadPoolExecutor(N)``: the fastest anything that sends through boto3 gets.

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

from bench.mgmt_server import ManagementServer, calibrate
from chalicelib import aws, protocol
from chalicelib.delivery import WORKERS, Delivery
from chalicelib.invocation import Deadline

ROOT = Path(__file__).resolve().parent.parent
STAGE = "bench"
REGION = "us-east-1"
WARMUP_POSTS = 2 * WORKERS


class LoopbackSession:
    """A session whose clients talk plain HTTP to a loopback endpoint.

    Chalice always builds ``https://{domain}/{stage}``; this wrapper (Chalice
    accepts any object with a boto3-like ``client()``) swaps in the local URL
    and otherwise keeps the wrapped session's client configuration.
    """

    def __init__(self, session: Any, endpoint_url: str) -> None:
        self._session = session
        self._endpoint_url = endpoint_url
        self.region_name = REGION

    def client(self, service_name: str, **kwargs: Any) -> Any:
        kwargs["endpoint_url"] = self._endpoint_url
        kwargs.setdefault("region_name", REGION)
        return self._session.client(service_name, **kwargs)


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


def chalice_delivery(server: ManagementServer, workers: int = WORKERS) -> Delivery:
    """``Delivery`` over a real Chalice ``websocket_api`` pointed at the local server."""
    app = Chalice(app_name="switchboard-bench")
    app.experimental_feature_flags.update(["WEBSOCKETS"])
    session = aws.management_session(pool_size=workers)
    app.websocket_api.session = LoopbackSession(session, server.url(STAGE))
    app.websocket_api.configure(server.host, STAGE)
    return Delivery(app.websocket_api, workers=workers)


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


def ours(server: ManagementServer, targets: Sequence[str], text: str) -> Run:
    delivery = chalice_delivery(server)
    delivery.send("warm", text, Deadline.after(30))  # Chalice builds its client on first send
    delivery.post_all(connection_ids(WARMUP_POSTS, "w"), text, Deadline.after(30))
    return timed(
        "ours", targets, lambda: delivery.post_all(targets, text, Deadline.after(600)).delivered
    )


def naive(server: ManagementServer, targets: Sequence[str], text: str) -> Run:
    client = naive_client(server)
    naive_loop(client, connection_ids(WORKERS, "w"), text)
    return timed("naive", targets, lambda: naive_loop(client, targets, text))


def ceiling(server: ManagementServer, targets: Sequence[str], text: str) -> Run:
    client = naive_client(server, max_pool_connections=WORKERS)
    with ThreadPoolExecutor(WORKERS) as pool:
        ceiling_loop(client, pool, connection_ids(WARMUP_POSTS, "w"), text)
        return timed("ceiling", targets, lambda: ceiling_loop(client, pool, targets, text))


def measure(server: ManagementServer, count: int, delay: float, repeats: int) -> dict[str, Any]:
    """The fan-out figure, each post checked by the server.

    ``ours`` and ``ceiling`` are CPU-bound, so they alternate ``repeats`` times
    and their medians are compared: load from elsewhere on a shared machine
    hits both alike. ``naive`` is bound by latency, not CPU, and runs once.
    """
    text = frame()
    server_alone = calibrate(server, delay, WORKERS)
    runs: dict[str, list[Run]] = {"ours": [], "naive": [], "ceiling": []}
    schedule = [ours, ceiling] * repeats
    schedule.insert(1, naive)
    for variant in schedule:
        server.configure(delay=delay)
        run = variant(server, connection_ids(count), text)
        accepted = server.stats()["connections"]
        if run.delivered != accepted - _warm_targets(variant):
            raise AssertionError(f"{run} but the server accepted {accepted}")
        runs[run.variant].append(run)
    median = {name: _median(found) for name, found in runs.items()}
    return {
        "figure": "fanout",
        "title": f"Fan-out to {count} connections, {delay * 1000:g} ms per post, "
                 f"{WORKERS} workers (median of {repeats} for ours and ceiling)",
        "rows": [run.row() | {"runs": len(runs[run.variant])} for run in median.values()],
        "server_alone": server_alone,
        "note": (
            f"The management endpoint alone (raw asyncio client, {WORKERS} posts in flight): "
            f"{server_alone['mean_ms']} ms per post, {server_alone['posts_per_s']:g} posts/s."
        ),
        "ratios": {
            "ours_vs_naive": median["ours"].per_second / median["naive"].per_second,
            "ours_vs_ceiling": median["ours"].per_second / median["ceiling"].per_second,
            # What this machine, right now, allows any design that sends through boto3.
            "ceiling_vs_naive": median["ceiling"].per_second / median["naive"].per_second,
        },
        "targets": {"ours_vs_naive": 12.0, "ours_vs_ceiling": 0.8},
        "checks": {"all_delivered": all(
            run.delivered == count for found in runs.values() for run in found
        )},
    }


def _median(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]


def _warm_targets(variant: Callable[..., Run]) -> int:
    return {ours: 1 + WARMUP_POSTS, naive: WORKERS, ceiling: WARMUP_POSTS}[variant]
