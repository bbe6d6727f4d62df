"""Cold start does no network I/O: ``import app`` with the network refused."""

from __future__ import annotations

from tests.fresh_interpreter import run_fresh

PROBE = """
import socket

def refuse(*args, **kwargs):
    raise SystemExit(f"network I/O at import time: {args!r}")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.socket.sendto = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
socket.gethostbyname = refuse

import app

assert app.app.websocket_api.session is not None
assert "jwt" not in __import__("sys").modules, "PyJWT is imported on the first event"
assert "aws_lambda_powertools" not in __import__("sys").modules, "imported by the first flush"
"""


def test_importing_the_app_does_no_network_io() -> None:
    result = run_fresh(PROBE)
    assert result.returncode == 0, result.stderr
