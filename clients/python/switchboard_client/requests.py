"""The request path: the only code that numbers requests and matches answers to them.

Every request gets an ``id``; its answer (or error frame) is matched back to it.
Requests made while no connection is ready wait, in order, bounded by
``request_timeout``; when a connection drops, those in flight are sent again if
they are safe to repeat and fail with ``connection_lost`` otherwise. A request
the server refused because the token expired was not carried out: it waits for
the next connection. Notices (:meth:`Requests.notify`) carry no ``id`` and get
no answer; they are sent only on an open connection, coalesced per key when
asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from switchboard_client.errors import (
    CONNECTION_LOST,
    NOT_CONNECTED,
    TIMEOUT,
    TOKEN_EXPIRED,
    TOO_LARGE,
    SwitchboardError,
)
from switchboard_client.options import Options

logger = logging.getLogger("switchboard_client")

Frame = dict[str, Any]
MESSAGE_TOO_BIG = 1009


class Link(Protocol):
    """What the request path needs from the connection."""

    @property
    def generation(self) -> int:
        """Counts connections; a request remembers the one it was sent on."""

    @property
    def ready(self) -> bool:
        """Open and recovered: application requests may be sent."""

    @property
    def last_failure(self) -> str:
        """Why the last connection attempt failed, for ``not_connected`` messages."""

    def check_open(self) -> None:
        """Raise ``closed`` when the client is closed or closing."""

    def send(self, text: str) -> bool:
        """Queue ``text`` on the current connection; ``False`` when there is none."""


@dataclass(eq=False)
class Request:
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

    @property
    def number(self) -> int:
        return int(self.id.rsplit("-", 1)[1])


@dataclass
class _Coalesced:
    sent_at: float
    latest: str | None = None
    timer: asyncio.TimerHandle | None = None


class Requests:
    """Requests in flight and waiting, and the notices' coalescing."""

    def __init__(
        self, options: Options, link: Link, emit: Callable[[dict[str, Any]], None]
    ) -> None:
        self._options = options
        self._link = link
        self._emit = emit
        self._pending: dict[str, Request] = {}
        self._waiting: deque[Request] = deque()
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)
        self._coalesced: dict[str, _Coalesced] = {}

    # -- making and sending ------------------------------------------------------------

    def encode(self, frame: Frame) -> str:
        """``frame`` as sent; ``too_large`` when the gateway would refuse it."""
        text = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode("utf-8"))
        if size > self._options.max_message_bytes:
            raise SwitchboardError(
                TOO_LARGE,
                f"the {frame.get('action')} frame is {size} bytes; the gateway accepts at most "
                f"{self._options.max_message_bytes}",
            )
        return text

    def new(
        self,
        frame: Frame,
        idempotent: bool,
        on_answer: Callable[[Frame], None] | None = None,
        internal: bool = False,
    ) -> Request:
        self._link.check_open()
        frame = {**frame, "id": f"{self._id_prefix}-{next(self._ids)}"}
        text = self.encode(frame)
        future = asyncio.get_running_loop().create_future()
        return Request(frame, text, idempotent, future, on_answer, internal)

    async def call(
        self,
        frame: Frame,
        *,
        idempotent: bool,
        on_answer: Callable[[Frame], None] | None = None,
    ) -> Frame:
        """An application request: sent when the connection is ready, answered or failed."""
        request = self.new(frame, idempotent, on_answer)
        self._waiting.append(request)
        self.flush()
        return await self.wait(request, self._options.request_timeout)

    async def internal(self, frame: Frame, timeout: float | None = None) -> Frame:
        """A request of the client's own, sent at once on the current connection."""
        request = self.send_internal(frame)
        return await self.wait(request, timeout or self._options.request_timeout)

    def send_internal(
        self, frame: Frame, on_answer: Callable[[Frame], None] | None = None
    ) -> Request:
        request = self.new(frame, True, on_answer, internal=True)
        self._send(request)
        return request

    async def wait(self, request: Request, timeout: float) -> Frame:
        try:
            return await asyncio.wait_for(asyncio.shield(request.future), timeout)
        except TimeoutError:
            if request.sent_on is None:
                raise SwitchboardError(
                    NOT_CONNECTED,
                    f"{request.action} was not sent: no connection within {timeout:g} s "
                    f"({self._link.last_failure})",
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

    def flush(self) -> None:
        """Send what waited for the connection, in order."""
        while self._link.ready and self._waiting:
            self._send(self._waiting.popleft())

    def _send(self, request: Request) -> None:
        request.sent_on = self._link.generation
        self._pending[request.id] = request
        if not self._link.send(request.text):
            del self._pending[request.id]
            request.future.set_exception(
                SwitchboardError(CONNECTION_LOST, f"{request.action}: no connection")
            )

    # -- notices -------------------------------------------------------------------------

    def notify(
        self, frame: Frame, coalesce: Mapping[str, Any] | None = None
    ) -> bool:
        """Send a frame without an ``id``; ``False`` when no connection is open (not sent).

        With ``coalesce`` (``{"key", "interval"}``), at most one frame per key per
        interval goes out: the first at once, the latest of the rest when the interval ends.
        """
        self._link.check_open()
        text = self.encode(frame)
        if coalesce is None:
            return self._link.ready and self._link.send(text)
        key, interval = _coalescing(coalesce)
        loop = asyncio.get_running_loop()
        state = self._coalesced.get(key)
        if state is None or loop.time() - state.sent_at >= interval:
            if not (self._link.ready and self._link.send(text)):
                return False
            self._coalesced[key] = _Coalesced(loop.time())
            return True
        state.latest = text
        if state.timer is None:
            delay = state.sent_at + interval - loop.time()
            state.timer = loop.call_later(delay, self._send_latest, key)
        return True

    def _drop_notices(self) -> None:
        """Notices are not held for another connection: the coalesced ones are dropped."""
        for state in self._coalesced.values():
            if state.timer is not None:
                state.timer.cancel()
        self._coalesced.clear()

    def _send_latest(self, key: str) -> None:
        state = self._coalesced.pop(key, None)
        if state is None or state.latest is None:
            return
        if self._link.ready and self._link.send(state.latest):
            self._coalesced[key] = _Coalesced(asyncio.get_running_loop().time())
        else:
            logger.debug("notice %r dropped: no open connection", key)

    # -- what comes back -------------------------------------------------------------------

    def answer(self, frame: Frame) -> bool:
        """Hand ``frame`` to the request it answers; ``False`` when it answers none."""
        request_id = frame.get("id")
        request = self._pending.pop(request_id, None) if isinstance(request_id, str) else None
        if request is None:
            return False
        if request.future.done():
            return True
        if frame.get("type") == "error":
            if frame.get("code") == TOKEN_EXPIRED and not request.internal:
                # Refused, so not carried out: it goes out again on the next connection.
                request.sent_on = None
                self._waiting.appendleft(request)
                return True
            request.future.set_exception(SwitchboardError.from_frame(frame))
            return True
        if request.on_answer is not None:
            request.on_answer(frame)
        request.future.set_result(frame)
        return True

    def dropped(self, generation: int, close_code: int | None) -> None:
        """The connection ended: fail or keep what was in flight on it."""
        self._drop_notices()
        in_flight = sorted(
            (r for r in self._pending.values() if r.sent_on == generation),
            key=lambda r: r.number,
        )
        culprit = None
        if close_code == MESSAGE_TOO_BIG and in_flight:
            culprit = max(in_flight, key=lambda r: len(r.text))
            self._emit(
                SwitchboardError(
                    TOO_LARGE, "the gateway closed the connection with 1009 (message too big)"
                ).as_event(action=culprit.action)
            )
        resend: list[Request] = []
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

    def fail_all(self, error: SwitchboardError) -> None:
        """The client closed: every request still waiting fails with ``error``."""
        self._drop_notices()
        for request in (*self._pending.values(), *self._waiting):
            if not request.future.done():
                request.future.set_exception(error)
        self._pending.clear()
        self._waiting.clear()


def _coalescing(coalesce: Mapping[str, Any]) -> tuple[str, float]:
    key, interval = coalesce.get("key"), coalesce.get("interval")
    if not isinstance(key, str) or not key:
        raise ValueError("coalesce['key'] must be a non-empty string")
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not (
        0 < interval < float("inf")
    ):
        raise ValueError("coalesce['interval'] must be a number of seconds > 0")
    return key, float(interval)
