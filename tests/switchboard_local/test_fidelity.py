"""What the gateway does as API Gateway does where other emulators (and it, before) did not.

Each test states the AWS behaviour and where it comes from:

* API Gateway's quotas for WebSocket APIs: frames of at most 32 KB, messages of
  at most 128 KB (sent as several frames), a larger frame closes with 1009;
* the CONNECT event captured from API Gateway (``aws_events/connect.json``);
* serverless-offline's WebSocket suites, which also run against AWS: a
  ``$connect`` integration that fails refuses the handshake with 502, a close
  frame without a status reaches ``$disconnect`` as 1005 with "Client-side close
  frame status not set";
* API Gateway's REST API documentation: binary media types are decided by the
  request's first ``Accept`` media type ("Binary media types for REST APIs"),
  a method with ``api_key_required`` answers 403 without a key ("Require an API
  key on a method"), an undefined method or path is 403 ``Missing Authentication
  Token`` (AWS knowledge center, "API Gateway 403 Missing Authentication Token").
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from switchboard_local.gateway.server import GatewayOptions
from tests.gateways import WAIT, Running, eventually, start, stop

from .test_lifecycle import closed_with, disconnects, echo

AWS_EVENTS = Path(__file__).parent / "aws_events"
PROJECTS = Path(__file__).parent / "projects"
FRAME = 32 * 1024


# -- WebSocket ------------------------------------------------------------------------


def test_a_single_frame_over_32_kib_closes_with_1009(tiny_gateway: Running) -> None:
    """What a browser does with a 40 KB message (one frame): it works nowhere on AWS."""
    with tiny_gateway.connect() as client:
        connection_id = echo(client, "hi")["event"]["requestContext"]["connectionId"]
        client.send("x" * 40_000)
        assert closed_with(client).code == 1009
    disconnect = eventually(lambda: disconnects(tiny_gateway, connection_id))
    assert disconnect[0]["requestContext"]["disconnectStatusCode"] == 1009
    bodies = [e["event"].get("body") for e in tiny_gateway.events() if e["kind"] == "event"]
    assert "x" * 40_000 not in bodies  # never handed to the app


def test_a_frame_of_exactly_32_kib_is_accepted(tiny_gateway: Running) -> None:
    with tiny_gateway.connect() as client:
        client.send("y" * FRAME)
        assert json.loads(client.recv(timeout=WAIT)) == {"length": FRAME}


def test_a_128_kib_message_in_32_kib_frames_is_accepted(tiny_gateway: Running) -> None:
    with tiny_gateway.connect() as client:
        client.send(["z" * FRAME] * 4)  # one message, four frames
        assert json.loads(client.recv(timeout=WAIT)) == {"length": 4 * FRAME}


def test_no_compression_is_negotiated(tiny_gateway: Running) -> None:
    """The client offers permessage-deflate; frame sizes stay what is on the wire."""
    with tiny_gateway.connect() as client:
        assert client.request is not None
        assert "permessage-deflate" in client.request.headers["Sec-WebSocket-Extensions"]
        assert client.response is not None
        assert "Sec-WebSocket-Extensions" not in client.response.headers


def test_a_raising_connect_refuses_the_handshake_with_502(tiny_gateway: Running) -> None:
    assert tiny_gateway.refusal("raise=1") == 502


def test_connect_headers_are_the_ones_api_gateway_forwards(tiny_gateway: Running) -> None:
    """The captured event's header names: the client's end-to-end headers, X-Amzn-Trace-Id
    and X-Forwarded-*, never the hop-by-hop Connection and Upgrade."""
    captured = json.loads((AWS_EVENTS / "connect.json").read_text())
    with tiny_gateway.connect(user_agent_header="tiny-tests/2") as client:
        connection_id = echo(client, "hi")["event"]["requestContext"]["connectionId"]
    event = next(e["event"] for e in tiny_gateway.events() if e["kind"] == "event"
                 and e["event"]["requestContext"]["connectionId"] == connection_id)
    assert set(event["headers"]) == set(captured["headers"])
    assert set(event["multiValueHeaders"]) == set(captured["multiValueHeaders"])
    assert event["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert event["headers"]["X-Forwarded-Proto"] == "http"  # https on AWS: not a local TLS


def raw_socket(url: str) -> socket.socket:
    """A WebSocket opened by hand, to send what libraries will not (a close without code)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=WAIT)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def test_a_close_without_a_status_reaches_disconnect_as_1005(tiny_gateway: Running) -> None:
    before = {e["event"]["requestContext"]["connectionId"] for e in tiny_gateway.events()
              if e["kind"] == "event"}
    with raw_socket(tiny_gateway.gateway.websocket_url) as sock:
        sock.sendall(struct.pack("!BB", 0x88, 0x80) + os.urandom(4))  # masked, empty close
        while sock.recv(4096):
            pass  # the gateway's close, then the end of the stream

    def new_disconnect() -> list[dict[str, Any]]:
        return [e["event"] for e in tiny_gateway.events() if e["kind"] == "event"
                and e["event"]["requestContext"]["eventType"] == "DISCONNECT"
                and e["event"]["requestContext"]["connectionId"] not in before]

    context = eventually(new_disconnect)[0]["requestContext"]
    assert context["disconnectStatusCode"] == 1005
    assert context["disconnectReason"] == "Client-side close frame status not set"


# -- REST -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    project = tmp_path_factory.mktemp("rest") / "rest"
    shutil.copytree(PROJECTS / "rest", project)
    thread, running = start(GatewayOptions(project_dir=project, port=0, autoreload=False),
                            project)
    yield running
    stop(thread)


def get(running: Running, path: str, method: str = "GET",
        headers: dict[str, str] | None = None, body: bytes | None = None
        ) -> tuple[int, dict[str, str], bytes]:
    """An HTTP request to the gateway: status, headers and body, whatever the status."""
    request = urllib.request.Request(running.gateway.page_url.rstrip("/") + path, data=body,
                                     method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_browser_gets_binary_as_base64_text(rest: Running) -> None:
    from tests.switchboard_local.projects.rest.app import PNG

    status, _, body = get(rest, "/image", headers={"Accept": BROWSER_ACCEPT})
    assert status == 200 and base64.b64decode(body) == PNG
    status, headers, body = get(rest, "/image", headers={"Accept": "image/png"})
    assert status == 200 and body == PNG and headers["Content-Type"] == "image/png"


def test_an_api_key_required_route_needs_a_key(rest: Running) -> None:
    status, headers, body = get(rest, "/secret")
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    assert headers["x-amzn-ErrorType"] == "ForbiddenException"
    status, _, body = get(rest, "/secret", headers={"x-api-key": "any-key-here"})
    assert (status, json.loads(body)) == (200, {"secret": True})


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/items"),  # a method the path does not define
    ("DELETE", "/image"),
    ("OPTIONS", "/items"),  # no CORS on the route: no OPTIONS method either
    ("GET", "/nowhere"),  # a path that does not exist
])
def test_an_undefined_method_or_path_is_missing_authentication_token(
    rest: Running, method: str, path: str
) -> None:
    status, _, body = get(rest, path, method=method)
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})


def test_a_rest_function_that_dies_answers_502(tmp_path: Path) -> None:
    """In containers the function can die alone: API Gateway answers 502."""
    project = tmp_path / "rest"
    shutil.copytree(PROJECTS / "rest", project)
    thread, running = start(GatewayOptions(project_dir=project, port=0, autoreload=False,
                                           containers=True), project)
    try:
        status, _, body = get(running, "/crash")
        assert (status, json.loads(body)) == (502, {"message": "Internal server error"})
        assert get(running, "/items")[0] == 200  # a new container
    finally:
        stop(thread)
