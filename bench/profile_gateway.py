"""``python -m bench.profile_gateway``: where the local gateway's CPU goes under echo load.

It starts the gateway on ``bench/echo_app``, samples it with py-spy (``--gil``:
only samples of the thread holding the GIL, i.e. the CPU that one Python
process can spend) while 100 clients echo, and prints the share of samples
per stage of a round trip. py-spy is a development requirement; it needs
permission to read the gateway's memory (root, or ``ptrace`` allowed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from subprocess import DEVNULL, PIPE, Popen

from bench import gateway, suite

# (bucket, a frame that marks it); the first match from the leaf's side wins.
BUCKETS = [
    ("handler: SigV4 signing", "SigV4Auth.add_auth"),
    ("handler: HTTP client (urllib3/http.client)", "URLLib3Session.send"),
    ("handler: botocore request building, events", "BaseClient._make_api_call"),
    ("handler: Chalice wrapper, event parsing", "EventSourceHandler.__call__"),
    ("event loop: @connections POST, incl. the frame out", "ManagementApi.post"),
    ("event loop: WebSocket frame out", "WebSocketResponse.send_str"),
    ("event loop: invoking a handler (executor hand-off)", "Invoker.invoke"),
    ("event loop: HTTP parsing and responses (aiohttp)", "RequestHandler"),
    ("event loop: WebSocket frames in, lifecycle", "Lifecycle.run_messages"),
    ("event loop: socket I/O and scheduling", "BaseEventLoop._run_once"),
    ("worker threads: pool hand-off", "_worker"),
]


def bucket_of(stack: str) -> str:
    names = [frame.split(" (")[0] for frame in stack.split(";")]
    for label, marker in BUCKETS:
        if any(name == marker or name.startswith(marker) for name in names):
            return label
    return "other (stacks py-spy caught mid-unwind; mostly botocore)"


def breakdown(folded: Path) -> tuple[int, Counter[str]]:
    shares: Counter[str] = Counter()
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        shares[bucket_of(stack)] += int(count)
    return sum(shares.values()), shares


def profile(clients: int, messages: int, output: Path) -> dict[str, object]:
    """Run the load once under py-spy and return the load's figures."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install -r requirements-dev.txt")
    process = Popen(
        [sys.executable, *gateway.GATEWAY_COMMAND], cwd=gateway.ROOT, stdout=PIPE,
        stderr=DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        url = next(line.split()[-1] for line in process.stdout if "WebSocket" in line)
        gateway.run_load(url, 10, 2)
        sampler = Popen(
            [spy, "record", "--pid", str(process.pid), "--gil", "--rate", "250",
             "--format", "raw", "--output", str(output), "--nonblocking"],
            stdout=DEVNULL, stderr=DEVNULL,
        )
        time.sleep(1.0)  # py-spy attaches
        result = gateway.run_load(url, clients, messages)
        sampler.send_signal(signal.SIGINT)
        sampler.wait(timeout=30)
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
        total, shares = breakdown(folded)
    print(f"load: {result}")
    print(f"{total} samples of the GIL-holding thread\n")
    print("| where | share of CPU |\n|---|---|")
    for label, count in shares.most_common():
        print(f"| {label} | {count / total:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
