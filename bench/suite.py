"""The whole suite at one size: every figure, measured side by side in one run."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench import coldstart, fanout, gateway, metrics_library, presence, reads, scale, throttle
from bench.report import Figure
from harness.mgmt_server import ManagementServer
from switchboard_local.gateway.environment import process_environment

FIGURES = (
    "fanout", "reads", "coldstart", "metrics", "throttle", "gateway", "scale", "presence",
)


@dataclass(frozen=True)
class Size:
    fanout_connections: int
    fanout_repeats: int
    post_delay: float
    reads_connections: int
    coldstart_runs: int
    throttle_connections: int
    throttle_retry_sample: int
    gateway_clients: int
    gateway_messages: int
    scale: scale.Plan
    presence_users: int
    presence_max_members: int
    judge_timing: bool  # too small a run says nothing about speed: report, never judge


SIZES = {
    "full": Size(
        3000, 5, 0.010, 1000, 15, 1000, 100, 100, 20,
        scale.Plan(sizes=(10_000, 30_000, 100_000), rate=1000, workers=4, delay=0.010),
        1000, 100, judge_timing=True,
    ),
    "small": Size(
        50, 1, 0.001, 40, 1, 50, 5, 5, 3,
        scale.Plan(sizes=(100, 300), rate=200, workers=2, delay=0.001),
        30, 10, judge_timing=False,
    ),
}


def local_environment() -> None:
    """Credentials and region for botocore; every endpoint used is on loopback.

    The app's EMF documents are off in the benchmark's processes: standard
    output is the report (the metrics figure measures them in interpreters of
    its own, with Lambda's environment).
    """
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("POWERTOOLS_METRICS_DISABLED", "true"),
    ):
        os.environ.setdefault(name, value)
    os.environ.pop("AWS_PROFILE", None)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


@contextmanager
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def trusted(server: ManagementServer) -> Iterator[None]:
    """Clients trust the stand-in's certificate the way a deployment would: ``AWS_CA_BUNDLE``."""
    with process_environment({"AWS_CA_BUNDLE": server.ca_bundle}):
        yield


def run(size: Size, only: tuple[str, ...] = FIGURES,
        progress: Callable[[str], Any] = lambda _: None) -> list[Figure]:
    """Measure the chosen figures in a fixed order and return them."""
    local_environment()
    figures: list[Figure] = []
    with ManagementServer() as server, trusted(server):
        if "fanout" in only:
            progress("measuring fanout")
            figures.append(fanout.measure(
                server, size.fanout_connections, size.post_delay, size.fanout_repeats, progress
            ))
        if "throttle" in only:
            progress("measuring throttle")
            figures.append(throttle.measure(
                server, size.throttle_connections, size.post_delay, size.throttle_retry_sample
            ))
        if "scale" in only:
            progress("measuring scale")
            figures.append(scale.measure(server, size.scale, size.judge_timing, progress))
    if "reads" in only:
        progress("measuring reads")
        with moto_endpoint() as endpoint:
            figures.append(reads.measure(endpoint, size.reads_connections))
    if "coldstart" in only:
        progress("measuring coldstart")
        figures.append(coldstart.measure(size.coldstart_runs))
    if "metrics" in only:
        progress("measuring metrics")
        figures.append(metrics_library.measure(size.coldstart_runs))
    if "gateway" in only:
        progress("measuring gateway")
        figures.append(gateway.measure(size.gateway_clients, size.gateway_messages))
    if "presence" in only:
        progress("measuring presence")
        figures.append(presence.measure(
            size.presence_users, size.presence_max_members, progress
        ))
    if not size.judge_timing:
        for figure in figures:
            figure.pop("targets", None)
    return figures
