"""The client endpoint ``ws://HOST:PORT/<stage>``: handshake, frames, closes.

The upgrade waits for ``$connect``: a 2xx answer accepts it, any other status
refuses it with that status, a handler error with 500. Only then is the socket
opened, so no message can reach the app before ``$connect`` returned. Text
frames queue for ``$default``; a binary frame closes with 1003 and a message
over 128 KiB with 1009, as API Gateway does with Chalice's integration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.web_exceptions import HTTPException

from switchboard_local import stage
from switchboard_local.events import ApiContext, ConnectionContext
from switchboard_local.gateway.connections import (
    ABNORMAL_CLOSURE,
    GOING_AWAY,
    Lifecycle,
    SocketConnection,
)

logger = logging.getLogger("switchboard_local.gateway")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_PROXY_HEADERS = ("X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto")


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
        self.accepting = True
        """False once the gateway stops: new handshakes are refused with 503, so a
        client that reconnects at once cannot hold the shutdown up."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if not (upgrade and self.has_routes()):
            if self.otherwise is not None:
                return await self.otherwise(request)
            return web.Response(status=426, text="This is a WebSocket URL: connect with ws://\n")
        if not self.accepting:
            return web.Response(status=503, text="The gateway is stopping\n")
        connection = SocketConnection(self._context(request))
        self.lifecycle.table.add(connection)
        refusal = await self._run_connect(connection, request)
        if refusal is not None:
            self.lifecycle.table.remove(connection)
            return refusal
        socket = web.WebSocketResponse(
            max_msg_size=self.lifecycle.limits.max_message_bytes,
            autoping=True,
            protocols=_accepted_protocols(connection),
        )
        try:
            await socket.prepare(request)
        except (ConnectionError, HTTPException):
            connection.record_close(ABNORMAL_CLOSURE)
            await self.lifecycle.finish(connection)
            raise
        connection.socket = socket
        connection.open()
        if not self.accepting:  # the gateway began stopping while $connect ran
            await connection.close(GOING_AWAY, "Going away")
        await self._serve(connection, socket)
        return socket

    def _context(self, request: web.Request) -> ConnectionContext:
        return ConnectionContext(
            self.api,
            source_ip=request.remote or "127.0.0.1",
            user_agent=request.headers.get("User-Agent"),
        )

    async def _run_connect(
        self, connection: SocketConnection, request: web.Request
    ) -> web.Response | None:
        """``None`` when ``$connect`` accepted; otherwise the refusal to answer with."""
        event = connection.context.connect_event(
            _connect_headers(request, self.api), _query(request)
        )
        try:
            result = await self.lifecycle.invoker.invoke_route("$connect", event)
        except Exception:
            logger.exception("$connect failed on %s", connection.id)
            return web.Response(status=500, text="Internal server error")
        if connection.accept(result):
            return None
        body = result.get("body")
        return web.Response(
            status=stage.connect_status(result), text=body if isinstance(body, str) else None
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
        """Read until the socket closes, recording who closed it with what code and reason."""
        while True:
            message = await socket.receive()
            if message.type is WSMsgType.TEXT:
                connection.touch()
                connection.inbox.put_nowait(message.data)
            elif message.type is WSMsgType.BINARY:
                await connection.close(WSCloseCode.UNSUPPORTED_DATA, "Binary frames unsupported")
            elif message.type is WSMsgType.CLOSE:
                connection.record_close(int(message.data), message.extra or "")
            elif message.type is WSMsgType.ERROR:
                code = int(getattr(message.data, "code", ABNORMAL_CLOSURE))
                connection.record_close(code, "Message too big" if code == 1009 else "")
            if message.type in _END_OF_SOCKET:
                break
        connection.record_close(_client_close_code(socket), "")


_END_OF_SOCKET = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


def _client_close_code(socket: web.WebSocketResponse) -> int:
    code = socket.close_code
    return int(code) if code is not None else ABNORMAL_CLOSURE


def _connect_headers(request: web.Request, api: ApiContext) -> dict[str, list[str]]:
    """The client's headers as API Gateway forwards them, with its proxy headers."""
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        if name.lower() != "host":
            headers.setdefault(name, []).append(value)
    headers["Host"] = [api.domain_name]
    for name, value in zip(
        _PROXY_HEADERS, (request.remote or "127.0.0.1", str(_port(request)), "http"), strict=True
    ):
        headers.setdefault(name, [value])
    return headers


def _port(request: web.Request) -> int:
    sockname: Any = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else 0


def _query(request: web.Request) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for name, value in request.query.items():
        query.setdefault(name, []).append(value)
    return query


def _accepted_protocols(connection: SocketConnection) -> tuple[str, ...]:
    """The subprotocol ``$connect`` chose, echoed as API Gateway echoes its header."""
    headers = connection.connect_result.get("headers") or {}
    chosen = {k.lower(): v for k, v in headers.items()}.get("sec-websocket-protocol")
    return (chosen,) if isinstance(chosen, str) and chosen else ()
