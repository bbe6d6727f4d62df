"""The gateway's connections: the stage core's state machine on aiohttp sockets.

The rules (states, who may be posted to) are :mod:`switchboard_local.stage`'s;
this module adds the socket, the inbox whose messages are handed to
``$default`` one at a time in arrival order (never before ``$connect``
returned), the timers, and ``$disconnect``, run exactly once after the last
message was handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from switchboard_local import stage
from switchboard_local.events import MAX_POST_BYTES
from switchboard_local.gateway.invoker import Invoker

logger = logging.getLogger("switchboard_local.gateway")

GOING_AWAY = 1001
ABNORMAL_CLOSURE = 1006


@dataclass(frozen=True)
class Limits:
    """API Gateway's per-connection limits (seconds, bytes)."""

    idle_timeout: float = 600.0
    max_duration: float = 7200.0
    max_message_bytes: int = MAX_POST_BYTES


@dataclass(eq=False)
class SocketConnection(stage.Connection):
    """A stage connection with its aiohttp socket and the queue of its messages."""

    socket: web.WebSocketResponse | None = None
    inbox: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, text: str) -> None:
        assert self.socket is not None
        await self.socket.send_str(text)
        self.touch()

    async def close(self, code: int, reason: str = "") -> None:
        """Close from the server side (DeleteConnection, timeouts, limits, shutdown)."""
        self.record_close(code, reason)
        if self.socket is not None and not self.socket.closed:
            await self.socket.close(code=code, message=reason.encode())


Table = stage.ConnectionTable[SocketConnection]


class Lifecycle:
    """Runs a connection's ``$default`` and ``$disconnect`` invocations and its timers."""

    def __init__(self, invoker: Invoker, table: Table, limits: Limits) -> None:
        self.invoker = invoker
        self.table = table
        self.limits = limits

    async def run_messages(self, connection: SocketConnection) -> None:
        """Hand queued messages to ``$default`` in order; ``None`` ends the queue."""
        while (body := await connection.inbox.get()) is not None:
            event = connection.context.message_event(body)
            try:
                await self.invoker.invoke_route("$default", event)
            except Exception:
                logger.exception("$default failed on %s", connection.id)
                await self._internal_error(connection, event)

    async def _internal_error(self, connection: SocketConnection, event: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            if connection.state is stage.State.OPEN:
                await connection.send(stage.internal_error_frame(event))

    async def watch_timeouts(self, connection: SocketConnection) -> None:
        """Close with 1001 after the idle timeout or the maximum duration."""
        opened = time.monotonic()
        while connection.state is stage.State.OPEN:
            idle_left = connection.last_active + self.limits.idle_timeout - time.time()
            duration_left = opened + self.limits.max_duration - time.monotonic()
            if idle_left <= 0 or duration_left <= 0:
                await connection.close(GOING_AWAY, "Going away")
                return
            await asyncio.sleep(min(idle_left, duration_left))

    async def finish(self, connection: SocketConnection) -> None:
        """After the socket closed: ``$disconnect``, exactly once."""
        connection.state = stage.State.CLOSED
        self.table.remove(connection)
        code = connection.close_code if connection.close_code is not None else ABNORMAL_CLOSURE
        event = connection.context.disconnect_event(code, connection.close_reason)
        try:
            await self.invoker.invoke_route("$disconnect", event)
        except Exception:
            logger.exception("$disconnect failed on %s", connection.id)
        finally:
            connection.finished.set()
