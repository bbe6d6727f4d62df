"""The client endpoint ``ws://HOST:PORT/<stage>``: handshakes, frames, closes on aiohttp.

The stage core decides (:mod:`switchboard_local.stage`): the upgrade waits
for ``$connect`` and is accepted or refused as the core answers, so no
message can reach the app before ``$connect`` returned; text messages queue
for ``$default``; binary frames, frames over 32 KiB and messages over
128 KiB close the socket with the core's codes. This module reads the
socket and reports what happened. Frames are read before aiohttp reassembles
them (:class:`_GuardedParser`, the core's :class:`~switchboard_local.frames.FrameGuard`)
and no compression is negotiated, so frame sizes are what the client put on
the wire.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.web_exceptions import HTTPException

from switchboard_local import stage
from switchboard_local.events import ApiContext, ConnectionContext, connect_headers
from switchboard_local.frames import FrameGuard
from switchboard_local.gateway.connections import Lifecycle, SocketConnection, integrate

logger = logging.getLogger("switchboard_local.gateway")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebsocketEndpoint:
    """The aiohttp handler for the stage URL."""

    def __init__(
        self, api: ApiContext, lifecycle: Lifecycle, otherwise: Handler | None = None,
        has_routes: Callable[[], bool] = lambda: True,
    ) -> None:
        """``otherwise`` answers what is not a WebSocket request to a WebSocket app at the
        stage URL (the app's REST routes); ``has_routes`` tells whether the app (as last
        loaded) has WebSocket handlers at all."""
        self.api = api
        self.lifecycle = lifecycle
        self.otherwise = otherwise
        self.has_routes = has_routes

    async def handle(self, request: web.Request) -> web.StreamResponse:
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if not (upgrade and self.has_routes()):
            if self.otherwise is not None:
                return await self.otherwise(request)
            return web.Response(status=426, text="This is a WebSocket URL: connect with ws://\n")
        table = self.lifecycle.table
        connection = SocketConnection(self._context(request), self.lifecycle.limits)
        refusal = table.admit(connection)
        if refusal is not None:
            return web.Response(status=refusal.status, text=refusal.body)
        event = connection.connect_event(self._headers(request), _query(request))
        answer = connection.handshake(
            await integrate(self.lifecycle.invoker.invoke_route("$connect", event), "$connect",
                            self.lifecycle.limits.integration_timeout)
        )
        if isinstance(answer, stage.Refuse):
            table.remove(connection)
            return web.Response(status=answer.status, text=answer.body)
        socket = web.WebSocketResponse(
            # aiohttp refuses a message whose size reaches max_msg_size: one more byte
            # lets a message of exactly the limit through, as API Gateway does.
            max_msg_size=self.lifecycle.limits.max_message_bytes + 1, autoping=True,
            protocols=answer.protocols, compress=False,
        )
        try:
            await socket.prepare(request)
        except (ConnectionError, HTTPException):
            connection.record_close(stage.ABNORMAL_CLOSURE)
            await self.lifecycle.finish(connection)
            raise
        connection.socket = socket
        _guard_frames(request, connection)
        await connection.carry_out(connection.open(table.accepting))
        await self._serve(connection, socket)
        return socket

    def _context(self, request: web.Request) -> ConnectionContext:
        return ConnectionContext(
            self.api,
            source_ip=request.remote or "127.0.0.1",
            user_agent=request.headers.get("User-Agent"),
        )

    def _headers(self, request: web.Request) -> dict[str, list[str]]:
        return connect_headers(
            request.headers.items(), self.api.domain_name, request.remote or "127.0.0.1",
            _port(request),
        )

    async def _serve(self, connection: SocketConnection, socket: web.WebSocketResponse) -> None:
        messages = asyncio.create_task(self.lifecycle.run_messages(connection))
        timeouts = asyncio.create_task(self.lifecycle.watch_timeouts(connection))
        try:
            await self._read(connection, socket)
        finally:
            timeouts.cancel()
            connection.inbox.put_nowait(None)
            await asyncio.shield(self._finish(connection, messages))

    async def _finish(self, connection: SocketConnection, messages: asyncio.Task[None]) -> None:
        await messages
        await self.lifecycle.finish(connection)

    async def _read(self, connection: SocketConnection, socket: web.WebSocketResponse) -> None:
        """Read until the socket closes, reporting each frame and close to the core."""
        while True:
            message = await socket.receive()
            if message.type is WSMsgType.TEXT:
                connection.touch()
                connection.inbox.put_nowait(message.data)
            elif message.type is WSMsgType.BINARY:
                await connection.carry_out(connection.received_binary())
            elif message.type is WSMsgType.CLOSE:
                connection.client_closed(int(message.data), message.extra or "")
            elif message.type is WSMsgType.ERROR:
                connection.protocol_error(
                    int(getattr(message.data, "code", stage.ABNORMAL_CLOSURE))
                )
            if message.type in _END_OF_SOCKET:
                break
        connection.record_close(_close_code(socket))


_END_OF_SOCKET = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


def _close_code(socket: web.WebSocketResponse) -> int:
    code = socket.close_code
    return int(code) if code else stage.ABNORMAL_CLOSURE


class _GuardedParser:
    """aiohttp's frame parser behind the core's frame guard: it never sees a frame over
    the limit, and the connection is closed with the core's code when one comes."""

    def __init__(self, parser: Any, guard: FrameGuard, tripped: Callable[[], None]) -> None:
        self._parser = parser
        self._guard = guard
        self._tripped = tripped

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        passed, found = self._guard.filter(data)
        if found:
            self._tripped()
        if not passed:
            return False, b""
        return self._parser.feed_data(passed)  # type: ignore[no-any-return]

    def feed_eof(self) -> Any:
        return self._parser.feed_eof()


def _guard_frames(request: web.Request, connection: SocketConnection) -> None:
    """Put the frame guard in front of aiohttp's parser of this upgraded request.

    aiohttp has no public hook on raw frames: this wraps the parser its
    request handler feeds (``RequestHandler._payload_parser``), set when the
    upgrade completed.
    """
    protocol: Any = request.protocol
    parser = getattr(protocol, "_payload_parser", None)
    if parser is None:
        logger.warning("frame sizes are not checked: aiohttp's parser was not found")
        return
    loop = asyncio.get_running_loop()
    guard = FrameGuard(connection.limits.max_frame_bytes)

    def tripped() -> None:
        closing = loop.create_task(connection.carry_out(connection.frame_too_big()))
        connection.tasks.add(closing)
        closing.add_done_callback(connection.tasks.discard)

    protocol._payload_parser = _GuardedParser(parser, guard, tripped)


def _port(request: web.Request) -> int:
    sockname: Any = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else 0


def _query(request: web.Request) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for name, value in request.query.items():
        query.setdefault(name, []).append(value)
    return query
