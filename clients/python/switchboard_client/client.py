"""The Switchboard client: one WebSocket kept alive across API Gateway's closes.

:class:`Client` owns the connection's life — handshakes with a fresh token,
full-jitter backoff, heartbeats, the planned reconnect before API Gateway's
2-hour limit — and every request's: an ``id`` per request, its answer or error
matched back to it, requests made while reconnecting held (bounded) until the
connection is ready. After every (re)connect it re-joins the remembered rooms
with ``since`` and resumes the personal stream, and hands every message
through :class:`~switchboard_client.ordering.Stream`, so the application sees
each exactly once and in order, or a ``recovery_failed`` event.

It is the only code in the package that does I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import random as random_module
import secrets
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as open_websocket
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from switchboard_client.errors import (
    CLOSED,
    CONNECTION_LOST,
    NOT_CONNECTED,
    TIMEOUT,
    TOO_LARGE,
    UNAUTHORIZED,
    SwitchboardError,
)
from switchboard_client.options import Options
from switchboard_client.ordering import Frame, Position, Settled, Stream

logger = logging.getLogger("switchboard_client")

Token = str | Callable[[], str | Awaitable[str]] | None
"""A token, or a function (plain or async) called before every (re)connect for a fresh one."""
State = Literal["idle", "connecting", "open", "reconnecting", "closed"]

MESSAGE_TOO_BIG = 1009
HISTORY_PAGE_LIMIT = 100
_MANAGED_ACTIONS = ("joinRoom", "leaveRoom", "resume")
_INTERNAL_ERROR = "internal"
_END: Frame = {}


@dataclass(eq=False)
class _Request:
    frame: Frame
    text: str
    idempotent: bool
    future: asyncio.Future[Frame]
    on_answer: Callable[[Frame], None] | None = None
    """Runs in the reader when the answer arrives, in order with the frames around it."""
    internal: bool = False
    """Sent on the connection being set up (recovery, heartbeat, fills), never held."""
    sent_on: int | None = None

    @property
    def id(self) -> str:
        return str(self.frame["id"])

    @property
    def action(self) -> str:
        return str(self.frame["action"])


@dataclass(eq=False)
class _Room:
    name: str
    stream: Stream
    waiters: list[asyncio.Future[Frame]] = field(default_factory=list)
    joining_on: int | None = None
    """The connection a ``joinRoom`` was sent on."""
    ack: Frame | None = None


@dataclass
class _Outcome:
    """How one connection ended."""

    reason: str
    recovered: bool = False
    planned: bool = False


class _Retry(Exception):
    """A connection attempt failed in a way another attempt may fix."""


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
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in ("ws", "wss"):
            raise ValueError(f"the URL must start with ws:// or wss://, not {url!r}")
        if token is not None and not isinstance(token, str) and not callable(token):
            raise ValueError("token must be a string, a function returning one, or None")
        self.url = url
        self.options = options or Options()
        self.state: State = "idle"
        self._token = token
        self._sleep = sleep
        self._random = random
        self._events: asyncio.Queue[Frame] = asyncio.Queue()
        self._rooms: dict[str, _Room] = {}
        self._personal = Stream()
        self._pending: dict[str, _Request] = {}
        self._waiting: deque[_Request] = deque()
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)
        self._generation = 0
        self._outbox: asyncio.Queue[str] | None = None
        self._ready = False
        self._ever_open = False
        self._socket: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[None] | None = None
        self._closing = False
        self._closed = False
        self._last_failure = "not connected yet"
        self._last_sent = 0.0
        self._gap_timers: dict[str | None, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sending: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()

    # -- lifecycle ---------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, retrying with backoff; returns once the connection is ready.

        Raises :class:`SwitchboardError`: ``unauthorized`` when the handshake is
        refused with 401/403, ``not_connected`` after ``Options.connect_timeout``
        (the client is then closed), ``closed`` after :meth:`close`.
        """
        if self._closed:
            raise SwitchboardError(CLOSED, "the client is closed")
        if self._runner is None:
            self._opened = asyncio.get_running_loop().create_future()
            self._runner = asyncio.create_task(self._run())
        assert self._opened is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._opened), self.options.connect_timeout)
        except TimeoutError:
            reason = self._last_failure
            await self.close()
            raise SwitchboardError(
                NOT_CONNECTED,
                f"could not connect within {self.options.connect_timeout:g} s ({reason})",
            ) from None

    async def close(self) -> None:
        """Close the connection for good: pending requests fail with ``closed``."""
        if self._closed:
            return
        self._closing = True
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close(1000, "client closed")
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._shutdown(SwitchboardError(CLOSED, "the client was closed"))

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self

    async def __anext__(self) -> Frame:
        event = await self._events.get()
        if event is _END:
            self._events.put_nowait(_END)
            raise StopAsyncIteration
        return event

    async def next_event(self, timeout: float | None = None) -> Frame:
        """The next event; ``TimeoutError`` after ``timeout``, ``StopAsyncIteration`` at the end."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    # -- requests ----------------------------------------------------------------

    async def join_room(self, room: str, *, since: Mapping[str, Any] | None = None) -> Frame:
        """Join and remember a room: it is re-joined with ``since`` after every reconnect.

        ``since`` (``{"epoch", "seq"}``, from :meth:`position` in an earlier run)
        recovers what was said since then. Returns the ``joinRoom`` ack.
        """
        self._check_open()
        joined = self._rooms.get(room)
        if joined is not None and joined.ack is not None and joined.joining_on == self._generation:
            return joined.ack
        if joined is None:
            start = Position(str(since["epoch"]), int(since["seq"])) if since else None
            joined = self._rooms[room] = _Room(room, Stream(start))
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        joined.waiters.append(waiter)
        if self._ready and joined.joining_on != self._generation:
            self._join_now(joined)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), self.options.request_timeout)
        except TimeoutError:
            if self._rooms.get(room) is joined and joined.ack is None:
                self._forget_room(joined)
            sent = joined.joining_on is not None
            raise SwitchboardError(
                TIMEOUT if sent else NOT_CONNECTED,
                f"joinRoom {room!r}: no answer within {self.options.request_timeout:g} s",
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                joined.waiters.remove(waiter)
            if not waiter.done():
                waiter.cancel()

    async def leave_room(self, room: str) -> Frame:
        """Leave and forget a room."""
        self._check_open()
        joined = self._rooms.get(room)
        if joined is not None:
            self._forget_room(joined)
            left = SwitchboardError(CLOSED, f"left room {room!r} before it was joined")
            _settle_all(joined.waiters, error=left)
        return await self._call({"action": "leaveRoom", "room": room}, idempotent=True)

    async def send_to_room(self, room: str, text: str) -> Frame:
        """Send to a room; the ack says how many connections it reached and its ``seq``."""
        self._sending[room] += 1
        try:
            return await self._call(
                {"action": "sendToRoom", "room": room, "text": text},
                idempotent=False,
                on_answer=lambda ack: self._own_message(room, ack),
            )
        finally:
            self._sending[room] -= 1

    async def send_message(self, user_id: str, text: str) -> Frame:
        """Send to every connection of one user."""
        frame = {"action": "sendMessage", "targetUserId": user_id, "text": text}
        return await self._call(frame, idempotent=False)

    async def broadcast(self, text: str) -> Frame:
        """Send to every connection (needs the ``admin`` role)."""
        return await self._call({"action": "broadcastAll", "text": text}, idempotent=False)

    async def presence(self, room: str) -> Frame:
        """The room's members: ``{"type": "members", "room", "members": [...]}``."""
        return await self._call({"action": "presence", "room": room}, idempotent=True)

    async def history(
        self, room: str | None = None, *, before_seq: int | None = None, limit: int | None = None
    ) -> Frame:
        """One page of a room's history (or the personal stream's, without ``room``)."""
        frame: Frame = {"action": "history"}
        if room is not None:
            frame["room"] = room
        if before_seq is not None:
            frame["beforeSeq"] = before_seq
        if limit is not None:
            frame["limit"] = limit
        return await self._call(frame, idempotent=True)

    async def whoami(self) -> Frame:
        return await self._call({"action": "whoami"}, idempotent=True)

    async def ping(self) -> Frame:
        return await self._call({"action": "ping"}, idempotent=True)

    async def request(
        self, action: str, fields: Mapping[str, Any] | None = None, *, idempotent: bool = False
    ) -> Frame:
        """Any other action (an app's own), answered like the built-in ones.

        ``idempotent`` requests are sent again after a reconnect; others fail
        with ``connection_lost`` when the connection drops before their answer.
        """
        if action in _MANAGED_ACTIONS:
            raise ValueError(f"{action} is managed by the client: use join_room()/leave_room()")
        return await self._call({**(fields or {}), "action": action}, idempotent=idempotent)

    def position(self, room: str | None = None) -> dict[str, Any] | None:
        """A room's (or the personal stream's) position, to recover from in a later run."""
        stream = self._personal if room is None else self._stream(room)
        position = stream.position if stream is not None else None
        return position.as_since() if position is not None else None

    @property
    def rooms(self) -> list[str]:
        """The remembered rooms, re-joined after every reconnect."""
        return sorted(self._rooms)

    def stats(self) -> dict[str, int]:
        """Counters: connections opened, drops, recoveries failed, and what ordering did."""
        streams = [self._personal, *(room.stream for room in self._rooms.values())]
        return {
            **{name: self._counts[name] for name in ("connections", "drops", "recovery_failed")},
            "duplicates_dropped": sum(s.duplicates for s in streams) + self._counts["dup"],
            "replayed": sum(s.replayed for s in streams) + self._counts["replayed"],
            "skipped": sum(s.skipped for s in streams) + self._counts["skipped"],
        }

    # -- the request path ----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed or self._closing:
            raise SwitchboardError(CLOSED, "the client is closed")

    def _new_request(
        self,
        frame: Frame,
        idempotent: bool,
        on_answer: Callable[[Frame], None] | None = None,
        internal: bool = False,
    ) -> _Request:
        self._check_open()
        frame = {**frame, "id": f"{self._id_prefix}-{next(self._ids)}"}
        text = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode("utf-8"))
        if size > self.options.max_message_bytes:
            raise SwitchboardError(
                TOO_LARGE,
                f"the {frame['action']} frame is {size} bytes; the gateway accepts at most "
                f"{self.options.max_message_bytes}",
            )
        future = asyncio.get_running_loop().create_future()
        return _Request(frame, text, idempotent, future, on_answer, internal)

    async def _call(
        self,
        frame: Frame,
        *,
        idempotent: bool,
        on_answer: Callable[[Frame], None] | None = None,
    ) -> Frame:
        """An application request: sent when the connection is ready, answered or failed."""
        request = self._new_request(frame, idempotent, on_answer)
        self._waiting.append(request)
        self._flush()
        return await self._await(request, self.options.request_timeout)

    async def _internal(self, frame: Frame, timeout: float | None = None) -> Frame:
        """A request of the client's own, sent at once on the current connection."""
        request = self._send_internal(frame)
        return await self._await(request, timeout or self.options.request_timeout)

    def _send_internal(
        self, frame: Frame, on_answer: Callable[[Frame], None] | None = None
    ) -> _Request:
        request = self._new_request(frame, True, on_answer, internal=True)
        self._send(request)
        return request

    async def _await(self, request: _Request, timeout: float) -> Frame:
        try:
            return await asyncio.wait_for(asyncio.shield(request.future), timeout)
        except TimeoutError:
            if request.sent_on is None:
                raise SwitchboardError(
                    NOT_CONNECTED,
                    f"{request.action} was not sent: no connection within {timeout:g} s "
                    f"({self._last_failure})",
                ) from None
            raise SwitchboardError(
                TIMEOUT, f"no answer to {request.action} within {timeout:g} s"
            ) from None
        finally:
            self._pending.pop(request.id, None)
            with contextlib.suppress(ValueError):
                self._waiting.remove(request)
            if not request.future.done():
                request.future.cancel()

    def _flush(self) -> None:
        """Send what waited for the connection, in order."""
        while self._ready and self._waiting:
            self._send(self._waiting.popleft())

    def _send(self, request: _Request) -> None:
        if self._outbox is None:
            request.future.set_exception(
                SwitchboardError(CONNECTION_LOST, f"{request.action}: no connection")
            )
            return
        request.sent_on = self._generation
        self._pending[request.id] = request
        self._outbox.put_nowait(request.text)

    # -- the connection loop ---------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        self._set_state("connecting")
        try:
            while not self._closing:
                try:
                    outcome = await self._connect_once()
                except _Retry as retry:
                    outcome = _Outcome(str(retry))
                self._last_failure = outcome.reason
                if self._closing:
                    return
                if outcome.recovered:
                    attempt = 0
                attempt = 1 if outcome.planned else attempt + 1
                delay = 0.0 if outcome.planned else self.options.backoff(attempt, self._random)
                state: State = "reconnecting" if self._ever_open else "connecting"
                logger.info("%s in %.2f s: %s", state, delay, outcome.reason)
                self._set_state(state, attempt=attempt, delay=delay, reason=outcome.reason)
                await self._sleep(delay)
        except SwitchboardError as fatal:
            self._emit(fatal.as_event())
            self._closing = True
            self._shutdown(fatal)

    async def _connect_once(self) -> _Outcome:
        url = self._url_with(await self._fresh_token())
        try:
            socket = await open_websocket(
                url,
                open_timeout=self.options.open_timeout,
                close_timeout=self.options.close_timeout,
                ping_interval=None,
                max_size=4 * self.options.max_message_bytes,
                compression=None,
            )
        except InvalidStatus as refused:
            status = refused.response.status_code
            detail = refused.response.body.decode("utf-8", "replace").strip()[:200]
            message = f"the gateway refused the connection with HTTP {status}"
            message += f": {detail}" if detail else ""
            if status in (401, 403):
                raise SwitchboardError(UNAUTHORIZED, message, status=status) from None
            raise _Retry(message) from None
        except (OSError, TimeoutError, InvalidHandshake) as error:
            raise _Retry(f"gateway unreachable ({_describe(error)})") from None
        return await self._session(socket)

    async def _fresh_token(self) -> str | None:
        if self._token is None or isinstance(self._token, str):
            return self._token
        try:
            value = self._token()
            if inspect.isawaitable(value):
                value = await value
        except SwitchboardError:
            raise
        except Exception as error:
            raise _Retry(f"the token function failed: {_describe(error)}") from error
        if not isinstance(value, str) or not value:
            raise SwitchboardError(
                UNAUTHORIZED, f"the token function returned {value!r}, not a non-empty string"
            )
        return value

    def _url_with(self, token: str | None) -> str:
        if token is None:
            return self.url
        parts = urlsplit(self.url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
        query.append(("token", token))
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def _session(self, socket: ClientConnection) -> _Outcome:
        """One open connection: recover, serve, and say how it ended."""
        self._generation += 1
        generation = self._generation
        self._socket = socket
        self._outbox = asyncio.Queue()
        self._counts["connections"] += 1
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        recovery = asyncio.create_task(self._recover(generation))
        reader = asyncio.create_task(self._read(socket))
        writer = asyncio.create_task(self._write(socket, self._outbox))
        recovered = planned = False
        reason = ""
        others: list[asyncio.Task[Any]] = [recovery]
        try:
            await asyncio.wait({reader, recovery}, return_when=asyncio.FIRST_COMPLETED)
            if recovery.done() and not recovery.cancelled() and recovery.exception() is None:
                recovered = True
                self._open(generation)
                keepalive = asyncio.create_task(self._keepalive(loop.time()))
                others.append(keepalive)
                await asyncio.wait({reader, keepalive}, return_when=asyncio.FIRST_COMPLETED)
                if keepalive.done():
                    planned = keepalive.result() == "planned"
                    reason = "planned reconnect" if planned else "no answer to the heartbeat"
            elif recovery.done() and not recovery.cancelled():
                reason = f"recovery failed ({_describe(recovery.exception())})"
            if not reader.done():
                await socket.close(1000, reason[:120])
            await reader
        finally:
            for task in (*others, writer):
                task.cancel()
            self._drop(generation, socket.close_code)
        if not reason:
            reason = _close_reason(socket.close_code, socket.close_reason)
        return _Outcome(reason, recovered=recovered, planned=planned)

    def _open(self, generation: int) -> None:
        self._ready = True
        self._ever_open = True
        self._set_state("open")
        if self._opened is not None and not self._opened.done():
            self._opened.set_result(None)
        for room in list(self._rooms.values()):  # rooms joined while the recovery ran
            if room.joining_on != generation:
                self._join_now(room)
        self._flush()

    def _drop(self, generation: int, close_code: int | None) -> None:
        """The connection ended: fail or keep what was in flight on it."""
        self._ready = False
        self._socket = None
        self._outbox = None
        if not self._closing:
            self._counts["drops"] += 1
        for timer in self._gap_timers.values():
            timer.cancel()
        self._gap_timers.clear()
        for room in self._rooms.values():
            room.joining_on = None
        in_flight = sorted(
            (r for r in self._pending.values() if r.sent_on == generation),
            key=lambda r: int(r.id.rsplit("-", 1)[1]),
        )
        culprit = None
        if close_code == MESSAGE_TOO_BIG and in_flight:
            culprit = max(in_flight, key=lambda r: len(r.text))
            self._emit(
                SwitchboardError(
                    TOO_LARGE, "the gateway closed the connection with 1009 (message too big)"
                ).as_event(action=culprit.action)
            )
        resend: list[_Request] = []
        for request in in_flight:
            del self._pending[request.id]
            if request.future.done():
                continue
            if request is culprit:
                request.future.set_exception(
                    SwitchboardError(
                        TOO_LARGE,
                        f"the gateway closed the connection with 1009 (message too big) after "
                        f"this {request.action} ({len(request.text.encode())} bytes)",
                    )
                )
            elif request.idempotent and not request.internal:
                request.sent_on = None
                resend.append(request)
            else:
                request.future.set_exception(
                    SwitchboardError(
                        CONNECTION_LOST,
                        f"the connection dropped before {request.action} was answered; it may "
                        "or may not have been carried out",
                    )
                )
        self._waiting.extendleft(reversed(resend))

    async def _write(self, socket: ClientConnection, outbox: asyncio.Queue[str]) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionClosed):
            while True:
                text = await outbox.get()
                await socket.send(text)
                self._last_sent = loop.time()

    async def _read(self, socket: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in socket:
                if isinstance(text, bytes):
                    text = text.decode("utf-8", "replace")
                self._dispatch(text)

    async def _keepalive(self, opened: float) -> str:
        """Heartbeat while the connection lasts; ``planned`` at its age limit, ``dead`` when a
        ``ping`` goes unanswered."""
        loop = asyncio.get_running_loop()
        options = self.options
        while True:
            now = loop.time()
            age_left = opened + options.max_connection_age - now
            idle_left = self._last_sent + options.heartbeat_interval - now
            if age_left <= 0:
                return "planned"
            if idle_left > 0:
                await asyncio.sleep(min(age_left, idle_left))
                continue
            try:
                await self._internal({"action": "ping"}, timeout=options.heartbeat_timeout)
            except SwitchboardError as error:
                if error.frame is None:  # no answer at all: the connection is dead
                    return "dead"

    # -- recovery ------------------------------------------------------------------------

    async def _recover(self, generation: int) -> None:
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

    def _resume(self) -> Awaitable[None]:
        since = self._personal.begin()
        frame: Frame = {"action": "resume"}
        if since is not None:
            frame["since"] = since.as_since()
        request = self._send_internal(frame, lambda ack: self._settle(None, ack))

        async def answered() -> None:
            try:
                await self._await(request, self.options.request_timeout)
            except SwitchboardError as error:
                if error.frame is None or error.code == _INTERNAL_ERROR:
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
        request = self._send_internal(frame, lambda ack: self._settle(room.name, ack))

        async def answered() -> None:
            try:
                ack = await self._await(request, self.options.request_timeout)
            except SwitchboardError as error:
                if error.frame is None or error.code == _INTERNAL_ERROR:
                    raise
                if since is not None:  # e.g. no 'history' permission: join without recovering
                    logger.info("joinRoom %s with since refused: %s", room.name, error)
                    room.stream.forget()
                    await self._join(room, generation)
                    return
                self._forget_room(room)
                self._emit(error.as_event(action="joinRoom", room=room.name))
                _settle_all(room.waiters, error=error)
                return
            room.ack = ack
            _settle_all(room.waiters, result=ack)

        return answered()

    def _join_now(self, room: _Room) -> None:
        """An application join, or a room added during a recovery: join on this connection."""
        generation = self._generation
        joined = self._join(room, generation)

        async def join() -> None:
            try:
                await joined
            except SwitchboardError as error:
                if error.code == CONNECTION_LOST:
                    return  # still remembered: the next connection's recovery joins it
                if self._generation == generation and self._rooms.get(room.name) is room:
                    self._forget_room(room)
                    _settle_all(room.waiters, error=error)

        self._spawn(join())

    def _forget_room(self, room: _Room) -> None:
        if self._rooms.get(room.name) is room:
            del self._rooms[room.name]
        timer = self._gap_timers.pop(room.name, None)
        if timer is not None:
            timer.cancel()

    # -- what arrives ---------------------------------------------------------------------

    def _dispatch(self, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            self._emit({"type": "error", "code": "bad_frame", "message": f"not a JSON object: "
                        f"{text[:200]!r}"})
            return
        request_id = frame.get("id")
        request = self._pending.pop(request_id, None) if isinstance(request_id, str) else None
        if request is not None:
            self._answer(request, frame)
        elif frame.get("type") == "message":
            self._route(frame)
        elif "type" not in frame and isinstance(frame.get("message"), str):
            # API Gateway's own answer when the integration failed; it names no request.
            self._emit({**frame, "type": "error", "code": _INTERNAL_ERROR})
        else:
            self._emit(frame)

    def _answer(self, request: _Request, frame: Frame) -> None:
        if request.future.done():
            return
        if frame.get("type") == "error":
            request.future.set_exception(
                SwitchboardError(
                    str(frame.get("code", "error")), str(frame.get("message", "")), frame=frame
                )
            )
            return
        if request.on_answer is not None:
            request.on_answer(frame)
        request.future.set_result(frame)

    def _stream(self, room: str | None) -> Stream | None:
        if room is None:
            return self._personal
        joined = self._rooms.get(room)
        return joined.stream if joined is not None else None

    def _route(self, frame: Frame) -> None:
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
            self._counts["recovery_failed"] += 1
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
                    self.options.gap_timeout, self._gap_expired, key
                )
        elif timer is not None:
            timer.cancel()
            del self._gap_timers[key]

    def _gap_expired(self, key: str | None) -> None:
        self._gap_timers.pop(key, None)
        stream = self._stream(key)
        if stream is None or not stream.has_gap or not self._ready:
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
        generation = self._generation
        messages: list[Frame] = []
        oldest: int | None = None
        start, upto = stream.position, stream.filling_to
        try:
            if start is None or upto is None:
                raise SwitchboardError("internal", "nothing to fill")
            # A live gap's upper end is held already; a recovery's may not have come.
            before, budget = (upto if live else upto + 1), self.options.fill_limit
            while budget > 0 and before - 1 > start.seq:
                frame: Frame = {"action": "history", "beforeSeq": before}
                frame["limit"] = min(HISTORY_PAGE_LIMIT, before - 1 - start.seq, budget)
                if key is not None:
                    frame["room"] = key
                page = await self._internal(frame)
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
        if self._generation != generation or stream.filling_to != upto:
            return  # the connection changed meanwhile; its recovery took over
        complete = live or stream.covers(oldest)
        self._apply(key, stream, stream.fill(messages, complete))

    # -- events -------------------------------------------------------------------------

    def _emit(self, event: Frame) -> None:
        self._events.put_nowait(event)

    def _set_state(self, state: State, **extra: Any) -> None:
        self.state = state
        self._emit({"type": "state", "state": state, **extra})

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _shutdown(self, error: SwitchboardError) -> None:
        """Fail everything still waiting, say ``closed``, end the event stream."""
        if self._closed:
            return
        self._closed = True
        self._ready = False
        for timer in self._gap_timers.values():
            timer.cancel()
        self._gap_timers.clear()
        for task in self._tasks:
            task.cancel()
        waiting = [r.future for r in (*self._pending.values(), *self._waiting)]
        waiting += [w for room in self._rooms.values() for w in room.waiters]
        for future in waiting:
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        self._waiting.clear()
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(error)
            self._opened.exception()  # retrieved: connect() may not be waiting
        extra = {} if error.code == CLOSED else {"code": error.code, "message": error.message}
        self._set_state("closed", **extra)
        self._emit(_END)


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


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _close_reason(code: int | None, reason: str | None) -> str:
    if code is None:
        return "the connection was lost"
    text = f"closed with {code}"
    return f"{text} ({reason})" if reason else text
