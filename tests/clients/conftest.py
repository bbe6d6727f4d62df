"""Fixtures for the client tests: the gateway running this app, a relay to cut
connections, a gateway that restarts on its port, and headless Chromium.

The gateways are the local gateway of ``tests/switchboard_local`` (real sockets on free
loopback ports); clients reach them directly or through :class:`TcpProxy`.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from switchboard_local.gateway.connections import Limits
from switchboard_local.gateway.server import GatewayOptions, GatewayThread
from tests.gateways import REPO, WAIT, Running, start, stop
from tests.switchboard_local.installed import clean_env

from .proxy import TcpProxy

PAGE_TIMEOUT_MS = 30_000
START_SECONDS = 60.0  # a liveness bound for a gateway process to start or stop


@pytest.fixture(scope="module")
def gateway() -> Iterator[Running]:
    """This app on the gateway, with its embedded store, shared by a module's tests."""
    thread, running = start(GatewayOptions(project_dir=REPO, port=0, autoreload=False), REPO)
    yield running
    stop(thread)


@pytest.fixture
def gateway_factory() -> Iterator[Callable[..., Running]]:
    """Gateways with other limits for one test, stopped when it ends."""
    threads: list[GatewayThread] = []

    def make(**limits: float) -> Running:
        thread, running = start(
            GatewayOptions(project_dir=REPO, port=0, autoreload=False, limits=Limits(**limits)),
            REPO,
        )
        threads.append(thread)
        return running

    yield make
    for thread in reversed(threads):
        stop(thread)


@pytest.fixture
def proxy(gateway: Running) -> Iterator[TcpProxy]:
    relay = TcpProxy(int(gateway.gateway.base.rsplit(":", 1)[1])).start()
    yield relay
    relay.stop()


class GatewayProcess:
    """``python -m switchboard_local.gateway`` (what ``make run`` runs) in its own process,
    stopped with Ctrl-C and started again on the same port.

    Without ``dynamodb_endpoint`` every start has a new embedded store, so every stream
    starts a new epoch (in-process gateways would share moto's memory); with it, the
    registry and the streams' history outlive restarts.
    """

    def __init__(self, log_dir: Path, dynamodb_endpoint: str | None = None) -> None:
        self.dynamodb_endpoint = dynamodb_endpoint
        self.port = _free_port()
        self.log_dir = log_dir
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def websocket_url(self) -> str:
        return f"ws://{self.base}/dev"

    @property
    def page_url(self) -> str:
        return f"http://{self.base}/"

    @property
    def management_url(self) -> str:
        return f"http://{self.base}/dev"

    def token(self, user_id: str) -> str:
        url = f"{self.page_url}_local/token?{urllib.parse.urlencode({'userId': user_id})}"
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            return str(json.load(response)["token"])

    def start(self) -> None:
        self.starts += 1
        command = [
            sys.executable, "-m", "switchboard_local", "--port", str(self.port), "--no-autoreload"
        ]
        if self.dynamodb_endpoint:
            command += ["--dynamodb-endpoint", self.dynamodb_endpoint]
        log = (self.log_dir / f"gateway-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=clean_env()
        )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.page_url}_local/config", timeout=1).close()
                return
            time.sleep(0.1)
        self.stop()
        output = (self.log_dir / f"gateway-{self.starts}.log").read_text(errors="replace")
        raise AssertionError(f"the gateway did not start on {self.base}:\n{output}")

    def stop(self) -> None:
        """Ctrl-C: every socket closes with 1001, ``$disconnect`` runs, the process exits."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=START_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[Callable[[str | None], GatewayProcess]]:
    """Start gateway processes for one test; they are stopped when it ends."""
    made: list[GatewayProcess] = []

    def make(dynamodb_endpoint: str | None = None) -> GatewayProcess:
        gateway = GatewayProcess(tmp_path, dynamodb_endpoint)
        made.append(gateway)
        gateway.start()
        return gateway

    yield make
    for gateway in made:
        gateway.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def delete_connection(management_url: str, connection_id: str) -> int:
    """Close a connection through the management API, as a backend would."""
    url = f"{management_url}/@connections/{connection_id}"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return int(response.status)


def figures(
    label: str, drops: list[str], sent: list[str], received: list[str], stats: dict[str, Any]
) -> dict[str, Any]:
    """The closing note's figures for one drop test, printed (``pytest -s`` shows them)."""
    found = {
        "drops": len(drops),
        "by": {how: drops.count(how) for how in sorted(set(drops))},
        "sent": len(sent),
        "lost": len(set(sent) - set(received)),
        "duplicates_seen": len(received) - len(set(received)),
        "out_of_order": received != sorted(received, key=sent.index),
        "client": stats,
    }
    print(f"\nFIGURES {label} {json.dumps(found)}")
    return found


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[[str], Any]]:
    """Open pages in the module's browser; they are closed when the test ends."""
    pages: list[Any] = []

    def open_at(url: str) -> Any:
        page = browser.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.goto(url)
        pages.append(page)
        return page

    yield open_at
    for page in pages:
        page.close()
