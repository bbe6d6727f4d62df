"""Through the local gateway: echo round trips under 100 concurrent clients.

Each client opens a WebSocket, then sends a frame and waits for its echo,
``messages`` times in a row; every round trip's latency is recorded. The
same clients run against:

* ``gateway`` — ``python -m switchboard_local.gateway`` serving
  ``bench/echo_app``: frame in, ``$default`` invoked on a worker thread, the
  app posts the echo through botocore to ``@connections``, the gateway writes it;
* ``bare`` — a ``websockets`` echo server (:mod:`bench.echo_server`).

Both servers run in their own process; the clients share one asyncio loop
in this one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def gateway_server() -> Any:
    return server(GATEWAY_COMMAND, "WebSocket")


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


def measure(clients: int, messages: int) -> dict[str, Any]:
    rows = []
    for name, start in (("gateway", gateway_server), ("bare", bare_server)):
        with start() as url:
            run_load(url, min(clients, 10), 2)  # warm-up: imports, first client, pools
            rows.append({"server": name} | run_load(url, clients, messages))
    cell = {row["server"]: row for row in rows}
    return {
        "figure": "gateway",
        "title": f"Echo round trips, {clients} concurrent clients x {messages} messages",
        "rows": rows,
        "ratios": {
            "gateway_vs_bare_messages_per_s":
                cell["gateway"]["messages_per_s"] / cell["bare"]["messages_per_s"],
            "gateway_vs_bare_p50": cell["gateway"]["p50_ms"] / cell["bare"]["p50_ms"],
            "gateway_vs_bare_p99": cell["gateway"]["p99_ms"] / cell["bare"]["p99_ms"],
        },
        "checks": {"every_message_echoed": all(
            row["echoed"] == row["messages"] for row in rows
        )},
    }
