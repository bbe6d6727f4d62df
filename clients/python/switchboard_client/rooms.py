"""Rooms and recovery: the only code that knows which streams the client follows.

It remembers the rooms the application joined (and those a backend subscribed
this user to), re-joins each with ``since`` and resumes the personal stream
after every (re)connect, and hands every message through its stream's
:class:`~switchboard_client.ordering.Stream`. Gaps that stay open and
recoveries the server declined are filled with ``history``; what cannot be
recovered is reported as ``recovery_failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from switchboard_client.errors import (
    CLOSED,
    CONNECTION_LOST,
    INTERNAL,
    NOT_CONNECTED,
    RATE_LIMITED,
    TIMEOUT,
    SwitchboardError,
)
from switchboard_client.options import Options
from switchboard_client.ordering import Frame, Position, Settled, Stream
from switchboard_client.requests import Requests

logger = logging.getLogger("switchboard_client")

HISTORY_PAGE_LIMIT = 100
RATE_LIMIT_RETRIES = 5
"""A recovery step or history fetch answered ``rate_limited`` is tried again this often."""
UNSUBSCRIBED = "unsubscribed"


class Connection(Protocol):
    """What rooms need to know of the connection."""

    @property
    def generation(self) -> int: ...

    @property
    def ready(self) -> bool: ...


@dataclass(eq=False)
class _Room:
    name: str
    stream: Stream
    waiters: list[asyncio.Future[Frame]] = field(default_factory=list)
    joining_on: int | None = None
    """The connection a ``joinRoom`` was sent on (or a ``subscribed`` frame came on)."""
    ack: Frame | None = None


class Rooms:
    """The remembered rooms, the personal stream, and their recovery."""

    def __init__(
        self,
        options: Options,
        requests: Requests,
        connection: Connection,
        emit: Callable[[dict[str, Any]], None],
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
    ) -> None:
        self._options = options
        self._requests = requests
        self._connection = connection
        self._emit = emit
        self._spawn = spawn
        self._rooms: dict[str, _Room] = {}
        self._personal = Stream()
        self._gap_timers: dict[str | None, asyncio.TimerHandle] = {}
        self._sending: Counter[str] = Counter()
        self.recovery_failed = 0

    # -- what the application asks --------------------------------------------------------

    async def join(self, room: str, since: Mapping[str, Any] | None) -> Frame:
        joined = self._rooms.get(room)
        generation = self._connection.generation
        if joined is not None and joined.ack is not None and joined.joining_on == generation:
            return joined.ack
        if joined is None:
            start = Position(str(since["epoch"]), int(since["seq"])) if since else None
            joined = self._rooms[room] = _Room(room, Stream(start))
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        joined.waiters.append(waiter)
        if self._connection.ready and joined.joining_on != generation:
            self._join_now(joined)
        timeout = self._options.request_timeout
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            if self._rooms.get(room) is joined and joined.ack is None:
                self._forget(joined)
            sent = joined.joining_on is not None
            raise SwitchboardError(
                TIMEOUT if sent else NOT_CONNECTED,
                f"joinRoom {room!r}: no answer within {timeout:g} s",
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                joined.waiters.remove(waiter)
            if not waiter.done():
                waiter.cancel()

    def leave(self, room: str) -> None:
        """Forget ``room`` (the ``leaveRoom`` request is the client's to send)."""
        joined = self._rooms.get(room)
        if joined is not None:
            self._forget(joined)
            left = SwitchboardError(CLOSED, f"left room {room!r} before it was joined")
            _settle_all(joined.waiters, error=left)

    async def send(self, room: str, text: str) -> Frame:
        """``sendToRoom``: its ack gives the message's ``seq``, which the stream marks seen."""
        self._sending[room] += 1
        try:
            return await self._requests.call(
                {"action": "sendToRoom", "room": room, "text": text},
                idempotent=False,
                on_answer=lambda ack: self._own_message(room, ack),
            )
        finally:
            self._sending[room] -= 1

    def position(self, room: str | None) -> dict[str, Any] | None:
        stream = self._stream(room)
        position = stream.position if stream is not None else None
        return position.as_since() if position is not None else None

    @property
    def names(self) -> list[str]:
        return sorted(self._rooms)

    def counts(self) -> dict[str, int]:
        streams = [self._personal, *(room.stream for room in self._rooms.values())]
        return {
            "recovery_failed": self.recovery_failed,
            "duplicates_dropped": sum(s.duplicates for s in streams),
            "replayed": sum(s.replayed for s in streams),
            "skipped": sum(s.skipped for s in streams),
        }

    # -- what a backend decides ------------------------------------------------------------

    def subscribed(self, frame: Frame) -> None:
        """A backend subscribed this user: keep the room from the frame's position on."""
        name = frame.get("room")
        if isinstance(name, str) and name not in self._rooms:
            room = self._rooms[name] = _Room(name, Stream(Position.of(frame)))
            room.joining_on = self._connection.generation
            room.ack = frame
        self._emit(frame)

    def unsubscribed(self, frame: Frame) -> None:
        """A backend removed this user: forget the room (it is not re-joined)."""
        name = frame.get("room")
        room = self._rooms.get(name) if isinstance(name, str) else None
        if room is not None:
            self._forget(room)
            reason = str(frame.get("reason", "unsubscribed by the server"))
            _settle_all(room.waiters, error=SwitchboardError(UNSUBSCRIBED, reason, frame=frame))
        self._emit(frame)

    # -- each connection -----------------------------------------------------------------------

    async def recover(self, generation: int) -> None:
        """Resume the personal stream and re-join every room, pipelined; raises when the
        connection cannot be set up (an ``internal`` error, a timeout).

        Called before the reader starts, so every stream holds what arrives from the
        first frame on (the synchronous part of each step runs now).
        """
        steps = [self._resume(), *(self._join(room, generation) for room in self._rooms.values())]
        results = await asyncio.gather(*steps, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def opened(self, generation: int) -> None:
        """The connection is ready: join the rooms added while the recovery ran."""
        for room in list(self._rooms.values()):
            if room.joining_on != generation:
                self._join_now(room)

    def dropped(self) -> None:
        self._cancel_gap_timers()
        for room in self._rooms.values():
            room.joining_on = None

    def close(self, error: SwitchboardError) -> None:
        self._cancel_gap_timers()
        for room in self._rooms.values():
            _settle_all(room.waiters, error=error)

    def _cancel_gap_timers(self) -> None:
        for timer in self._gap_timers.values():
            timer.cancel()
        self._gap_timers.clear()

    def _resume(self) -> Awaitable[None]:
        since = self._personal.begin()
        frame: Frame = {"action": "resume"}
        if since is not None:
            frame["since"] = since.as_since()

        async def answered() -> None:
            try:
                await self._recovery_step(frame, lambda ack: self._settle(None, ack))
            except SwitchboardError as error:
                if error.frame is None or error.code == INTERNAL:
                    raise
                # A server without personal streams (or refusing this since): nothing to order.
                logger.info("resume refused: %s", error)
                self._settle(None, {})

        return answered()

    def _join(self, room: _Room, generation: int) -> Awaitable[None]:
        """Send one ``joinRoom`` now (with ``since`` when the room has a position); the
        awaitable settles the room's waiters with its answer."""
        room.joining_on = generation
        since = room.stream.begin()
        frame: Frame = {"action": "joinRoom", "room": room.name}
        if since is not None:
            frame["since"] = since.as_since()

        async def answered() -> None:
            try:
                ack = await self._recovery_step(frame, lambda ack: self._settle(room.name, ack))
            except SwitchboardError as error:
                if error.frame is None or error.code == INTERNAL:
                    raise
                if since is not None:  # e.g. no 'history' permission: join without recovering
                    logger.info("joinRoom %s with since refused: %s", room.name, error)
                    room.stream.forget()
                    await self._join(room, generation)
                    return
                self._forget(room)
                self._emit(error.as_event(action="joinRoom", room=room.name))
                _settle_all(room.waiters, error=error)
                return
            room.ack = ack
            _settle_all(room.waiters, result=ack)

        return answered()

    async def _recovery_step(
        self, frame: Frame, on_answer: Callable[[Frame], None]
    ) -> Frame:
        """Send one recovery request now (the stream goes on holding what arrives)."""
        timeout = self._options.request_timeout
        return await _patiently(
            lambda: self._requests.wait(self._requests.send_internal(frame, on_answer), timeout)
        )

    def _join_now(self, room: _Room) -> None:
        """An application join, or a room added during a recovery: join on this connection."""
        generation = self._connection.generation
        joined = self._join(room, generation)

        async def join() -> None:
            try:
                await joined
            except SwitchboardError as error:
                if error.code == CONNECTION_LOST:
                    return  # still remembered: the next connection's recovery joins it
                if self._connection.generation == generation and self._rooms.get(room.name) is room:
                    self._forget(room)
                    _settle_all(room.waiters, error=error)

        self._spawn(join())

    def _forget(self, room: _Room) -> None:
        if self._rooms.get(room.name) is room:
            del self._rooms[room.name]
        timer = self._gap_timers.pop(room.name, None)
        if timer is not None:
            timer.cancel()

    # -- messages ----------------------------------------------------------------------------

    def _stream(self, room: str | None) -> Stream | None:
        if room is None:
            return self._personal
        joined = self._rooms.get(room)
        return joined.stream if joined is not None else None

    def route(self, frame: Frame) -> None:
        """A ``message`` frame: through its stream to the application."""
        room = frame.get("room")
        key = room if isinstance(room, str) else None
        stream = self._stream(key)
        if stream is None:
            logger.debug("message for room %r, which this client left: dropped", room)
            return
        self._release(key, stream.receive(frame))

    def _own_message(self, room: str, ack: Frame) -> None:
        stream = self._stream(room)
        if stream is not None:
            self._release(room, stream.seen(ack))

    def _settle(self, key: str | None, ack: Frame) -> None:
        stream = self._stream(key)
        if stream is not None:
            self._apply(key, stream, stream.settle(ack))

    def _apply(self, key: str | None, stream: Stream, settled: Settled) -> None:
        if settled.failed:
            self.recovery_failed += 1
            event: Frame = {"type": "recovery_failed"}
            if key is not None:
                event["room"] = key
            if stream.position is not None:
                event.update(stream.position.as_since())
            self._emit(event)
        self._release(key, settled.released)
        if settled.fill_to is not None:
            self._spawn(self._fill(key, stream, live=False))

    def _release(self, key: str | None, frames: list[Frame]) -> None:
        for frame in frames:
            self._emit(frame)
        stream = self._stream(key)
        timer = self._gap_timers.get(key)
        if stream is not None and stream.has_gap:
            if timer is None:
                loop = asyncio.get_running_loop()
                self._gap_timers[key] = loop.call_later(
                    self._options.gap_timeout, self._gap_expired, key
                )
        elif timer is not None:
            timer.cancel()
            del self._gap_timers[key]

    def _gap_expired(self, key: str | None) -> None:
        self._gap_timers.pop(key, None)
        stream = self._stream(key)
        if stream is None or not stream.has_gap or not self._connection.ready:
            return
        if key is not None and self._sending[key]:  # our own send's ack may close it
            self._release(key, [])
            return
        stream.start_fill()
        self._spawn(self._fill(key, stream, live=True))

    async def _fill(self, key: str | None, stream: Stream, live: bool) -> None:
        """Fetch ``(position, filling_to]`` with ``history`` and hand it to the stream.

        A live gap is always settled (what history does not have was never stored);
        a declined recovery only when history reaches back to the position.
        """
        generation = self._connection.generation
        messages: list[Frame] = []
        oldest: int | None = None
        start, upto = stream.position, stream.filling_to
        try:
            if start is None or upto is None:
                raise SwitchboardError(INTERNAL, "nothing to fill")
            # A live gap's upper end is held already; a recovery's may not have come.
            before, budget = (upto if live else upto + 1), self._options.fill_limit
            while budget > 0 and before - 1 > start.seq:
                frame: Frame = {"action": "history", "beforeSeq": before}
                frame["limit"] = min(HISTORY_PAGE_LIMIT, before - 1 - start.seq, budget)
                if key is not None:
                    frame["room"] = key
                page = await _patiently(functools.partial(self._requests.internal, frame))
                found = [m for m in page.get("messages") or [] if isinstance(m, dict)]
                seqs = [p.seq for m in found if (p := Position.of(m)) is not None]
                if page.get("epoch") != start.epoch or not seqs:
                    break
                messages += found
                budget -= len(found)
                oldest = min(seqs) if oldest is None else min(oldest, *seqs)
                if min(seqs) <= start.seq + 1 or not page.get("hasMore"):
                    break
                before = min(seqs)
        except SwitchboardError as error:
            logger.info("history fill for %r stopped: %s", key, error)
        if self._connection.generation != generation or stream.filling_to != upto:
            return  # the connection changed meanwhile; its recovery took over
        complete = live or stream.covers(oldest)
        self._apply(key, stream, stream.fill(messages, complete))

async def _patiently(send: Callable[[], Awaitable[Frame]]) -> Frame:
    """``send()``'s answer; one refused with ``rate_limited`` is sent again once the server's
    wait is over, up to ``RATE_LIMIT_RETRIES`` times."""
    for _ in range(RATE_LIMIT_RETRIES):
        try:
            return await send()
        except SwitchboardError as error:
            if error.code != RATE_LIMITED:
                raise
            await asyncio.sleep((error.retry_after_ms or 0) / 1000)
    return await send()


def _settle_all(
    waiters: list[asyncio.Future[Frame]],
    result: Frame | None = None,
    error: SwitchboardError | None = None,
) -> None:
    for waiter in waiters:
        if waiter.done():
            continue
        if error is not None:
            waiter.set_exception(error)
        else:
            assert result is not None
            waiter.set_result(result)

