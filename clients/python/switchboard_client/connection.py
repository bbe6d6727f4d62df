"""The connection's life: the only code that opens, watches and closes sockets.

One WebSocket at a time, kept alive across API Gateway's closes: handshakes
with a fresh token, full-jitter backoff between attempts, a heartbeat inside
the 10-minute idle timeout, a planned reconnect before the 2-hour limit, the
token refreshed before it expires, and the server's own ``disconnect`` and
``token_expired`` obeyed. What happens on a connection (recovery, requests,
frames) is the :class:`Host`'s: this module only tells it when a connection
opens, what arrives, and when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as open_websocket
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from switchboard_client import tokens
from switchboard_client.errors import (
    CLOSED,
    DISCONNECTED,
    UNAUTHORIZED,
    SwitchboardError,
)
from switchboard_client.events import State
from switchboard_client.options import Options
from switchboard_client.requests import Requests

logger = logging.getLogger("switchboard_client")

Token = str | Callable[[], str | Awaitable[str]] | None
"""A token, or a function (plain or async) called before every (re)connect for a fresh one."""


class Host(Protocol):
    """What a connection reports to, and what it needs done on it."""

    def set_state(self, state: State, **extra: Any) -> None: ...

    def emit(self, event: dict[str, Any]) -> None: ...

    async def recover(self, generation: int) -> None:
        """Set a new connection up (resume, re-join); raise when it cannot be."""

    def opened(self, generation: int) -> None:
        """The connection is recovered and ready."""

    def dispatch(self, text: str) -> None:
        """A frame arrived."""

    def dropped(self, generation: int, close_code: int | None) -> None:
        """The connection ended."""

    def shutdown(self, error: SwitchboardError) -> None:
        """The client ends for good."""


@dataclass
class _Outcome:
    """How one connection ended."""

    reason: str
    recovered: bool = False
    planned: bool = False


class _Retry(Exception):
    """A connection attempt failed in a way another attempt may fix."""


class Connection:
    """The socket of the moment and the loop that replaces it."""

    def __init__(
        self,
        url: str,
        token: Token,
        options: Options,
        host: Host,
        *,
        sleep: Callable[[float], Awaitable[None]],
        random: Callable[[], float],
        clock: Callable[[], float],
    ) -> None:
        self.url = url
        self.options = options
        self.requests: Requests | None = None
        """The request path, for the heartbeat and the token refresh (set by the client)."""
        self.generation = 0
        self.ready = False
        self.closing = False
        self.last_failure = "not connected yet"
        self.counts = {"connections": 0, "drops": 0}
        self._token = token
        self._host = host
        self._sleep = sleep
        self._random = random
        self._clock = clock
        self._ever_open = False
        self._socket: ClientConnection | None = None
        self._outbox: asyncio.Queue[str] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[None] | None = None
        self._last_sent = 0.0
        self._current_token: str | None = None
        self._token_obtained = 0.0
        self._ending: _Outcome | None = None
        """Why the server is ending this connection (``disconnect``, ``token_expired``)."""
        self._end_signal = asyncio.Event()
        self._fatal: SwitchboardError | None = None

    # -- what the client asks -----------------------------------------------------------------

    async def connect(self) -> None:
        if self._runner is None:
            self._opened = asyncio.get_running_loop().create_future()
            self._runner = asyncio.create_task(self._run())
        assert self._opened is not None
        await asyncio.wait_for(asyncio.shield(self._opened), self.options.connect_timeout)

    async def close(self) -> None:
        self.closing = True
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close(1000, "client closed")
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    def check_open(self) -> None:
        if self.closing:
            raise SwitchboardError(CLOSED, "the client is closed")

    def send(self, text: str) -> bool:
        if self._outbox is None:
            return False
        self._outbox.put_nowait(text)
        return True

    def shut(self, error: SwitchboardError) -> None:
        """The client ended: ``connect()`` fails with ``error`` if it still waits."""
        self.closing = True
        self.ready = False
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(error)
            self._opened.exception()  # retrieved: connect() may not be waiting

    # -- what the server says ---------------------------------------------------------------

    def server_disconnect(self, frame: dict[str, Any]) -> None:
        """``{"type": "disconnect", "reason", "reconnect"}``: end this connection as told."""
        reason = str(frame.get("reason") or "no reason given")
        if frame.get("reconnect") is False:
            self._fatal = SwitchboardError(DISCONNECTED, f"the server disconnected: {reason}")
        self._end(_Outcome(f"the server disconnected: {reason}"))

    def token_expired(self) -> None:
        """The server refused a frame because the token expired (and closes): reconnect, with
        a fresh token from the callback."""
        self._end(_Outcome("the token expired"))

    def _end(self, outcome: _Outcome) -> None:
        if self._ending is None:
            self._ending = outcome
        self._end_signal.set()

    # -- the loop ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        self._host.set_state("connecting")
        try:
            while not self.closing:
                try:
                    outcome = await self._connect_once()
                except _Retry as retry:
                    outcome = _Outcome(str(retry))
                self.last_failure = outcome.reason
                if self._fatal is not None:
                    raise self._fatal
                if self.closing:
                    return
                if outcome.recovered:
                    attempt = 0
                attempt = 1 if outcome.planned else attempt + 1
                delay = 0.0 if outcome.planned else self.options.backoff(attempt, self._random)
                state: State = "reconnecting" if self._ever_open else "connecting"
                logger.info("%s in %.2f s: %s", state, delay, outcome.reason)
                self._host.set_state(state, attempt=attempt, delay=delay, reason=outcome.reason)
                await self._sleep(delay)
        except SwitchboardError as fatal:
            self._host.emit(fatal.as_event())
            self.closing = True
            self._host.shutdown(fatal)

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
        self._current_token, self._token_obtained = value, self._clock()
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
        self.generation += 1
        generation = self.generation
        self._socket = socket
        self._outbox = asyncio.Queue()
        self._ending = None
        self._end_signal = asyncio.Event()
        self.counts["connections"] += 1
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        recovery = asyncio.create_task(self._host.recover(generation))
        reader = asyncio.create_task(self._read(socket))
        writer = asyncio.create_task(self._write(socket, self._outbox))
        ended = asyncio.create_task(self._end_signal.wait())
        recovered = planned = False
        reason = ""
        others: list[asyncio.Task[Any]] = [recovery, ended]
        try:
            await asyncio.wait({reader, recovery, ended}, return_when=asyncio.FIRST_COMPLETED)
            if ended.done():
                pass
            elif recovery.done() and not recovery.cancelled() and recovery.exception() is None:
                recovered = True
                self._open(generation)
                keepalive = asyncio.create_task(self._keepalive(loop.time()))
                others += [keepalive, asyncio.create_task(self._refresh())]
                await asyncio.wait({reader, keepalive, ended}, return_when=asyncio.FIRST_COMPLETED)
                if keepalive.done() and not ended.done():
                    planned = keepalive.result() == "planned"
                    reason = "planned reconnect" if planned else "no answer to the heartbeat"
            elif recovery.done() and not recovery.cancelled():
                reason = f"recovery failed ({_describe(recovery.exception())})"
            if self._ending is not None:
                reason = self._ending.reason
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
        self.ready = True
        self._ever_open = True
        self._host.set_state("open")
        if self._opened is not None and not self._opened.done():
            self._opened.set_result(None)
        self._host.opened(generation)

    def _drop(self, generation: int, close_code: int | None) -> None:
        self.ready = False
        self._socket = None
        self._outbox = None
        if not self.closing:
            self.counts["drops"] += 1
        self._host.dropped(generation, close_code)

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
                self._host.dispatch(text)

    async def _keepalive(self, opened: float) -> str:
        """Heartbeat while the connection lasts; ``planned`` at its age limit, ``dead`` when a
        ``ping`` goes unanswered."""
        assert self.requests is not None
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
                await self.requests.internal({"action": "ping"}, timeout=options.heartbeat_timeout)
            except SwitchboardError as error:
                if error.frame is None:  # no answer at all: the connection is dead
                    return "dead"

    async def _refresh(self) -> None:
        """Replace the connection's token before it expires (only a token function can)."""
        assert self.requests is not None
        while self._current_token is not None and callable(self._token):
            at = tokens.refresh_at(self._current_token, self._token_obtained)
            if at is None:
                return
            delay = at - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                token = await self._fresh_token()
                answer = await self.requests.internal({"action": "refresh", "token": token})
            except (SwitchboardError, _Retry) as error:
                # The server will close the connection at expiry; the reconnect takes a new one.
                code = error.code if isinstance(error, SwitchboardError) else "token_refresh"
                self._host.emit({"type": "error", "code": code, "message": str(error),
                                 "action": "refresh"})
                return
            logger.info("token refreshed; it expires at %s", answer.get("expiresAt"))
            if delay <= 0:
                return  # a token already due for a refresh: do not send it again and again


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
