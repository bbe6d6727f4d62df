"""Hostile frames end to end: a real WebSocket through the local gateway.

The same properties as test_hostile_frames.py, over a socket: every text frame
gets exactly one answer — proved by a fence, a ``ping`` with a fresh id sent
after each frame, whose ``pong`` must be the very next frame — the socket stays
open, and a rejected frame leaves the registry unchanged. Frames stay under
the 128 KiB message limit (the gateway closes the socket above it, as AWS does)
and are valid UTF-8 (a WebSocket text frame cannot carry anything else).
Sources: API Gateway's WebSocket quotas (message payload 128 KiB:
https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#apigateway-execution-service-websocket-limits-table)
and RFC 6455 section 5.6 (text frames are UTF-8).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings

from tests.chalicelib.test_hostile_frames import check_answer, hostile_frames
from tests.gateways import WAIT, Running, send_text, unique

FRAMES_OVER_THE_SOCKET = 120
_fences = itertools.count()


def sendable(body: str) -> bool:
    try:
        return len(body.encode("utf-8")) < 100 * 1024
    except UnicodeEncodeError:
        return False


def scan_all(running: Running) -> list[dict[str, Any]]:
    store = running.gateway.store
    assert store is not None
    client = boto3.client("dynamodb", endpoint_url=store.endpoint)
    items: list[dict[str, Any]] = []
    for table in client.list_tables()["TableNames"]:
        items.extend(client.scan(TableName=table, ConsistentRead=True)["Items"])
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


@pytest.fixture
def socket(switchboard_gateway: Running) -> Iterator[Any]:
    user = unique("hostile")
    token = switchboard_gateway.token(user)
    with switchboard_gateway.connect(f"token={token}") as connection:
        connection.send(json.dumps({"action": "joinRoom", "room": "lobby"}))
        while json.loads(connection.recv(timeout=WAIT))["type"] != "ack":
            pass  # others' presence in the shared lobby
        yield connection


def exchange(connection: Any, body: str) -> dict[str, Any] | None:
    """Send a frame and its fence; return the one answer that came before the fence (None:
    a notice without an id, carried out)."""
    fence = f"fence-{next(_fences)}"
    send_text(connection, body)
    connection.send(json.dumps({"action": "ping", "id": fence}))
    frames: list[dict[str, Any]] = []
    while True:
        frame = json.loads(connection.recv(timeout=WAIT))
        if frame == {"type": "pong", "id": fence}:
            break
        frames.append(frame)
    return check_answer(body, frames)


@given(body=hostile_frames.filter(sendable))
@hypothesis_settings(max_examples=FRAMES_OVER_THE_SOCKET)
def test_every_frame_over_a_real_socket_gets_one_answer(
    switchboard_gateway: Running, socket: Any, body: str
) -> None:
    before = scan_all(switchboard_gateway)
    answer = exchange(socket, body)
    if answer is None or answer["type"] == "error":
        assert scan_all(switchboard_gateway) == before, body[:200]


def test_a_127_kib_text_is_refused_and_the_socket_stays_open(socket: Any) -> None:
    body = json.dumps({"action": "sendToRoom", "room": "lobby", "text": "x" * (127 * 1024)})
    assert (exchange(socket, body) or {}).get("code") == "too_large"
    assert (exchange(socket, json.dumps({"action": "whoami"})) or {}).get("rooms") == ["lobby"]
