"""Gateways for the tests: real sockets on free loopback ports, embedded store.

Shared by the gateway's own tests (``tests/switchboard_local``), the project's
end-to-end tests (``tests/e2e``) and the clients' (``tests/clients``, ``tests/web``).
Tests use unique user ids, so they share a gateway.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from chalicelib import runtime
from switchboard_local.gateway.server import Gateway, GatewayOptions, GatewayThread
from switchboard_local.stage import MAX_FRAME_BYTES

REPO = Path(__file__).resolve().parents[1]
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


def send_text(connection: ClientConnection, text: str) -> None:
    """Send a text message as a client must to API Gateway: in frames of at most 32 KiB
    (one larger frame closes the socket with 1009, whatever the message's size)."""
    data = text.encode("utf-8")
    if len(data) <= MAX_FRAME_BYTES:
        connection.send(text)
        return
    pieces, start = [], 0
    while start < len(data):
        end = min(start + MAX_FRAME_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # not inside a character
            end -= 1
        pieces.append(data[start:end].decode("utf-8"))
        start = end
    connection.send(pieces)


def start(options: GatewayOptions, project_dir: Path) -> tuple[GatewayThread, Running]:
    runtime.reset()
    thread = GatewayThread(options)
    return thread, Running(thread.start(), project_dir)


def stop(thread: GatewayThread) -> None:
    thread.stop()
    runtime.reset()


def http_call(
    address: str, path: str, method: str = "GET", headers: dict[str, str] | None = None,
    body: bytes | None = None, source: str | None = None,
) -> tuple[int | str, Any]:
    """One request to ``HOST:PORT`` with exactly these headers (``Host`` too, when given),
    from the ``source`` address when given: its status and JSON (or text) body, or
    ``("refused", None)`` when nothing listens there."""
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(
        host, int(port), timeout=WAIT, source_address=(source, 0) if source else None
    )
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        raw = answer.read()
    except ConnectionRefusedError:
        return "refused", None
    finally:
        connection.close()
    try:
        return answer.status, json.loads(raw)
    except ValueError:
        return answer.status, raw.decode(errors="replace")


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
