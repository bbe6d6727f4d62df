"""A scripted stand-in for the gateway, for unit tests of a client's state machine.

It listens on a free loopback port and speaks over real ``websockets`` sockets,
but decides nothing: the test receives each frame the client sends and writes
each answer, so out-of-order messages, declined recoveries, refusals and odd
close codes are exact. Behaviour against the real server is tested end to end
in ``test_python_gateway.py`` and ``test_js_browser.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

WAIT = 10.0  # a liveness bound for one expected frame, never a performance assertion


class FakeConnection:
    """One accepted client socket."""

    def __init__(self, socket: ServerConnection, token: str | None) -> None:
        self.socket = socket
        self.token = token
        self.closed = asyncio.Event()

    async def receive(self, timeout: float = WAIT) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.socket.recv(), timeout))
        assert isinstance(frame, dict)
        return frame

    async def expect(self, action: str, timeout: float = WAIT, **fields: Any) -> dict[str, Any]:
        """The next frame must be this action (with these fields)."""
        frame = await self.receive(timeout)
        assert frame.get("action") == action, frame
        for name, value in fields.items():
            assert frame.get(name) == value, (name, frame)
        return frame

    async def send(self, frame: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(frame))

    async def ack(self, request: dict[str, Any], **fields: Any) -> None:
        await self.send({"type": "ack", "action": request["action"], "id": request["id"], **fields})

    async def answer(self, request: dict[str, Any], kind: str, **fields: Any) -> None:
        await self.send({"type": kind, "id": request["id"], **fields})

    async def error(self, request: dict[str, Any], code: str, message: str = "no") -> None:
        await self.send({"type": "error", "code": code, "message": message, "id": request["id"]})

    async def message(self, seq: int | None, epoch: str = "A", room: str | None = None,
                      text: str | None = None, sender: str = "bob") -> None:
        frame: dict[str, Any] = {"type": "message", "from": sender, "sentAt": "t"}
        frame["text"] = text if text is not None else f"m{seq}"
        if room is not None:
            frame["room"] = room
        if seq is not None:
            frame.update(seq=seq, epoch=epoch)
        await self.send(frame)

    async def recover(
        self, resume: dict[str, Any] | None = None, rooms: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Answer the client's recovery: ``resume`` first, then one ``joinRoom`` per room.

        Returns the frames received, by action or room name.
        """
        received = {"resume": await self.expect("resume")}
        await self.ack(received["resume"], **(resume if resume is not None else
                                              {"epoch": "P", "seq": 0}))
        for room, ack in (rooms or {}).items():
            join = await self.expect("joinRoom", room=room)
            received[room] = join
            await self.ack(join, room=room, **ack)
        return received

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.socket.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a crash, a dead network)."""
        self.socket.transport.abort()


class FakeServer:
    """``async with FakeServer() as server``: ``server.url``, ``await server.accept()``."""

    def __init__(self) -> None:
        self.refusals: deque[int] = deque()
        self.handshakes = 0
        self._accepted: asyncio.Queue[FakeConnection] = asyncio.Queue()
        self._server: Server | None = None

    async def __aenter__(self) -> FakeServer:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process, ping_interval=None
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/dev"

    def refuse(self, *statuses: int) -> None:
        """Refuse the next handshakes with these HTTP statuses."""
        self.refusals.extend(statuses)

    async def accept(self, timeout: float = WAIT) -> FakeConnection:
        return await asyncio.wait_for(self._accepted.get(), timeout)

    async def no_connection(self, within: float) -> None:
        """Assert that no client connects within ``within`` seconds."""
        try:
            connection = await asyncio.wait_for(self._accepted.get(), within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected connection with token {connection.token!r}")

    def _process(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        if self.refusals:
            status = self.refusals.popleft()
            body = f"refused with {status}\n".encode()
            return Response(status, "Refused", Headers({"Content-Length": str(len(body))}), body)
        return None

    async def _handle(self, socket: ServerConnection) -> None:
        assert socket.request is not None
        token = parse_qs(urlsplit(socket.request.path).query).get("token", [None])[0]
        connection = FakeConnection(socket, token)
        await self._accepted.put(connection)
        await socket.wait_closed()
        connection.closed.set()
