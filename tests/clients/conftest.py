"""Fixtures for the client tests: the gateway running this app, a relay to cut
connections, a gateway that restarts on its port, and headless Chromium.

The gateways are the local gateway of ``tests/gateway`` (real sockets on free
loopback ports); clients reach them directly or through :class:`TcpProxy`.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from switchboard_local.gateway.connections import Limits
from switchboard_local.gateway.server import GatewayOptions, GatewayThread
from tests.gateway.conftest import REPO, WAIT, Running, start, stop

from .proxy import TcpProxy

PAGE_TIMEOUT_MS = 30_000
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def gateway() -> Iterator[Running]:
    """This app on the gateway, with its embedded store, shared by a module's tests."""
    thread, running = start(GatewayOptions(project_dir=REPO, port=0), REPO)
    yield running
    stop(thread)


@pytest.fixture
def gateway_factory() -> Iterator[Callable[..., Running]]:
    """Gateways with other limits for one test, stopped when it ends."""
    threads: list[GatewayThread] = []

    def make(**limits: float) -> Running:
        thread, running = start(
            GatewayOptions(project_dir=REPO, port=0, limits=Limits(**limits)), REPO
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


class Restartable:
    """A gateway that stops and starts again on the same port.

    With ``dynamodb_endpoint`` its store outlives restarts (the registry and
    every stream's history are kept); without it each start has a new embedded
    store, so every stream starts a new epoch.
    """

    def __init__(self, dynamodb_endpoint: str | None = None) -> None:
        self.dynamodb_endpoint = dynamodb_endpoint
        self.port = 0
        self.thread: GatewayThread | None = None
        self.running: Running | None = None

    def start(self) -> Running:
        options = GatewayOptions(
            project_dir=REPO, port=self.port, dynamodb_endpoint=self.dynamodb_endpoint
        )
        self.thread, self.running = start(options, REPO)
        self.port = int(self.running.gateway.base.rsplit(":", 1)[1])
        return self.running

    def stop(self) -> None:
        if self.thread is not None:
            stop(self.thread)
            self.thread = None


@pytest.fixture
def restartable() -> Iterator[Callable[[str | None], Restartable]]:
    made: list[Restartable] = []

    def make(dynamodb_endpoint: str | None = None) -> Restartable:
        gateway = Restartable(dynamodb_endpoint)
        made.append(gateway)
        gateway.start()
        return gateway

    yield make
    for gateway in made:
        gateway.stop()


def delete_connection(running: Running, connection_id: str) -> int:
    """Close a connection through the management API, as a backend would."""
    url = f"{running.gateway.management_url}/@connections/{connection_id}"
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"no Chromium at {CHROMIUM}: run `make browser` (as root it runs "
            "`apt-get install -y chromium`), or set CHROMIUM to a Chromium binary"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


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
