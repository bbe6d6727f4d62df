"""End to end through ``make run``: a client dropped twice recovers every message once, in order.

The real command serves the app on a free port with real sockets. A reader
in a room is dropped by the management API (``DELETE @connections/{id}``) and
then by aborting its TCP connection (an RST, no close frame); messages are sent
to the room and to the reader directly while it is away. Each time it
reconnects with a fresh socket, rejoins with ``since`` and resumes its
personal stream, and it must see every message exactly once, in ``seq`` order.
"""

from __future__ import annotations

import json
import socket
import struct
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.gateways import WAIT, eventually
from tests.switchboard_local.installed import Served


@dataclass
class Gateway:
    websocket_url: str
    management_url: str
    base: str

    @classmethod
    def of(cls, served: Served) -> Gateway:
        """The URLs ``make run``'s banner printed."""
        management = served.first("Management").split("/@connections/")[0]
        return cls(served.first("WebSocket"), management, served.base)

    def token(self, user_id: str) -> str:
        query = urllib.parse.urlencode({"userId": user_id})
        with urllib.request.urlopen(f"{self.base}/_local/token?{query}", timeout=WAIT) as r:
            return str(json.load(r)["token"])

    def connect(self, user_id: str) -> ClientConnection:
        url = f"{self.websocket_url}?token={self.token(user_id)}"
        return connect(url, open_timeout=WAIT, close_timeout=WAIT, legacy=True)


@pytest.fixture(scope="module")
def gateway(make_run: Served) -> Gateway:
    """``make run`` on a free port (stopped with Ctrl-C afterwards); the module's own."""
    return Gateway.of(make_run)


def request(client: ClientConnection, frame: dict[str, Any]) -> list[dict[str, Any]]:
    """Send a frame; return every frame up to and including its answer (matched by id)."""
    frame_id = uuid.uuid4().hex[:8]
    client.send(json.dumps({**frame, "id": frame_id}))
    frames = []
    while True:
        received = json.loads(client.recv(timeout=WAIT))
        frames.append(received)
        if received.get("id") == frame_id:
            return frames


def abort(client: ClientConnection) -> None:
    """Drop the TCP connection with a reset: no close frame, as a phone losing its network."""
    client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.socket.close()


class Reader:
    """The client under test: remembers what it saw, by stream, and recovers from there."""

    def __init__(self, served: Gateway, user: str, room: str) -> None:
        self.served, self.user, self.room = served, user, room
        self.room_messages: list[dict[str, Any]] = []
        self.direct_messages: list[dict[str, Any]] = []
        self.room_position: dict[str, Any] | None = None
        self.inbox_position: dict[str, Any] | None = None
        self.client: ClientConnection | None = None

    def start(self) -> ClientConnection:
        """(Re)connect, rejoin with ``since``, resume: both must say recovered (after the first)."""
        self.client = self.served.connect(self.user)
        join: dict[str, Any] = {"action": "joinRoom", "room": self.room}
        if self.room_position is not None:
            join["since"] = self.room_position
        joined = self.take(request(self.client, join))
        resume: dict[str, Any] = {"action": "resume"}
        if self.inbox_position is not None:
            resume["since"] = self.inbox_position
        resumed = self.take(request(self.client, resume))
        if self.room_position is not None:
            assert (joined["recovered"], resumed["recovered"]) == (True, True)
        self.room_position = self.room_position or {"epoch": joined["epoch"],
                                                    "seq": joined["seq"]}
        self.inbox_position = self.inbox_position or {"epoch": resumed["epoch"],
                                                      "seq": resumed["seq"]}
        return self.client

    def take(self, frames: list[dict[str, Any]]) -> dict[str, Any]:
        """Keep the messages among frames; return the last one (the answer)."""
        for frame in frames:
            if frame["type"] != "message":
                continue
            stream = self.room_messages if "room" in frame else self.direct_messages
            position = self.room_position if "room" in frame else self.inbox_position
            stream.append(frame)
            if position is not None:
                position["seq"] = frame["seq"]
        return frames[-1]

    def receive_live(self, count: int) -> None:
        assert self.client is not None
        self.take([json.loads(self.client.recv(timeout=WAIT)) for _ in range(count)])

    def connection_id(self) -> str:
        assert self.client is not None
        return str(self.take(request(self.client, {"action": "whoami"}))["connectionId"])


def test_a_dropped_client_recovers_every_message_once_in_order(gateway: Gateway) -> None:
    room, user = f"e2e-{uuid.uuid4().hex[:6]}", f"reader-{uuid.uuid4().hex[:6]}"
    sender = gateway.connect(f"sender-{uuid.uuid4().hex[:6]}")
    request(sender, {"action": "joinRoom", "room": room})
    reader = Reader(gateway, user, room)
    reader.start()
    sent_room: list[str] = []
    sent_direct: list[str] = []

    def send(count: int, tag: str) -> None:
        for n in range(count):
            text = f"{tag}-{n}"
            request(sender, {"action": "sendToRoom", "room": room, "text": text})
            request(sender, {"action": "sendMessage", "targetUserId": user, "text": text})
            sent_room.append(text)
            sent_direct.append(text)

    send(5, "live-1")
    reader.receive_live(10)

    # Drop 1: the management API closes the socket ($disconnect runs).
    management = boto3.client(
        "apigatewaymanagementapi", endpoint_url=gateway.management_url, region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local",
    )
    assert reader.client is not None
    management.delete_connection(ConnectionId=reader.connection_id())
    with pytest.raises(ConnectionClosed):
        reader.client.recv(timeout=WAIT)
    send(7, "away-1")
    reader.start()
    send(3, "live-2")
    reader.receive_live(6)

    # Drop 2: the TCP connection is reset; the gateway finds out on its own.
    dropped_id = reader.connection_id()
    assert reader.client is not None
    abort(reader.client)
    send(7, "away-2")
    eventually(lambda: _gone(management, dropped_id))
    send(2, "away-3")
    reader.start()
    send(4, "live-3")
    reader.receive_live(8)

    for received, sent in ((reader.room_messages, sent_room),
                           (reader.direct_messages, sent_direct)):
        assert [m["text"] for m in received] == sent  # every one, once, in order
        seqs = [m["seq"] for m in received]
        assert seqs == list(range(seqs[0], seqs[0] + len(sent)))
        assert len({m["epoch"] for m in received}) == 1
    sender.close()
    assert reader.client is not None
    reader.client.close()


def _gone(management: Any, connection_id: str) -> bool:
    try:
        management.get_connection(ConnectionId=connection_id)
    except management.exceptions.GoneException:
        return True
    return False
