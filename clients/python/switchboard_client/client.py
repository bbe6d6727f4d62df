"""The Switchboard client: one WebSocket kept alive across API Gateway's closes.

:class:`Client` is the application's side: its requests, its events, and the
routing of every frame that arrives to the part of the client it concerns. The
work is done by three parts, each the only owner of its state:

* :class:`~switchboard_client.connection.Connection`: the socket's life
  (handshakes, backoff, heartbeat, planned reconnects, token refresh, the
  server's ``disconnect``);
* :class:`~switchboard_client.requests.Requests`: ids, answers, timeouts, what
  waits for a connection and what a drop fails, notices;
* :class:`~switchboard_client.rooms.Rooms`: the rooms and the personal stream,
  their recovery after every (re)connect and the ordering of their messages, so
  the application sees each exactly once and in order, or a ``recovery_failed``
  event.
"""

from __future__ import annotations

import asyncio
import json
import random as random_module
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any, cast
from urllib.parse import urlsplit

from switchboard_client.connection import Connection, Token
from switchboard_client.errors import (
    CLOSED,
    INTERNAL,
    NOT_CONNECTED,
    TOKEN_EXPIRED,
    SwitchboardError,
)
from switchboard_client.events import (
    Ack,
    Coalesce,
    Event,
    HistoryPage,
    Members,
    Pong,
    Since,
    State,
    Stats,
    Whoami,
)
from switchboard_client.options import Options
from switchboard_client.ordering import Frame, Position
from switchboard_client.requests import Requests
from switchboard_client.rooms import Rooms

_MANAGED_ACTIONS = ("joinRoom", "leaveRoom", "resume", "refresh")
_END: Frame = {}


class Client:
    """A Switchboard connection that survives drops; see ``docs/clients.md``."""

    def __init__(
        self,
        url: str,
        token: Token = None,
        *,
        options: Options | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = random_module.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``sleep`` and ``random`` drive the backoff, ``clock`` (epoch seconds) the token
        refresh; tests replace them."""
        scheme = urlsplit(url).scheme
        if scheme not in ("ws", "wss"):
            raise ValueError(f"the URL must start with ws:// or wss://, not {url!r}")
        if token is not None and not isinstance(token, str) and not callable(token):
            raise ValueError("token must be a string, a function returning one, or None")
        self.url = url
        self.options = options or Options()
        self._core = _Core(url, token, self.options, sleep=sleep, random=random, clock=clock)
        self._connection = self._core.connection
        self._requests = self._core.requests
        self._rooms = self._core.rooms

    @property
    def state(self) -> State:
        """``idle``, ``connecting``, ``open``, ``reconnecting`` or ``closed``."""
        return self._core.state

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, retrying with backoff; returns once the connection is ready.

        Raises :class:`SwitchboardError`: ``unauthorized`` when the handshake is
        refused with 401/403, ``not_connected`` after ``Options.connect_timeout``
        (the client is then closed), ``closed`` after :meth:`close`.
        """
        if self._core.closed:
            raise SwitchboardError(CLOSED, "the client is closed")
        try:
            await self._connection.connect()
        except TimeoutError:
            reason = self._connection.last_failure
            await self.close()
            raise SwitchboardError(
                NOT_CONNECTED,
                f"could not connect within {self.options.connect_timeout:g} s ({reason})",
            ) from None

    async def close(self) -> None:
        """Close the connection for good: pending requests fail with ``closed``."""
        if self._core.closed:
            return
        await self._connection.close()
        self._core.shutdown(SwitchboardError(CLOSED, "the client was closed"))

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        event = await self._core.events.get()
        if event is _END:
            self._core.events.put_nowait(_END)
            raise StopAsyncIteration
        return cast(Event, event)

    async def next_event(self, timeout: float | None = None) -> Event:
        """The next event; ``TimeoutError`` after ``timeout``, ``StopAsyncIteration`` at the end."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    # -- requests ------------------------------------------------------------------------------

    async def join_room(self, room: str, *, since: Mapping[str, Any] | None = None) -> Ack:
        """Join and remember a room: it is re-joined with ``since`` after every reconnect.

        ``since`` (``{"epoch", "seq"}``, from :meth:`position` in an earlier run)
        recovers what was said since then. Returns the ``joinRoom`` ack.
        """
        self._connection.check_open()
        return cast(Ack, await self._rooms.join(room, since))

    async def leave_room(self, room: str) -> Ack:
        """Leave and forget a room."""
        self._connection.check_open()
        self._rooms.leave(room)
        return await self._ack({"action": "leaveRoom", "room": room}, idempotent=True)

    async def send_to_room(self, room: str, text: str) -> Ack:
        """Send to a room; the ack says how many connections it reached and its ``seq``."""
        return cast(Ack, await self._rooms.send(room, text))

    async def send_message(self, user_id: str, text: str) -> Ack:
        """Send to every connection of one user (kept in their personal stream)."""
        frame = {"action": "sendMessage", "targetUserId": user_id, "text": text}
        return await self._ack(frame, idempotent=False)

    async def broadcast(self, text: str) -> Ack:
        """Send to every connection (needs the ``admin`` role)."""
        return await self._ack({"action": "broadcastAll", "text": text}, idempotent=False)

    async def presence(self, room: str, *, limit: int | None = None) -> Members:
        """Every member of the room, following the server's pages (``limit`` per page)."""
        frame: Frame = {"action": "presence", "room": room}
        if limit is not None:
            frame["limit"] = limit
        answer = await self._requests.call(frame, idempotent=True)
        members = list(answer.get("members") or [])
        while isinstance(cursor := answer.get("next"), str) and cursor:
            answer = await self._requests.call({**frame, "after": cursor}, idempotent=True)
            members += answer.get("members") or []
        first = {key: value for key, value in answer.items() if key not in ("next", "id")}
        return cast(Members, {**first, "members": members})

    async def history(
        self, room: str | None = None, *, before_seq: int | None = None, limit: int | None = None
    ) -> HistoryPage:
        """One page of a room's history (or the personal stream's, without ``room``)."""
        frame: Frame = {"action": "history"}
        if room is not None:
            frame["room"] = room
        if before_seq is not None:
            frame["beforeSeq"] = before_seq
        if limit is not None:
            frame["limit"] = limit
        return cast(HistoryPage, await self._requests.call(frame, idempotent=True))

    async def whoami(self) -> Whoami:
        """This connection's id, the user and their rooms."""
        return cast(Whoami, await self._requests.call({"action": "whoami"}, idempotent=True))

    async def ping(self) -> Pong:
        return cast(Pong, await self._requests.call({"action": "ping"}, idempotent=True))

    async def request(
        self, action: str, fields: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> dict[str, Any]:
        """Any other action (an app's own), answered like the built-in ones.

        ``idempotent`` requests are sent again after a reconnect; others fail
        with ``connection_lost`` when the connection drops before their answer.
        """
        return await self._requests.call(_frame(action, fields), idempotent=idempotent)

    def notify(
        self,
        action: str,
        fields: Mapping[str, Any] | None = None,
        coalesce: Coalesce | None = None,
    ) -> bool:
        """Send a notice: a frame without an ``id`` (typing, a cursor), which the server
        answers only when it refuses it (then an ``error`` event). Returns ``False`` when
        no connection is open: notices are not held for the next one.

        ``coalesce={"key": K, "interval": seconds}`` sends at most one frame per key per
        interval, always the latest: the first at once, the last when the interval ends.
        """
        frame = _frame(action, fields)
        return self._requests.notify(frame, cast(Mapping[str, Any] | None, coalesce))

    def position(self, room: str | None = None) -> Since | None:
        """A room's (or the personal stream's) position, to recover from in a later run."""
        return cast(Since | None, self._rooms.position(room))

    @property
    def rooms(self) -> list[str]:
        """The remembered rooms, re-joined after every reconnect."""
        return self._rooms.names

    def stats(self) -> Stats:
        """Counters: connections opened, drops, recoveries failed, and what ordering did."""
        return cast(Stats, {**self._connection.counts, **self._rooms.counts()})

    async def _ack(self, frame: Frame, *, idempotent: bool) -> Ack:
        return cast(Ack, await self._requests.call(frame, idempotent=idempotent))

class _Core:
    """The parts of one client, and what the connection reports to (its
    :class:`~switchboard_client.connection.Host`): events, and every frame's routing."""

    def __init__(
        self,
        url: str,
        token: Token,
        options: Options,
        *,
        sleep: Callable[[float], Awaitable[None]],
        random: Callable[[], float],
        clock: Callable[[], float],
    ) -> None:
        self.state: State = "idle"
        self.events: asyncio.Queue[Frame] = asyncio.Queue()
        self.closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connection = Connection(
            url, token, options, self, sleep=sleep, random=random, clock=clock
        )
        self.requests = Requests(options, self.connection, self.emit)
        self.connection.requests = self.requests
        self.rooms = Rooms(options, self.requests, self.connection, self.emit, self._spawn)

    def set_state(self, state: State, **extra: Any) -> None:
        self.state = state
        self.emit({"type": "state", "state": state, **extra})

    def emit(self, event: dict[str, Any]) -> None:
        self.events.put_nowait(event)

    async def recover(self, generation: int) -> None:
        await self.rooms.recover(generation)

    def opened(self, generation: int) -> None:
        self.rooms.opened(generation)
        self.requests.flush()

    def dropped(self, generation: int, close_code: int | None) -> None:
        self.rooms.dropped()
        self.requests.dropped(generation, close_code)

    def dispatch(self, text: str) -> None:
        """Route one frame: to the request it answers, its stream, the part it concerns, or
        the application as an event."""
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            self.emit({"type": "error", "code": "bad_frame",
                       "message": f"not a JSON object: {text[:200]!r}"})
            return
        kind = frame.get("type")
        if kind == "error" and frame.get("code") == TOKEN_EXPIRED:
            self.connection.token_expired()
        if self.requests.answer(frame):
            return
        if kind == "subscribed":
            self.rooms.subscribed(frame)
        elif kind == "unsubscribed":
            self.rooms.unsubscribed(frame)
        elif kind == "disconnect":
            self.emit(frame)
            self.connection.server_disconnect(frame)
        elif kind == "message" or _stream_entry(frame):
            self.rooms.route(frame)
        elif kind is None and isinstance(frame.get("message"), str):
            # API Gateway's own answer when the integration failed; it names no request.
            self.emit({**frame, "type": "error", "code": INTERNAL})
        else:
            self.emit(frame)

    def shutdown(self, error: SwitchboardError) -> None:
        """Fail everything still waiting, say ``closed``, end the event stream."""
        if self.closed:
            return
        self.closed = True
        self.connection.shut(error)
        self.rooms.close(error)
        for task in self._tasks:
            task.cancel()
        self.requests.fail_all(error)
        extra = {} if error.code == CLOSED else {"code": error.code, "message": error.message}
        self.set_state("closed", **extra)
        self.emit(_END)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)




def _stream_entry(frame: Frame) -> bool:
    """A stored entry of a stream whatever its type (a backend's stored ``push``, say): it has
    its place (``seq``, ``epoch``) and its time (``sentAt``), which no answer has."""
    return "sentAt" in frame and Position.of(frame) is not None


def _frame(action: str, fields: Mapping[str, Any] | None) -> Frame:
    if action in _MANAGED_ACTIONS:
        raise ValueError(f"{action} is managed by the client: use join_room()/leave_room()")
    return {**(fields or {}), "action": action}
