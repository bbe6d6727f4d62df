"""Gateways for the tests: real sockets on free loopback ports, embedded store.

One gateway per module (``switchboard_gateway`` runs this repository's app,
``tiny_gateway`` a tiny recording app from a temporary project directory, loaded
by the project option). Tests use unique user ids, so they share a gateway.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from chalicelib import runtime
from switchboard_local.gateway.connections import Limits
from switchboard_local.gateway.server import Gateway, GatewayOptions, GatewayThread
from tests.gateway.installed import Served, serve_command

REPO = Path(__file__).resolve().parents[2]
TINY_APP = Path(__file__).parent / "tiny" / "app.py"
WAIT = 15.0  # a generous upper bound for liveness, never a performance assertion


@dataclass
class Running:
    """A started gateway and helpers to talk to it."""

    gateway: Gateway
    project_dir: Path

    def connect(self, query: str = "", **kwargs: Any) -> ClientConnection:
        url = self.gateway.websocket_url + (f"?{query}" if query else "")
        return connect(
            url, open_timeout=WAIT, close_timeout=WAIT, max_size=None, legacy=True, **kwargs
        )

    def refusal(self, query: str = "") -> int:
        """The HTTP status a handshake is refused with (it must be refused)."""
        with pytest.raises(InvalidStatus) as refused:
            self.connect(query)
        return int(refused.value.response.status_code)

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.gateway.page_url.rstrip("/") + path, timeout=WAIT) as r:
            return json.load(r)

    def token(self, user_id: str, *roles: str) -> str:
        query = urllib.parse.urlencode({"userId": user_id, "roles": ",".join(roles)})
        return str(self.get_json(f"/_local/token?{query}")["token"])

    def events(self) -> list[dict[str, Any]]:
        path = self.project_dir / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


def start(options: GatewayOptions, project_dir: Path) -> tuple[GatewayThread, Running]:
    runtime.reset()
    thread = GatewayThread(options)
    return thread, Running(thread.start(), project_dir)


def stop(thread: GatewayThread) -> None:
    thread.stop()
    runtime.reset()


@pytest.fixture(scope="module")
def make_run() -> Iterator[Served]:
    """``make run`` on a free port, as a new user runs it; stopped with Ctrl-C."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "HOST", "PORT")
           and not k.startswith(("AWS_ENDPOINT_URL", "POWERTOOLS_"))}
    argv = ["make", "--no-print-directory", "run", "PORT=0", "HOST=127.0.0.1"]
    with serve_command(argv, REPO, env) as served:
        yield served


@pytest.fixture
def client_factory(make_run: Served) -> Iterator[Callable[[str], Any]]:
    """Start terminal clients with shell lines (the README's); stopped afterwards."""
    from tests.gateway.readme import Client, shell_env

    started: list[Client] = []

    def start(script: str) -> Client:
        client = Client.start(script, shell_env(make_run))
        started.append(client)
        return client

    yield start
    for client in started:
        client.stop()


@pytest.fixture(scope="module")
def switchboard_gateway() -> Iterator[Running]:
    thread, running = start(GatewayOptions(project_dir=REPO, port=0, autoreload=False), REPO)
    yield running
    stop(thread)


def make_tiny_project(root: Path, api_stage: str = "v1") -> Path:
    """A Chalice project directory holding the tiny app, its stage writing events to root."""
    (root / ".chalice").mkdir(parents=True, exist_ok=True)
    shutil.copy(TINY_APP, root / "app.py")
    config = {
        "version": "2.0",
        "app_name": "tiny",
        "api_gateway_stage": api_stage,
        "environment_variables": {"TINY_EVENTS": str(root / "events.jsonl")},
        "stages": {"dev": {"environment_variables": {"TINY_FLAG": "dev"}}},
    }
    (root / ".chalice" / "config.json").write_text(json.dumps(config))
    return root


def start_tiny(root: Path, limits: Limits | None = None) -> tuple[GatewayThread, Running]:
    make_tiny_project(root)
    options = GatewayOptions(project_dir=root, port=0, autoreload=False, limits=limits or Limits())
    return start(options, root)


@pytest.fixture(scope="module")
def tiny_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    thread, running = start_tiny(tmp_path_factory.mktemp("tiny"))
    yield running
    stop(thread)


@pytest.fixture
def tiny_factory(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Tiny gateways with other limits, stopped (newest first) when the test ends.

    The process environment is shared, as in one Lambda container: a gateway
    started inside another sets the variables until it stops.
    """
    threads: list[GatewayThread] = []

    def make(limits: Limits | None = None) -> Running:
        thread, running = start_tiny(tmp_path / f"tiny{len(threads)}", limits)
        threads.append(thread)
        return running

    yield make
    for thread in reversed(threads):
        stop(thread)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def eventually(predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll until predicate() is truthy; the timeout is a liveness bound only."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
