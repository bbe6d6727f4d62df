"""``python -m bench.profile_gateway``: where the local gateway's CPU goes under echo load.

It starts the gateway on ``bench/echo_app``, samples it with py-spy while 100
clients echo, and prints the share of CPU per stage of a round trip.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from subprocess import DEVNULL, PIPE, Popen
from typing import Any

from bench import gateway, profiling, suite

# (stage, a frame that marks it); the first match in this order wins.
BUCKETS = [
    ("handler: SigV4 signing", "SigV4Auth.add_auth"),
    ("handler: HTTP client (urllib3/http.client)", "URLLib3Session.send"),
    ("handler: botocore request building, events", "BaseClient._make_api_call"),
    ("handler: Chalice wrapper, event parsing", "EventSourceHandler.__call__"),
    ("event loop: @connections POST, incl. the frame out", "ManagementApi.post"),
    ("event loop: invoking a handler (executor hand-off)", "Invoker.invoke"),
    ("event loop: HTTP parsing and responses (aiohttp)", "RequestHandler"),
    ("event loop: WebSocket frames in, lifecycle", "Lifecycle.run_messages"),
    ("event loop: socket I/O and scheduling", "BaseEventLoop._run_once"),
    ("worker threads: pool hand-off", "_worker"),
]


def profile(clients: int, messages: int, output: Path) -> dict[str, Any]:
    """Run the load once under py-spy and return the load's figures."""
    process = Popen(
        [sys.executable, *gateway.GATEWAY_COMMAND], cwd=gateway.ROOT, stdout=PIPE,
        stderr=DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        url = next(line.split()[-1] for line in process.stdout if "WebSocket" in line)
        gateway.run_load(url, 10, 2)
        sampler = profiling.start_sampling(process.pid, output)
        time.sleep(1.0)  # py-spy attaches
        result = gateway.run_load(url, clients, messages)
        profiling.stop_sampling(sampler)
        return result
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=40)
    args = parser.parse_args()
    suite.local_environment()
    with tempfile.TemporaryDirectory() as scratch:
        folded = Path(scratch) / "gateway.folded"
        result = profile(args.clients, args.messages, folded)
        print(f"load: {result}\n")
        print(profiling.table(*profiling.breakdown(folded, BUCKETS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
