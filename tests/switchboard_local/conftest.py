"""Gateways running a tiny recording app from a temporary project directory, loaded
by the project option (one per module, or several with other limits for one test)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from switchboard_local.gateway.server import GatewayOptions, GatewayThread
from switchboard_local.stage import Limits
from tests.gateways import Running, start, stop

TINY_APP = Path(__file__).parent / "tiny" / "app.py"


def make_tiny_project(root: Path, api_stage: str = "v1",
                      functions: dict[str, Any] | None = None) -> Path:
    """A Chalice project directory holding the tiny app, its stage writing events to root;
    ``functions`` is the dev stage's ``lambda_functions`` (where Chalice merges a
    function's variables from)."""
    (root / ".chalice").mkdir(parents=True, exist_ok=True)
    shutil.copy(TINY_APP, root / "app.py")
    config = {
        "version": "2.0",
        "app_name": "tiny",
        "api_gateway_stage": api_stage,
        "environment_variables": {"TINY_EVENTS": str(root / "events.jsonl")},
        "stages": {"dev": {"environment_variables": {"TINY_FLAG": "dev"},
                           "lambda_functions": functions or {}}},
    }
    (root / ".chalice" / "config.json").write_text(json.dumps(config))
    return root


def start_tiny(root: Path, limits: Limits | None = None,
               functions: dict[str, Any] | None = None, **options: Any
               ) -> tuple[GatewayThread, Running]:
    """A tiny gateway; ``options`` are more :class:`GatewayOptions` (containers, ...)."""
    make_tiny_project(root, functions=functions)
    gateway_options = GatewayOptions(project_dir=root, port=0, autoreload=False,
                                     limits=limits or Limits(), **options)
    return start(gateway_options, root)


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

    def make(limits: Limits | None = None, functions: dict[str, Any] | None = None,
             **options: Any) -> Running:
        thread, running = start_tiny(tmp_path / f"tiny{len(threads)}", limits, functions,
                                     **options)
        threads.append(thread)
        return running

    yield make
    for thread in reversed(threads):
        stop(thread)


