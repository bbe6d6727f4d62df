"""``python -m deploy.smoke`` exits 1 when a check fails, 2 when the stage cannot be reached.

The token is minted from the stage's SSM parameter (moto's server); the stage
is a closed loopback port (nothing answers: 2) or a server refusing the
handshake with 403, as API Gateway does for a refused ``$connect`` (it
answered: a check failed, 1). ``tests/e2e/test_first_ten_minutes.py`` runs the
passing case against ``make run``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from deploy import project, smoke

STAGE = "dev"


@pytest.fixture
def signing_key(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_endpoint)
    parameter = project.load(STAGE).environment["TOKEN_SECRET_PARAMETER"]
    boto3.client("ssm").put_parameter(
        Name=parameter, Value="smoke-test-signing-key-0123456789abcdef", Type="SecureString",
        Overwrite=True)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def refusing() -> Iterator[str]:
    """A server answering every handshake with 403."""

    class Refuse(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{server.server_address[1]}/{STAGE}"
    server.shutdown()
    server.server_close()


def run(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = smoke.main(["--stage", STAGE, "--region", "us-east-1", "--url", url,
                         "--push-function", "unused", "--timeout", "2"])
    return status, capsys.readouterr().out.splitlines()


@pytest.mark.usefixtures("signing_key")
def test_a_stage_that_cannot_be_reached_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"ws://127.0.0.1:{closed_port()}/{STAGE}"
    status, lines = run(url, capsys)
    assert status == smoke.UNREACHABLE == 2
    assert lines[1].startswith(f"FAILED connect   {url} cannot be reached: ")
    assert lines[-1] == "0 of 4 checks passed"


@pytest.mark.usefixtures("signing_key")
def test_a_stage_refusing_the_handshake_is_a_failed_check(
    refusing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines = run(refusing, capsys)
    assert status == smoke.FAILED == 1
    assert lines[1] == f"FAILED connect   {refusing} refused the handshake: 403"
