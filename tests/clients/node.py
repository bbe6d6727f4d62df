"""Node and npm for the JavaScript tests: found on ``PATH``, or the test is skipped."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache

import pytest


def _found(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (make test needs Node for dynalite anyway)")
    return found


def node() -> str:
    return _found("node")


def npm() -> str:
    return _found("npm")


@cache
def websocket_flags() -> tuple[str, ...]:
    """What ``node`` needs for a global ``WebSocket``: nothing from Node 22 on, a flag on 20."""
    has_websocket = "process.exit(typeof WebSocket === 'function' ? 0 : 1)"
    if subprocess.run([node(), "-e", has_websocket], check=False).returncode == 0:
        return ()
    return ("--experimental-websocket",)
