"""The project as a user runs it: ``make run`` on a free port, stopped with Ctrl-C."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.gateways import REPO
from tests.switchboard_local.installed import Served, serve_command


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
    from tests.e2e.readme import Client, shell_env

    started: list[Client] = []

    def start(script: str) -> Client:
        client = Client.start(script, shell_env(make_run))
        started.append(client)
        return client

    yield start
    for client in started:
        client.stop()
