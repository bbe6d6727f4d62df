"""The gateway's connections: the stage core's state machine on aiohttp sockets.

Every decision is :mod:`switchboard_local.stage`'s; this module carries them
out on the event loop: the socket, the inbox whose messages are handed to
``$default`` one at a time in arrival order (never before ``$connect``
returned), the timer the core's deadlines set, and ``$disconnect``, run
exactly once after the last message was handled. API Gateway waits at most
29 s for an integration (:func:`integrate`); the function may run on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from aiohttp import web

from switchboard_local import stage
from switchboard_local.gateway.invoker import Invocation, Invoker, outcome_of

logger = logging.getLogger("switchboard_local.gateway")

Limits = stage.Limits


@dataclass(eq=False)
class SocketConnection(stage.Connection):
    """A stage connection with its aiohttp socket and the queue of its messages."""

    socket: web.WebSocketResponse | None = None
    inbox: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    """Tasks started for this connection from callbacks, kept until done."""

    async def send(self, text: str) -> None:
        assert self.socket is not None
        await self.socket.send_str(text)
        self.touch()

    async def carry_out(self, close: stage.Close | None) -> None:
        """Close the socket as the core decided (None: nothing to do)."""
        if close is not None and self.socket is not None and not self.socket.closed:
            await self.socket.close(code=close.code, message=close.reason.encode())


Table = stage.ConnectionTable[SocketConnection]


def integrate(
    invocation: Invocation, what: str, seconds: float = stage.INTEGRATION_TIMEOUT_SECONDS
) -> asyncio.Future[stage.RouteOutcome]:
    """An invocation as API Gateway sees it: its outcome, or its integration timeout
    (the invocation goes on, as on AWS). Futures and a timer, no task: this is every
    message's path."""
    if invocation.done():
        return invocation  # type: ignore[return-value]
    loop = asyncio.get_running_loop()
    waited: asyncio.Future[stage.RouteOutcome] = loop.create_future()

    def timed_out() -> None:
        if not waited.done():
            logger.error("%s: no answer after %g s: API Gateway's integration timeout", what,
                         seconds)
            waited.set_result(stage.IntegrationTimedOut())

    timer = loop.call_later(seconds, timed_out)

    def ended(done: Invocation) -> None:
        timer.cancel()
        if not waited.done():
            waited.set_result(outcome_of(done))

    invocation.add_done_callback(ended)
    return waited


class Lifecycle:
    """Runs a connection's ``$default`` and ``$disconnect`` invocations and its timers."""

    def __init__(self, invoker: Invoker, table: Table, limits: Limits) -> None:
        self.invoker = invoker
        self.table = table
        self.limits = limits

    async def run_messages(self, connection: SocketConnection) -> None:
        """Hand queued messages to ``$default`` in order; ``None`` ends the queue."""
        while (body := await connection.inbox.get()) is not None:
            event = connection.message_event(body)
            outcome = await integrate(self.invoker.invoke_route("$default", event), "$default",
                                      self.limits.integration_timeout)
            frame = connection.failure_frame(event, outcome)
            if frame is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await connection.send(frame)

    async def watch_timeouts(self, connection: SocketConnection) -> None:
        """Close with 1001 after the idle timeout or the maximum duration."""
        while (deadline := connection.next_deadline()) is not None:
            if isinstance(deadline, stage.Close):
                await connection.carry_out(deadline)
                return
            await asyncio.sleep(deadline)

    async def finish(self, connection: SocketConnection) -> None:
        """After the socket closed: ``$disconnect``, exactly once."""
        event = connection.socket_closed()
        self.table.remove(connection)
        try:
            if event is not None:
                await self.invoker.invoke_route("$disconnect", event)
        finally:
            connection.finished.set()
