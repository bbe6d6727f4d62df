"""``python -m bench.profile_gateway``: where the local gateway's CPU goes under echo load.

It starts the gateway on ``bench/echo_app``, samples it with py-spy while 100
clients echo, and prints the share of CPU per stage of a round trip. With
``--containers`` the gateway's own process is sampled (the handlers run in
containers, processes of their own: ``--container`` samples one of them).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import DEVNULL, PIPE, Popen
from typing import Any

from bench import gateway, profiling, suite

# (stage, a frame that marks it); the first match in this order wins.
BUCKETS = [
    ("handler: container channel (management request, answer)", "ChannelRoute.__call__"),
    ("handler: SigV4 signing", "SigV4Auth.add_auth"),
    ("handler: HTTP client (urllib3/http.client)", "URLLib3Session.send"),
    ("handler: botocore request building, events", "BaseClient._make_api_call"),
    ("handler: Chalice wrapper, event parsing", "EventSourceHandler.__call__"),
    ("container: waiting for and reading an invocation", "BlockingChannel"),
    ("event loop: @connections POST, incl. the frame out", "ManagementApi.answer"),
    ("event loop: container channel in (results, management requests)", "_Channel"),
    ("event loop: invoking a function (hand-off, containers' scheduling)", "Invoker.invoke"),
    ("event loop: building events", "ConnectionContext"),
    ("event loop: HTTP parsing and responses (aiohttp)", "RequestHandler"),
    ("event loop: WebSocket frames in, lifecycle", "Lifecycle.run_messages"),
    ("event loop: socket I/O and scheduling", "BaseEventLoop._run_once"),
    ("worker threads: pool hand-off", "_worker"),
]


def profile(clients: int, messages: int, output: Path, mode: str = "gateway",
            container: bool = False) -> dict[str, Any]:
    """Run the load once under py-spy and return the load's figures."""
    process = Popen(
        [sys.executable, *gateway.GATEWAY_COMMAND, gateway.MODES[mode]], cwd=gateway.ROOT,
        stdout=PIPE, stderr=DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        url = next(line.split()[-1] for line in process.stdout if "WebSocket" in line)
        gateway.run_load(url, clients, 2)
        if not container:
            sampler = profiling.start_sampling(process.pid, output)
            time.sleep(1.0)  # py-spy attaches
            result = gateway.run_load(url, clients, messages)
            profiling.stop_sampling(sampler)
            return result
        with ThreadPoolExecutor(1) as load:
            running = load.submit(gateway.run_load, url, clients, messages)
            sampler = profiling.start_sampling(_busiest_container(process.pid), output)
            result = running.result()
            profiling.stop_sampling(sampler)
            return result
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def _containers(pid: int) -> dict[int, int]:
    """CPU ticks so far of each container (a child of the gateway's zygote)."""
    processes = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            processes[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    zygotes = {child for child, (parent, _) in processes.items() if parent == pid}
    return {child: cpu for child, (parent, cpu) in processes.items() if parent in zygotes}


def _busiest_container(pid: int) -> int:
    """The container that works most while the load runs (the containers most recently
    used take the next invocations)."""
    before = _containers(pid)
    time.sleep(0.5)
    after = _containers(pid)
    if not after:
        raise SystemExit("no container found: is the gateway running with --containers?")
    return max(after, key=lambda child: after[child] - before.get(child, 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--containers", action="store_true",
                        help="functions in containers; the gateway's process is sampled")
    parser.add_argument("--container", action="store_true",
                        help="with --containers: sample the busiest container instead")
    args = parser.parse_args()
    suite.local_environment()
    with tempfile.TemporaryDirectory() as scratch:
        folded = Path(scratch) / "gateway.folded"
        mode = "containers" if args.containers else "gateway"
        result = profile(args.clients, args.messages, folded, mode, args.container)
        print(f"load: {result}\n")
        print(profiling.table(*profiling.breakdown(folded, BUCKETS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
