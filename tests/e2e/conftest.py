"""The project as a user runs it: ``make run`` on a free port, stopped with Ctrl-C."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.engines import free_port
from switchboard_local.gateway.discovery import DEFAULT_ADDRESS
from tests.gateways import REPO
from tests.switchboard_local.installed import Served, serve_command

DEFAULT_PORT = int(DEFAULT_ADDRESS.rpartition(":")[2])


@pytest.fixture(scope="module")
def make_run() -> Iterator[Served]:
    """``PORT=N make run`` on a free port other than the default, as a user picks another
    port; stopped with Ctrl-C."""
    port = free_port()
    while port == DEFAULT_PORT:
        port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "HOST", "PORT")
           and not k.startswith(("AWS_ENDPOINT_URL", "POWERTOOLS_"))}
    with serve_command(["make", "--no-print-directory", "run"], REPO,
                       {**env, "PORT": str(port)}) as served:
        assert served.base == f"http://127.0.0.1:{port}"
        yield served


@pytest.fixture
def client_factory(make_run: Served) -> Iterator[Callable[[str], Any]]:
    """Start terminal clients with shell lines (the README's); stopped afterwards."""
    from tests.e2e.readme import Client, shell_env

    started: list[Client] = []

    def start(script: str) -> Client:
        client = Client.start(script, shell_env(make_run))
        started.append(client)
        return client

    yield start
    for client in started:
        client.stop()
