"""Through the local gateway: echo round trips under 100 concurrent clients.

Each client opens a WebSocket, then sends a frame and waits for its echo,
``messages`` times in a row; every round trip's latency is recorded. The
same clients run, one after the other, against:

* ``gateway`` — ``python -m switchboard_local.gateway --no-containers``
  serving ``bench/echo_app``: frame in, ``$default`` invoked on a thread of
  the gateway, the app posts the echo through botocore to ``@connections``
  (answered in-process), the gateway writes it;
* ``containers`` — the same with ``--containers``: ``$default`` runs in
  containers (processes forked from the zygote), the app's post comes back
  over the container's channel;
* ``bare`` — a ``websockets`` echo server (:mod:`bench.echo_server`).

Every server runs in its own process; the clients share one asyncio loop in
this one. A warm-up with every client first, so the measured load finds the
imports done and, with containers, the containers started (cold starts are
their own measure: the gateway logs each one). Both gateways serve at once
and take turns, five loads each, and each row is the median of its runs: on a
shared machine a single run of a few seconds says more about the machine's
load at that moment than about the server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from subprocess import DEVNULL, PIPE, Popen
from typing import Any

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
ECHO_APP = ROOT / "bench" / "echo_app"
GATEWAY_COMMAND = [
    "-m", "switchboard_local.gateway", "--project-dir", str(ECHO_APP), "--port", "0",
    "--no-autoreload", "--log-level", "WARNING",
]
MODES = {"gateway": "--no-containers", "containers": "--containers"}
TARGET_CONTAINERS_VS_THREADS = 2.0
ROUNDS = 5


@contextmanager
def server(arguments: list[str], marker: str) -> Iterator[str]:
    """Start a server process, yield the ws:// URL it prints, stop it whatever happens."""
    process = Popen(
        [sys.executable, *arguments], cwd=ROOT, stdin=PIPE, stdout=PIPE, stderr=DEVNULL,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if marker in line:
                yield line.split()[-1]  # the URL ends the line the server prints
                break
        else:
            raise RuntimeError(f"{arguments} exited before it served")
    finally:
        process.send_signal(signal.SIGINT)
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except Exception:
            process.kill()
            process.wait()


def gateway_server(mode: str = "gateway") -> Any:
    return server([*GATEWAY_COMMAND, MODES[mode]], "WebSocket")


def bare_server() -> Any:
    return server(["-m", "bench.echo_server"], "ws://")


async def _client(
    url: str, messages: int, ready: asyncio.Barrier, latencies: list[float]
) -> int:
    async with connect(url, max_queue=None, ping_interval=None) as socket:
        await ready.wait()
        echoed = 0
        for index in range(messages):
            text = f'{{"n":{index},"pad":"{"x" * 48}"}}'
            sent = time.perf_counter()
            await socket.send(text)
            if await socket.recv() == text:
                echoed += 1
            latencies.append(time.perf_counter() - sent)
        return echoed


async def _load(url: str, clients: int, messages: int) -> dict[str, Any]:
    ready = asyncio.Barrier(clients + 1)  # every handshake is done before the clock starts
    latencies: list[float] = []
    tasks = [asyncio.create_task(_client(url, messages, ready, latencies)) for _ in range(clients)]
    await asyncio.wait_for(ready.wait(), timeout=60)
    started = time.perf_counter()
    echoed = sum(await asyncio.gather(*tasks))
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "clients": clients,
        "messages": clients * messages,
        "echoed": echoed,
        "seconds": round(elapsed, 3),
        "messages_per_s": round(echoed / elapsed, 1),
        "p50_ms": round(quantiles[49] * 1000, 2),
        "p99_ms": round(quantiles[98] * 1000, 2),
    }


def run_load(url: str, clients: int, messages: int) -> dict[str, Any]:
    return asyncio.run(_load(url, clients, messages))


def measure(clients: int, messages: int, rounds: int = ROUNDS) -> dict[str, Any]:
    """Every server warmed up; the two gateways then take turns, ``rounds`` loads each,
    so the machine's load hits both alike; each row is its median run."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in [*MODES, "bare"]}
    with ExitStack() as servers:
        urls = {mode: servers.enter_context(gateway_server(mode)) for mode in MODES}
        for url in urls.values():
            run_load(url, clients, 2)  # warm-up: imports, every client, pools, containers
        for _ in range(rounds):
            for mode, url in urls.items():
                runs[mode].append(run_load(url, clients, messages))
    with bare_server() as url:
        run_load(url, clients, 2)
        runs["bare"] = [run_load(url, clients, messages) for _ in range(rounds)]
    rows = [{"server": name} | median_run(loads) | {"runs": len(loads)}
            for name, loads in runs.items()]
    cell = {row["server"]: row for row in rows}
    threads, containers = cell["gateway"], cell["containers"]
    return {
        "figure": "gateway",
        "title": f"Echo round trips, {clients} concurrent clients x {messages} messages",
        "rows": rows,
        "ratios": {
            "containers_vs_threads_messages_per_s":
                containers["messages_per_s"] / threads["messages_per_s"],
            "containers_vs_threads_p99": containers["p99_ms"] / threads["p99_ms"],
            "gateway_vs_bare_messages_per_s":
                threads["messages_per_s"] / cell["bare"]["messages_per_s"],
            "gateway_vs_bare_p50": threads["p50_ms"] / cell["bare"]["p50_ms"],
            "gateway_vs_bare_p99": threads["p99_ms"] / cell["bare"]["p99_ms"],
        },
        "targets": {
            "containers_vs_threads_messages_per_s": TARGET_CONTAINERS_VS_THREADS,
            "containers_vs_threads_p99": 1.0,
        },
        "lower_is_better": ["containers_vs_threads_p99"],
        "checks": {"every_message_echoed": all(
            load["echoed"] == load["messages"] for loads in runs.values() for load in loads
        )},
    }


def median_run(loads: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (its latencies with it)."""
    return sorted(loads, key=lambda load: float(load["messages_per_s"]))[len(loads) // 2]
