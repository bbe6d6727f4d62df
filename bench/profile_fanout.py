"""``python -m bench.profile_fanout``: where our fan-out's CPU goes.

A child process runs ``Delivery.post_all`` (the fan-out figure's ``lean``, or
``--transport botocore``) to 2,000 connections through the local HTTPS
management endpoint, three times; py-spy samples it and the CPU is split
between signing, HTTP, request building, Chalice and Switchboard's own code.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from subprocess import PIPE, Popen

from bench import fanout, profiling, suite
from chalicelib.invocation import Deadline
from harness.mgmt_server import ManagementServer

BUCKETS = [
    ("botocore: SigV4 signing", "SigV4Auth.add_auth"),
    ("HTTP: botocore's urllib3 session", "URLLib3Session.send"),
    ("HTTP: the lean transport's http.client pool", "ConnectionPool.send"),
    ("botocore: request building, events, parsing", "BaseClient._make_api_call"),
    ("lean transport: request building, events, errors", "LeanManagementClient."),
    ("Chalice: WebsocketAPI.send around the call", "WebsocketAPI.send"),
    ("Switchboard: Delivery (pacing, retry loop, report)", "Delivery."),
    ("thread pool hand-off", "_worker"),
]


def child(targets: int, delay: float, transport: str) -> None:
    """The profiled process: warm up, say so, then fan out three times."""
    suite.local_environment()
    with ManagementServer() as server, suite.trusted(server):
        server.configure(delay=delay)
        delivery = fanout.chalice_delivery(server, transport)
        text = fanout.frame()
        delivery.post_all(fanout.connection_ids(100, "w"), text, Deadline.after(30))
        print("ready", flush=True)
        sys.stdin.readline()
        for _ in range(3):
            delivery.post_all(fanout.connection_ids(targets), text, Deadline.after(120))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--transport", choices=("lean", "botocore"), default="lean")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.targets, args.delay, args.transport)
        return 0
    command = [sys.executable, "-m", "bench.profile_fanout", "--child", "--transport",
               args.transport, "--targets", str(args.targets), "--delay", str(args.delay)]
    with tempfile.TemporaryDirectory() as scratch:
        folded = Path(scratch) / "fanout.folded"
        process = Popen(command, cwd=fanout.ROOT, stdin=PIPE, stdout=PIPE, text=True)
        assert process.stdin is not None and process.stdout is not None
        process.stdout.readline()
        sampler = profiling.start_sampling(process.pid, folded)
        time.sleep(1.0)  # py-spy attaches
        started = time.perf_counter()
        process.stdin.write("go\n")
        process.stdin.close()
        process.wait(timeout=600)
        elapsed = time.perf_counter() - started
        profiling.stop_sampling(sampler)
        print(f"{3 * args.targets} posts in {elapsed:.2f} s under py-spy\n")
        print(profiling.table(*profiling.breakdown(folded, BUCKETS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
