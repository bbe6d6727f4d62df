"""Each connection's state and lifecycle, as API Gateway keeps it.

A connection is *connecting* while ``$connect`` runs (the management API
answers 410 for it), *open* once ``$connect`` accepted it, and *closed* after
its socket closed, whoever closed it. Its messages are handed to ``$default``
one at a time in arrival order, never before ``$connect`` returned, and
``$disconnect`` runs exactly once, after the last of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from aiohttp import web

from switchboard_local.events import MAX_POST_BYTES, ConnectionContext
from switchboard_local.gateway.invoker import Invoker

logger = logging.getLogger("switchboard_local.gateway")

GOING_AWAY = 1001
ABNORMAL_CLOSURE = 1006


class State(Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Limits:
    """API Gateway's per-connection limits (seconds, bytes)."""

    idle_timeout: float = 600.0
    max_duration: float = 7200.0
    max_message_bytes: int = MAX_POST_BYTES


@dataclass
class Connection:
    """One client socket and what API Gateway remembers about it."""

    context: ConnectionContext
    state: State = State.CONNECTING
    socket: web.WebSocketResponse | None = None
    last_active: float = field(default_factory=time.time)
    close_code: int | None = None
    close_reason: str = ""
    connect_result: dict[str, Any] = field(default_factory=dict)
    inbox: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def id(self) -> str:
        return self.context.connection_id

    def touch(self) -> None:
        self.last_active = time.time()

    def record_close(self, code: int, reason: str = "") -> None:
        """The first close wins: later reports of the same close change nothing."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason

    async def send(self, text: str) -> None:
        assert self.socket is not None
        await self.socket.send_str(text)
        self.touch()

    async def close(self, code: int, reason: str = "") -> None:
        """Close from the server side (DeleteConnection, timeouts, limits, shutdown)."""
        self.record_close(code, reason)
        if self.socket is not None and not self.socket.closed:
            await self.socket.close(code=code, message=reason.encode())


class ConnectionTable:
    """The live connections of one stage, by id."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}

    def add(self, connection: Connection) -> None:
        self._connections[connection.id] = connection

    def remove(self, connection: Connection) -> None:
        self._connections.pop(connection.id, None)

    def open(self, connection_id: str) -> Connection | None:
        """The connection if it is open: unknown, connecting and closed ones are gone (410)."""
        connection = self._connections.get(connection_id)
        if connection is None or connection.state is not State.OPEN:
            return None
        return connection

    def all(self) -> list[Connection]:
        return list(self._connections.values())


class Lifecycle:
    """Runs a connection's ``$default`` and ``$disconnect`` invocations and its timers."""

    def __init__(self, invoker: Invoker, table: ConnectionTable, limits: Limits) -> None:
        self.invoker = invoker
        self.table = table
        self.limits = limits

    async def run_messages(self, connection: Connection) -> None:
        """Hand queued messages to ``$default`` in order; ``None`` ends the queue."""
        while (body := await connection.inbox.get()) is not None:
            event = connection.context.message_event(body)
            try:
                await self.invoker.invoke("$default", event)
            except Exception:
                logger.exception("$default failed on %s", connection.id)
                await self._internal_error(connection, event)

    async def _internal_error(self, connection: Connection, event: dict[str, Any]) -> None:
        """What API Gateway sends a client whose message's integration failed."""
        frame = {
            "message": "Internal server error",
            "connectionId": connection.id,
            "requestId": event["requestContext"]["requestId"],
        }
        with contextlib.suppress(ConnectionError, RuntimeError):
            if connection.state is State.OPEN:
                await connection.send(json.dumps(frame))

    async def watch_timeouts(self, connection: Connection) -> None:
        """Close with 1001 after the idle timeout or the maximum duration."""
        opened = time.monotonic()
        while connection.state is State.OPEN:
            idle_left = connection.last_active + self.limits.idle_timeout - time.time()
            duration_left = opened + self.limits.max_duration - time.monotonic()
            if idle_left <= 0 or duration_left <= 0:
                await connection.close(GOING_AWAY, "Going away")
                return
            await asyncio.sleep(min(idle_left, duration_left))

    async def finish(self, connection: Connection) -> None:
        """After the socket closed: drain messages, then ``$disconnect``, exactly once."""
        connection.state = State.CLOSED
        self.table.remove(connection)
        code = connection.close_code if connection.close_code is not None else ABNORMAL_CLOSURE
        event = connection.context.disconnect_event(code, connection.close_reason)
        try:
            await self.invoker.invoke("$disconnect", event)
        except Exception:
            logger.exception("$disconnect failed on %s", connection.id)
        finally:
            connection.finished.set()
